"""The lean install: `pip install filegate` gives the AWS-facing CLI without the local twin.

The CLI runs in a subprocess that cannot import what a lean install lacks (``tests/lean.py``):
moto, Flask and Werkzeug, and every other distribution outside the dependency closure of
pyproject.toml's base dependencies (requests, Jinja2...). So an AWS-facing module
that starts importing the twin, or anything only the twin brings, fails here, as it would for
a user. tests/e2e/test_lean_install_ops.py runs the operations themselves that way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from packaging.requirements import Requirement

from filegate import extras
from filegate.cli import app
from tests.lean import (
    INSTALL_SENTENCE,
    ROOT,
    TWIN,
    base_requirements,
    closure,
    lean_environment,
    project,
)

# Runs each command line through the real entry point in one interpreter; prints exit codes.
HELP_DRIVER = """
import json, sys
from filegate.cli import main

try:
    import moto  # the positive control: the blocker is in place
    blocked = False
except ImportError:
    blocked = True
codes = {}
for line in json.loads(sys.argv[1]):
    sys.argv = ["filegate", *line, "--help"]
    try:
        main()
        codes[" ".join(line)] = 0
    except SystemExit as exc:
        codes[" ".join(line)] = exc.code or 0
print("RESULT " + json.dumps({"moto_blocked": blocked, "codes": codes}))
"""


@pytest.fixture(scope="module")
def lean_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    environment = lean_environment(tmp_path_factory.mktemp("lean-site"), os.environ)
    # An empty state directory: no running local stack can be found.
    environment["FILEGATE_STATE_DIR"] = str(tmp_path_factory.mktemp("lean-state"))
    environment["COLUMNS"] = "200"  # one line per message, whatever the terminal
    return environment


def _filegate(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    entry = "import sys; sys.argv[0] = 'filegate'; from filegate.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", entry, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _command_lines(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Every command line in typer's command tree (typer vendors click: duck-typed)."""
    for name, command in sorted(group.commands.items()):
        yield [*prefix, name]
        if hasattr(command, "commands"):
            yield from _command_lines(command, (*prefix, name))


def test_the_base_install_brings_no_twin_and_the_local_extra_does() -> None:
    optional: dict[str, list[str]] = project()["optional-dependencies"]

    lean = closure(base_requirements())
    with_twin = closure([*base_requirements(), *optional["local"]])

    assert not lean & set(TWIN)
    assert with_twin >= set(TWIN)
    assert all(Requirement(r).specifier for r in optional["local"])  # pinned, as every dep
    assert extras.missing_local_twin() == []  # the test venv has it: the guards stay silent


def test_make_demo_and_make_test_install_the_twin() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")

    install = re.search(r"pip install .*-e '\.\[(?P<extras>[^\]]+)\]'", makefile)
    stamp = re.search(r"^\$\(STAMP\): (?P<inputs>.*)$", makefile, re.MULTILINE)

    assert install is not None
    assert set(install["extras"].split(",")) == {"local", "dev"}
    assert stamp is not None
    assert {"pyproject.toml", "constraints.txt", "Makefile"} <= set(stamp["inputs"].split())


def test_every_command_help_works_without_the_twin(lean_env: dict[str, str]) -> None:
    lines = list(_command_lines(typer.main.get_group(app)))

    completed = subprocess.run(
        [sys.executable, "-c", HELP_DRIVER, json.dumps(lines)],
        capture_output=True,
        text=True,
        env=lean_env,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.split("RESULT ")[-1])
    assert result["moto_blocked"] is True
    assert {"deploy", "verify", "upload", "package", "dlq replay", "partner add"} <= set(
        result["codes"]
    )
    assert result["codes"] == dict.fromkeys(result["codes"], 0)


def test_package_builds_the_zip_without_the_twin(lean_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "lambda.zip"

    completed = _filegate(lean_env, "package", "--out", str(out), "--output", "json")

    assert completed.returncode == 0, completed.stderr
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    assert "filegate/ingest/handler.py" in names
    assert not any(name.startswith(("moto/", "filegate/local/")) for name in names)


@pytest.mark.parametrize(
    ("command", "options"),
    # Ports of their own (below 32768, not 4566), should a regression start anything.
    [("local up", ("--port", "23987")), ("local env", ()), ("demo", ("--port", "23989"))],
    ids=["local up", "local env", "demo"],
)
def test_a_command_that_runs_the_twin_says_how_to_install_it(
    lean_env: dict[str, str], command: str, options: tuple[str, ...]
) -> None:
    completed = _filegate(lean_env, *command.split(), *options)

    message = " ".join(completed.stderr.split())
    assert completed.returncode == 2, completed.stderr
    assert f"`filegate {command}`" in message
    assert INSTALL_SENTENCE in message
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    "args", [("verify",), ("deploy", "--dry-run"), ("partner", "list")], ids=" ".join
)
def test_an_operation_on_the_default_local_target_says_install_or_name_aws(
    lean_env: dict[str, str], args: tuple[str, ...]
) -> None:
    completed = _filegate(lean_env, *args)

    message = " ".join(completed.stderr.split())
    assert completed.returncode == 2, completed.stderr
    assert "--profile NAME or --target aws" in message
    assert INSTALL_SENTENCE in message
    assert "Traceback" not in completed.stderr
