"""Options shared by the commands that act on a deployed stack (AWS CLI conventions).

``@stack_options`` declares them once: it appends ``--output --profile --region --endpoint-url
--stack --target`` to a command's own options and hands the command one ``StackOptions``.
The stack is found only when the command asks (``on.resolve()``), so a command still checks
its own arguments before any stack lookup.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

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

# In --help order, after the command's own options; each with its annotation and default.
_SHARED = (
    ("output", OutputOption, OutputFormat.table),
    ("profile", ProfileOption, None),
    ("region", RegionOption, None),
    ("endpoint_url", EndpointOption, None),
    ("stack", StackOption, None),
    ("target", TargetOption, "local"),
)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class StackOptions:
    """What the shared options said: the output format and where the stack is.

    The defaults live in ``_SHARED`` (typer fills every field), so they are declared once.
    """

    output: OutputFormat
    profile: str | None
    region: str | None
    endpoint_url: str | None
    stack: str | None
    target: str

    def resolve(self) -> stackref.StackRef:
        """The stack these options name (the running local stack by default)."""
        return stackref.resolve(
            self.profile, self.region, self.endpoint_url, self.stack, self.target, _local()
        )

    def locate(self) -> stackref.StackLocation:
        """Where the stack is or would be, without requiring that it exists (for deploy)."""
        return stackref.locate(
            self.profile, self.region, self.endpoint_url, self.stack, self.target, _local()
        )


def _local() -> stackref.LocalStacks:
    """The running local stack and the emulator's own steps, injected into the operations."""
    from filegate.local.twin import LocalStacks

    return LocalStacks()


def stack_options(command: Callable[Concatenate[StackOptions, P], R]) -> Callable[P, R]:
    """Give ``command(on, ...)`` the shared options; typer sees ``command``'s own plus them.

    The returned callable takes ``P`` plus the six keyword options; its ``__signature__`` says
    so for typer, but the static type says only ``P`` (ParamSpec cannot add keywords). Commands
    are called by typer, never directly, so nothing relies on the narrower static type.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # P.kwargs values are typed `object`; typer has converted each to its option's type.
        shared: dict[str, Any] = {name: kwargs.pop(name) for name, _, _ in _SHARED}
        return command(StackOptions(**shared), *args, **kwargs)

    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in _SHARED
    ]
    signature = inspect.Signature([*own, *shared], return_annotation=None)
    # typer reads the options from inspect.signature, which honours __signature__.
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return wrapper
