"""Which stack a command talks to, and its outputs: the running local stack by default.

AWS CLI conventions: with no ``--profile``, ``--endpoint-url`` or ``--target aws``, a command
targets the running local stack (its endpoint and outputs come from the state file). Real AWS
is touched only when asked: ``--profile`` or ``--target aws``. ``--endpoint-url`` points at any
other emulator. The stack's outputs are read with DescribeStacks.

This module never imports ``filegate.local``: the running local stack is found, and the steps
only an emulator needs (``LocalTwin``) are built, by a ``LocalStacks`` the CLI passes in
(``filegate.local.twin``). Without one, only ``--profile``, ``--endpoint-url`` or ``--target
aws`` name a stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.errors import ConfigError, StackError
from filegate.settings import DEFAULT_STACK_NAME, resolve_region


class LocalTwin(Protocol):
    """What only a stack in the emulator needs, because the emulator leaves it undone.

    The operations call it when a stack has one (``StackRef.local``, ``StackLocation.local``)
    and never otherwise, so the AWS path carries no emulator step.
    """

    def after_deploy(
        self,
        changed: list[str],
        outputs: dict[str, str],
        live_version: str | None,
        step: Callable[[str], None],
    ) -> list[str]:
        """Apply what the emulator ignored for the ``changed`` resources; keep the running
        local stack in step with the new outputs and live version. What was applied."""
        ...

    def wait_running(self, version: str) -> None:
        """Return once the local workers run ``version`` of the mapped function."""
        ...

    def artifact_bucket(self) -> str:
        """Where ``filegate deploy`` puts the code when the stack names none: the emulator has
        no account to name one after, and its buckets need no TLS-only policy."""
        ...

    def runs_mapping(self) -> bool:
        """True when the local supervisor feeds the queue to the function itself."""
        ...


class LocalStacks(Protocol):
    """Finds the running local stack and builds the ``LocalTwin`` of a stack in an emulator."""

    def location(self, region: str | None, stack_name: str | None) -> StackLocation: ...

    def resolve(self, region: str | None, stack_name: str | None) -> StackRef: ...

    def twin(self, target: Target, stack_name: str) -> LocalTwin | None: ...


@dataclass(frozen=True)
class StackRef:
    """A deployed stack: where it is and what it outputs."""

    target: Target
    stack_name: str
    outputs: dict[str, str]
    local: LocalTwin | None = None  # set when the stack lives in an emulator

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

    ``local`` is set when the stack lives in an emulator, so a command that changes it
    (``filegate deploy``) can apply what the emulator ignores and keep the local stack in step.
    """

    target: Target
    stack_name: str
    local: LocalTwin | None = None


def locate(
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    stack_name: str | None = None,
    target: str = "local",
    local: LocalStacks | None = None,
) -> StackLocation:
    """Which target and stack name a command means, by the rules in this module's docstring."""
    if target not in ("local", "aws"):
        raise ConfigError(f"--target {target!r} is not valid: use local or aws")
    if profile is None and endpoint_url is None and target == "local":
        return _required(local).location(region, stack_name)
    aws = Target(region=resolve_region(region), endpoint_url=endpoint_url, profile=profile)
    name = stack_name or DEFAULT_STACK_NAME
    return StackLocation(aws, name, _twin(local, aws, name))


def resolve(
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    stack_name: str | None = None,
    target: str = "local",
    local: LocalStacks | None = None,
) -> StackRef:
    """The stack a command should use, by the rules in this module's docstring."""
    if profile is None and endpoint_url is None and target == "local":
        return _required(local).resolve(region, stack_name)
    aws = Target(region=resolve_region(region), endpoint_url=endpoint_url, profile=profile)
    name = stack_name or DEFAULT_STACK_NAME
    return described(aws, name, _twin(local, aws, name))


def _required(local: LocalStacks | None) -> LocalStacks:
    if local is None:
        raise ConfigError(
            "no --profile, --endpoint-url or --target aws was given, and the local stack cannot"
            " be reached from here: name the stack's target"
        )
    return local


def _twin(local: LocalStacks | None, target: Target, stack_name: str) -> LocalTwin | None:
    return local.twin(target, stack_name) if local is not None and target.is_local else None


def described(target: Target, stack_name: str, local: LocalTwin | None = None) -> StackRef:
    """The stack as DescribeStacks reports it (its outputs), with its ``LocalTwin`` if any."""
    try:
        stacks = target.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(
            f"cannot describe stack {stack_name} in {target.region}: {exc}; check --stack,"
            " --region and your credentials"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackRef(target, stack_name, outputs, local)
