"""Which optional parts of filegate are installed, and the sentence saying how to add one.

``pip install filegate`` gives the AWS-facing commands (deploy, operations, partners, upload,
package). The local twin, the moto emulator and its server (Flask, Werkzeug), comes with the
``local`` extra: ``pip install 'filegate[local]'``. Whether it is here is asked of the import
system without importing it, so the commands that never need the twin pay nothing for the
question, and a command that does need it fails with one sentence instead of a traceback.
"""

from __future__ import annotations

from importlib.util import find_spec

from filegate.errors import LocalStackError

LOCAL_INSTALL = "pip install 'filegate[local]'"
# The top-level packages of moto[server] that the local twin imports.
LOCAL_TWIN_MODULES = ("moto", "flask", "flask_cors", "werkzeug")


def missing_local_twin() -> list[str]:
    """The local twin's packages that cannot be imported here; empty when it is installed."""
    return [name for name in LOCAL_TWIN_MODULES if not _importable(name)]


def require_local_twin(needs: str, otherwise: str | None = None) -> None:
    """Raise LocalStackError, one sentence naming what ``needs`` the twin and how to install it.

    ``otherwise`` is what the user can do instead (e.g. name an AWS target); it comes first.
    """
    missing = missing_local_twin()
    if not missing:
        return
    install = f"install it with `{LOCAL_INSTALL}`"
    raise LocalStackError(
        f"{needs} needs filegate's local twin, which is not installed ({missing[0]} cannot be"
        f" imported): {f'{otherwise}, or {install}' if otherwise else install}"
    )


def _importable(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses the name, or a broken module
        return False
