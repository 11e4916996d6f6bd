"""Progress bars on stderr for the operations commands (``filegate.progress.Progress``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from filegate.cli.render import console_err


class Bars:
    """One bar per phase the library starts; a phase without a total shows a count."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, description: str, total: int | None = None) -> None:
        self.finish()
        self._task = self._progress.add_task(description, total=total)

    def finish(self) -> None:
        """Mark the current phase complete (its total becomes what was done)."""
        if self._task is not None:
            done = self._progress.tasks[-1].completed
            self._progress.update(self._task, total=done, completed=done)

    def advance(self, units: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, units)


@contextmanager
def bars() -> Iterator[Bars]:
    """Progress bars on stderr, so ``--output json`` keeps stdout clean."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console_err, transient=False) as progress:
        shown = Bars(progress)
        yield shown
        shown.finish()
