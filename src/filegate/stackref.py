"""Which stack a command talks to, and its outputs: the running local stack by default.

AWS CLI conventions: with no ``--profile``, ``--endpoint-url`` or ``--target aws``, a command
targets the running local stack (its endpoint and outputs come from the state file). Real AWS
is touched only when asked: ``--profile`` or ``--target aws``. ``--endpoint-url`` points at any
other emulator. The stack's outputs are read with DescribeStacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.errors import ConfigError, StackError
from filegate.settings import DEFAULT_STACK_NAME, LocalSettings, resolve_region


@dataclass(frozen=True)
class StackRef:
    """A deployed stack: where it is and what it outputs."""

    target: Target
    stack_name: str
    outputs: dict[str, str]
    local: LocalSettings | None = None  # set when this is the running local stack

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise StackError(
                f"stack {self.stack_name} has no output {name}: deploy the current template"
            ) from None

    def client(self, service: str) -> Any:
        return self.target.client(service)


@dataclass(frozen=True)
class StackLocation:
    """Where a stack is, or would be, without asking for it (it may not exist yet).

    ``local`` holds the running local stack's settings when the stack is that one, so a
    command that changes it (``filegate deploy``) can keep the local stack's state in step.
    """

    target: Target
    stack_name: str
    local: LocalSettings | None = None


def locate(
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    stack_name: str | None = None,
    target: str = "local",
) -> StackLocation:
    """Which target and stack name a command means, by the rules in this module's docstring."""
    if target not in ("local", "aws"):
        raise ConfigError(f"--target {target!r} is not valid: use local or aws")
    if profile is None and endpoint_url is None and target == "local":
        from filegate.local.state import require_state

        settings = LocalSettings.resolve(region=region)
        state = require_state(settings)
        ours = stack_name in (None, state.stack_name)
        return StackLocation(
            state.target, stack_name or state.stack_name, settings if ours else None
        )
    aws = Target(region=resolve_region(region), endpoint_url=endpoint_url, profile=profile)
    return StackLocation(aws, stack_name or DEFAULT_STACK_NAME)


def resolve(
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    stack_name: str | None = None,
    target: str = "local",
) -> StackRef:
    """The stack a command should use, by the rules in this module's docstring."""
    if profile is None and endpoint_url is None and target == "local":
        from filegate.local.state import require_state

        settings = LocalSettings.resolve(region=region)
        state = require_state(settings)
        if stack_name in (None, state.stack_name):
            # A function URL's output names the local gateway that serves it.
            outputs = {**state.outputs, **state.urls}
            return StackRef(state.target, state.stack_name, outputs, settings)
        return _described(state.target, stack_name or state.stack_name)
    aws = Target(region=resolve_region(region), endpoint_url=endpoint_url, profile=profile)
    return _described(aws, stack_name or DEFAULT_STACK_NAME)


def _described(target: Target, stack_name: str) -> StackRef:
    try:
        stacks = target.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(
            f"cannot describe stack {stack_name} in {target.region}: {exc}; check --stack,"
            " --region and your credentials"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackRef(target, stack_name, outputs)
