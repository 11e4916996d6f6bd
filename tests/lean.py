"""A lean install of filegate, emulated: an interpreter that cannot import what it lacks.

``pip install filegate`` brings the closure of pyproject.toml's base dependencies and nothing
else: no moto, Flask or Werkzeug (the ``local`` extra), nor what the test tools bring. A
``sitecustomize`` on PYTHONPATH installs a meta-path finder that refuses the top-level modules
of every installed distribution outside that closure, so a CLI run with ``lean_environment``
imports what a user's lean install could import, and nothing more.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

import filegate

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SENTENCE = "pip install 'filegate[local]'"
TWIN = ("moto", "flask", "werkzeug")
# In every venv, whatever was installed into it.
VENV_BASICS = frozenset({"pip", "setuptools", "pkg_resources", "_distutils_hack", "filegate"})

BLOCKER = """
import sys

BLOCKED = frozenset({blocked!r})


class LeanInstall:
    \"\"\"Refuses the top-level modules a lean install of filegate does not have.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (lean install)", name=name)
        return None


sys.meta_path.insert(0, LeanInstall())
"""


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    document = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return dict(document["project"])


def base_requirements() -> list[str]:
    return list(project()["dependencies"])


def closure(requirements: Iterable[str]) -> set[str]:
    """The distributions ``requirements`` install, transitively, as installed here."""
    found: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = _name(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            wanted = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in wanted:
            needed = Requirement(text)
            extras = ("", *requirement.extras)
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                pending.append(needed)
    return found


def blocked_modules() -> set[str]:
    """Top-level modules of every installed distribution a lean install does not bring."""
    lean = closure(base_requirements())
    blocked = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if not {_name(d) for d in distributions} & lean
    }
    return (blocked | set(TWIN)) - VENV_BASICS - sys.stdlib_module_names


def lean_environment(site: Path, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with PYTHONPATH set to a lean install of the filegate under test."""
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(blocked_modules())))
    sources = Path(filegate.__file__).resolve().parents[1]
    return {**base, "PYTHONPATH": os.pathsep.join([str(site), str(sources)])}


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
