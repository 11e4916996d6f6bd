"""The seam that makes moto's CloudFormation refuse a reservation Lambda would refuse.

moto's ``AWS::Lambda::Function`` sets any ``ReservedConcurrentExecutions``; Lambda refuses one
that leaves the account under 100 unreserved executions, which fails the resource and rolls
the create back. The rule is ``lambda_account.reservation_refused``; this module only puts it
in front of ``LambdaFunction.create_from_cloudformation_json`` (an update's new reservation is
not checked).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from filegate.local.patches.seams import Seams

# (what the account's functions reserve, by name; the function; what it asks) -> refusal
Refusal = Callable[[Mapping[str, int], str, int], str | None]

_PROCESS_SEAMS = Seams()


def _checked_create(original: Any, refusal: Refusal) -> Any:
    def create(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region: str,
        **kw: Any,
    ) -> Any:
        from moto.awslambda.exceptions import InvalidParameterValueException
        from moto.awslambda.models import lambda_backends

        wanted = cloudformation_json.get("Properties", {}).get("ReservedConcurrentExecutions")
        if wanted is not None:
            functions = lambda_backends[account_id][region].list_functions()
            reserved = {f.function_name: int(f.reserved_concurrency or 0) for f in functions}
            refused = refusal(reserved, resource_name, int(wanted))
            if refused:
                raise InvalidParameterValueException(refused)
        return original.__func__(cls, resource_name, cloudformation_json, account_id, region, **kw)

    return classmethod(create)


def install(seams: Seams, refusal: Refusal) -> None:
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.__dict__["create_from_cloudformation_json"]
    seams.replace(
        LambdaFunction, "create_from_cloudformation_json", _checked_create(original, refusal)
    )


def apply(refusal: Refusal) -> None:
    """For the life of this process (the emulator; idempotent)."""
    if not _PROCESS_SEAMS.active:
        install(_PROCESS_SEAMS, refusal)


@contextlib.contextmanager
def applied(refusal: Refusal) -> Iterator[None]:
    """For the duration of a block, then moto as it was."""
    seams = Seams()
    install(seams, refusal)
    try:
        yield
    finally:
        seams.undo()
