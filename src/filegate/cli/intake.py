"""`filegate pause`, `filegate resume`, `filegate intake`: stop and restart the bucket's events.

Thin commands over ``ops.intake``. Pausing a paused bucket or resuming an active one changes
nothing and exits 0 (safe to repeat); `intake` exits 1 when the state needs a human
(detached or conflict), 0 when it is active or paused.
"""

from __future__ import annotations

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, key_value_table, print_json
from filegate.ops import intake
from filegate.ops.intake import IntakeState, IntakeStatus

_HEALTHY = (IntakeState.ACTIVE, IntakeState.PAUSED)


@stack_options
def pause(on: StackOptions) -> None:
    """Stop S3 events: save the bucket's notification configuration, then detach it."""
    _render(intake.for_stack(on.resolve()).pause(), on.output)


@stack_options
def resume(on: StackOptions) -> None:
    """Restore exactly the notification configuration `pause` saved."""
    _render(intake.for_stack(on.resolve()).resume(), on.output)


@stack_options
def status(on: StackOptions) -> None:
    """Whether the bucket's events flow: active, paused, detached or conflict."""
    now = intake.for_stack(on.resolve()).status()
    _render(now, on.output)
    if now.state not in _HEALTHY:
        raise typer.Exit(1)


def _render(now: IntakeStatus, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(now.as_dict())
        return
    values = {
        "state": now.state.value,
        "bucket": now.bucket,
        "saved copy": now.saved_at if now.saved else "-",
        "paused at": now.saved.paused_at if now.saved else "-",
        "paused by": now.saved.paused_by if now.saved else "-",
        "live targets": _targets(now.live),
    }
    if now.message:
        values["result"] = now.message
    console.print(key_value_table("intake", values))


def _targets(configuration: dict[str, object]) -> str:
    count = sum(len(v) for v in configuration.values() if isinstance(v, list))
    return f"{count} notification configuration(s)" if count else "none"
