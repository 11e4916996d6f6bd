"""Options shared by the commands that act on a deployed stack (AWS CLI conventions)."""

from __future__ import annotations

from typing import Annotated

import typer

from filegate import stackref
from filegate.cli.render import OutputFormat

OutputOption = Annotated[OutputFormat, typer.Option("--output", help="table or json")]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (targets real AWS)")
]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region")]
EndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", help="Another emulator's endpoint")
]
StackOption = Annotated[str | None, typer.Option("--stack", help="Stack name")]
TargetOption = Annotated[str, typer.Option("--target", help="local (default) or aws")]


def resolve_stack(
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    stack: str | None,
    target: str,
) -> stackref.StackRef:
    return stackref.resolve(profile, region, endpoint_url, stack, target)
