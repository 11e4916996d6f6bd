"""`filegate upload`'s progress bars: bytes taken back on a retry never show a negative speed."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress, TransferSpeedColumn

from filegate.cli.upload import _Bars


def test_bytes_taken_back_for_a_retry_leave_the_bars_at_what_is_sent_and_no_negative_speed() -> (
    None
):
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    with Progress(TransferSpeedColumn(), console=console, auto_refresh=False) as progress:
        overall = progress.add_task("all files", total=3_000)
        task = progress.add_task("a.bin", total=1_000)
        bars = _Bars(progress, task, overall)

        bars.on_progress(600)
        bars.on_progress(-400)  # a part refused (BadDigest): its 400 bytes go again
        bars.on_progress(100)

        for shown in progress.tasks:
            assert shown.completed == 300
            assert shown.speed is None or shown.speed >= 0
