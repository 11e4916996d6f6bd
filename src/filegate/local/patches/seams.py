"""The record of what a patch replaced in moto, so that it can be put back.

Every patch goes through :meth:`Seams.replace`; :meth:`Seams.undo` restores each attribute as
it was (removing those that were not there), newest first. The emulator process never undoes
its seams; a test that applies them undoes them when it ends (``patches.applied``), so the
next test in the same worker runs on moto as it was.
"""

from __future__ import annotations

from typing import Any

_ABSENT = object()


class Seams:
    """The attributes replaced in moto's modules and classes, with what they held before."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, value: Any) -> None:
        """``setattr(owner, name, value)``, remembering the attribute ``owner`` itself held."""
        self._saved.append((owner, name, vars(owner).get(name, _ABSENT)))
        setattr(owner, name, value)

    def undo(self) -> None:
        """Put back every replaced attribute, newest first."""
        while self._saved:
            owner, name, value = self._saved.pop()
            if value is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, value)

    @property
    def active(self) -> bool:
        return bool(self._saved)
