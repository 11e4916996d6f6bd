"""The version guard: the one moto release the local twin is built and tested against.

The emulator composes moto's WSGI app (``moto_server``) and corrects a few of its behaviours
through small seams into its internals (``patches``, ``cfn_models``) and reads of its state
(``emulator_state``, ``queue_backend``). Those seams are checked against one moto release only, so
an emulator process, and ``filegate local up`` before it starts anything, refuse any other
with one sentence saying which release is supported. The version is read from the installed
distribution's metadata: moto itself is not imported.
"""

from __future__ import annotations

from importlib import metadata

from filegate.errors import LocalStackError

SUPPORTED_MOTO = "5.2.5"  # pinned exactly in pyproject.toml


def installed_moto() -> str | None:
    """The installed moto's version, or None when moto is not installed."""
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError:
        return None


def require_supported_moto(installed: str | None = None) -> None:
    """Raise LocalStackError unless ``installed`` (default: the installed moto) is supported."""
    found = installed_moto() if installed is None else installed
    if found == SUPPORTED_MOTO:
        return
    what = "moto is not installed" if found is None else f"moto {found} is installed"
    raise LocalStackError(
        f"{what}, but filegate's local twin supports moto {SUPPORTED_MOTO} only:"
        f" install moto {SUPPORTED_MOTO} (with its server extra) in this environment"
    )
