"""`filegate pause`, `filegate resume`, `filegate intake`: stop and restart the bucket's events.

Thin commands over ``ops.intake``. Pausing a paused bucket or resuming an active one changes
nothing and exits 0 (safe to repeat); `intake` exits 1 when the state needs a human
(detached or conflict), 0 when it is active or paused.
"""

from __future__ import annotations

import typer

from filegate.cli.options import (
    EndpointOption,
    OutputOption,
    ProfileOption,
    RegionOption,
    StackOption,
    TargetOption,
    resolve_stack,
)
from filegate.cli.render import OutputFormat, console, key_value_table, print_json
from filegate.ops import intake
from filegate.ops.intake import IntakeState, IntakeStatus

_HEALTHY = (IntakeState.ACTIVE, IntakeState.PAUSED)


def pause(
    output: OutputOption = OutputFormat.table,
    profile: ProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    stack: StackOption = None,
    target: TargetOption = "local",
) -> None:
    """Stop S3 events: save the bucket's notification configuration, then detach it."""
    _render(
        intake.for_stack(resolve_stack(profile, region, endpoint_url, stack, target)).pause(),
        output,
    )


def resume(
    output: OutputOption = OutputFormat.table,
    profile: ProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    stack: StackOption = None,
    target: TargetOption = "local",
) -> None:
    """Restore exactly the notification configuration `pause` saved."""
    _render(
        intake.for_stack(resolve_stack(profile, region, endpoint_url, stack, target)).resume(),
        output,
    )


def status(
    output: OutputOption = OutputFormat.table,
    profile: ProfileOption = None,
    region: RegionOption = None,
    endpoint_url: EndpointOption = None,
    stack: StackOption = None,
    target: TargetOption = "local",
) -> None:
    """Whether the bucket's events flow: active, paused, detached or conflict."""
    now = intake.for_stack(resolve_stack(profile, region, endpoint_url, stack, target)).status()
    _render(now, output)
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
