"""`filegate demo`: start the local stack, send sample files through it, show the ledger.

It needs the local twin (the ``local`` extra), imported only once the command runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from filegate.cli.render import console, console_err, rows_table
from filegate.extras import require_local_twin
from filegate.outputs import BUCKET_NAME, TABLE_NAME
from filegate.settings import LocalSettings

if TYPE_CHECKING:
    from filegate.local import state as local_state


def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the local stack running afterwards")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="Emulator port [default: 4566]")
    ] = None,
    api_port: Annotated[
        int | None, typer.Option("--api-port", help="Upload API port [default: --port + 1]")
    ] = None,
) -> None:
    """Run the pipeline on this machine: upload sample files and show the ledger."""
    require_local_twin("`filegate demo`")
    from filegate.local import stack
    from filegate.local import state as local_state

    started_at = time.monotonic()
    settings = LocalSettings.resolve(port=port, api_port=api_port)
    running = local_state.read_state(settings)
    reuse = running is not None and local_state.is_healthy(running)
    if reuse:
        assert running is not None
        state = running
        console_err.print(f"using the local stack already running on {state.endpoint_url}")
    else:
        with console_err.status("starting the local stack (emulator, template, function)"):
            state = stack.start_detached(settings)
        console_err.print(f"local stack up on {state.endpoint_url}")
    try:
        _run(state)
    finally:
        if not reuse and not keep:
            stack.stop_detached(settings)
            console_err.print("local stack stopped (use --keep to leave it running)")
    console_err.print(f"demo finished in {time.monotonic() - started_at:.1f} s")


def _run(state: local_state.LocalState) -> None:
    from filegate.local.demo import Demo, expected_state, scenario

    steps = scenario(int(time.time()))
    runner = Demo(state.target, state.outputs[BUCKET_NAME], state.outputs[TABLE_NAME])
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console_err) as progress:
        task = progress.add_task("uploading sample files", total=len(steps))
        runner.apply(steps, lambda _: progress.advance(task))
    with console_err.status("waiting for the ledger"):
        items = runner.wait_for_ledger(expected_state(steps))
    rows = [
        (i.key, "" if i.size is None else i.size, i.content_type or "", i.status) for i in items
    ]
    console.print(
        rows_table(f"ledger: {state.outputs[TABLE_NAME]}", ("key", "size", "type", "status"), rows)
    )
