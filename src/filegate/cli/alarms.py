"""`filegate alarms [list|notifications|drill]`: the stack's alarms, what they sent, the drill.

Thin: each command finds the stack, calls one function of ``filegate.ops.alarms`` and renders
the result. `filegate alarms` alone is `filegate alarms list`. The drill exits 0 when the
Errors alarm fired and its notification arrived, 1 when it did not in time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import (
    OutputFormat,
    console,
    console_err,
    key_value_table,
    print_json,
    rows_table,
)
from filegate.ops import alarms as ops

app = typer.Typer(
    help="The stack's CloudWatch alarms: states, notifications sent, the Errors drill.",
    invoke_without_command=True,
)

StateOption = Annotated[
    str | None,
    typer.Option("--state", help="Only alarms in this state: OK, ALARM or INSUFFICIENT_DATA"),
]
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
_TRANSITION = ("OldStateValue", "NewStateValue", "NewStateReason")
_COLOURS = {"OK": "green", "ALARM": "red", "INSUFFICIENT_DATA": "yellow"}


@app.callback()
@stack_options
def alarms(
    on: StackOptions,
    ctx: typer.Context,
    state: StateOption = None,
) -> None:
    """Show the alarms' states (the same as `alarms list`)."""
    if ctx.invoked_subcommand is None:
        _show_alarms(on, state)


@app.command("list")
@stack_options
def list_alarms(
    on: StackOptions,
    state: StateOption = None,
) -> None:
    """Show each alarm: name, state, reason, when it changed, the metric it watches."""
    _show_alarms(on, state)


def _show_alarms(on: StackOptions, state: str | None) -> None:
    if state is not None and state.upper() not in _STATES:
        raise typer.BadParameter(f"--state {state}: use one of {', '.join(_STATES)}")
    ref = on.resolve()
    statuses = ops.alarm_states(ref, state)
    if on.output is OutputFormat.json:
        print_json([s.as_dict() for s in statuses])
        return
    rows = [
        (s.name, f"[{_COLOURS.get(s.state, 'white')}]{s.state}[/]", s.updated, s.metric, s.reason)
        for s in statuses
    ]
    columns = ("name", "state", "updated", "metric", "reason")
    console.print(rows_table(f"alarms of {ref.stack_name}", columns, rows))


@app.command("notifications")
@stack_options
def list_notifications(
    on: StackOptions,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many")] = 100,
) -> None:
    """Show what the alerts topic delivered to the SQS queues subscribed to it (a peek)."""
    ref = on.resolve()
    found = ops.notifications(ref, limit)
    if on.output is OutputFormat.json:
        print_json([n.as_dict() for n in found])
        return
    rows = [(n.timestamp, n.subject, *(n.alarm.get(k, "") for k in _TRANSITION)) for n in found]
    columns = ("sent", "subject", "from", "to", "reason")
    console.print(rows_table(f"notifications of {ref.stack_name}", columns, rows))


@app.command("drill")
@stack_options
def drill(
    on: StackOptions,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Seconds to wait [default: 60 local, 600 AWS]"),
    ] = None,
) -> None:
    """Make the function fail once; wait for the Errors alarm and its notification."""
    ref = on.resolve()
    with console_err.status("alarm drill") as status:

        def progress(message: str) -> None:
            status.update(f"alarm drill: {message}")
            console_err.print(f"  {message}", highlight=False)

        result = ops.drill(ref, timeout, progress)
    if on.output is OutputFormat.json:
        print_json(result.as_dict())
    else:
        document = result.as_dict()
        notification = document.pop("notification") or {}
        document["notification"] = notification.get("subject") or (
            "(no SQS queue subscribed: check the topic's email)"
            if not result.readable_queues
            else "(none arrived)"
        )
        console.print(key_value_table("alarm drill", document))
    if not result.passed:
        raise typer.Exit(1)
