"""How long work (an operations command, the upload sweep) reports progress, without knowing
who shows it.

The library calls ``start`` once per phase (with a total when it is known) and ``advance`` per
unit of work; the CLI shows it as a rich progress bar on stderr, tests pass ``NO_PROGRESS``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, units: int = 1) -> None: ...


class _Silent:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, units: int = 1) -> None:
        pass


NO_PROGRESS: Progress = _Silent()
