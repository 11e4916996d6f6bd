"""Lambda's GetAccountSettings for the local twin: the account's concurrency and code limits.

moto 5.2.5 has no GetAccountSettings (it answers 404 "Not yet implemented"), and
``filegate deploy``'s preflight reads it to see whether the template's reserved concurrency
fits the account. The twin answers with AWS's shape and defaults (Lambda quotas page:
"Concurrent executions: 1,000", 75 GB of code storage, 50 MB zipped and 250 MB unzipped per
function) or, with ``FILEGATE_LOCAL_LAMBDA_CONCURRENCY``, another account limit, so a new
account's 10 or 50 can be rehearsed. ``UnreservedConcurrentExecutions`` is the limit minus
what the account's functions reserve, as AWS reports it.

The same limit holds when CloudFormation creates a function: Lambda refuses a reservation that
would leave less than 100 unreserved ("Specified ReservedConcurrentExecutions for function
decreases account's UnreservedConcurrentExecution below its minimum value of [100]"; Lambda
developer guide, "Configuring reserved concurrency for a function"), so the resource fails and
the create rolls back. moto's CloudFormation set any reservation; ``AWS::Lambda::Function``'s
create is checked here first (an update's new reservation is not).

The route is added to moto's Lambda URL map with a handler class of its own (a subclass of
moto's ``LambdaResponse``), so moto's dispatch, account and region resolution are reused and
nothing of moto's own classes changes. ``register`` installs it for good (the emulator
process); ``installed`` for a block (in-process tests).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from filegate.settings import local_lambda_concurrency

ROUTE = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"
MINIMUM_UNRESERVED = 100
TOTAL_CODE_SIZE = 80_530_636_800  # 75 GB
CODE_SIZE_ZIPPED = 52_428_800  # 50 MB
CODE_SIZE_UNZIPPED = 262_144_000  # 250 MB


def account_settings(functions: list[Any], limit: int) -> dict[str, Any]:
    """GetAccountSettings' answer for an account whose functions are ``functions``."""
    reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
            "CodeSizeZipped": CODE_SIZE_ZIPPED,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - reserved,
        },
        "AccountUsage": {
            "TotalCodeSize": sum(int(getattr(f, "code_size", 0) or 0) for f in functions),
            "FunctionCount": len(functions),
        },
    }


def reservation_refused(functions: list[Any], name: str, wanted: int, limit: int) -> str | None:
    """Lambda's refusal of ``wanted`` reserved executions for function ``name``, if any."""
    others = sum(int(f.reserved_concurrency or 0) for f in functions if f.function_name != name)
    if wanted <= 0 or limit - others - wanted >= MINIMUM_UNRESERVED:
        return None
    return (
        "Specified ReservedConcurrentExecutions for function decreases account's"
        f" UnreservedConcurrentExecution below its minimum value of [{MINIMUM_UNRESERVED}]."
    )


def _checked_create(original: Any) -> Any:
    """``LambdaFunction.create_from_cloudformation_json`` that refuses what Lambda refuses."""

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
            functions = list(lambda_backends[account_id][region].list_functions())
            refused = reservation_refused(
                functions, resource_name, int(wanted), local_lambda_concurrency()
            )
            if refused:
                raise InvalidParameterValueException(refused)
        return original.__func__(cls, resource_name, cloudformation_json, account_id, region, **kw)

    return classmethod(create)


def _handler_class() -> Any:
    from moto.awslambda.responses import LambdaResponse

    class AccountSettingsResponse(LambdaResponse):
        """GetAccountSettings, dispatched as moto dispatches every Lambda request."""

        def get_account_settings(self) -> str:
            functions = list(self.backend.list_functions())
            return json.dumps(account_settings(functions, local_lambda_concurrency()))

    return AccountSettingsResponse


def _install() -> None:
    from moto.awslambda import urls
    from moto.awslambda.models import LambdaFunction

    urls.url_paths[ROUTE] = _handler_class().dispatch
    original = LambdaFunction.create_from_cloudformation_json
    setattr(LambdaFunction, "create_from_cloudformation_json", _checked_create(original))  # noqa: B010


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """GetAccountSettings answered, and reservations checked, for the duration of a block."""
    from moto.awslambda import urls
    from moto.awslambda.models import LambdaFunction

    had = urls.url_paths.get(ROUTE)
    create = LambdaFunction.__dict__["create_from_cloudformation_json"]
    _install()
    try:
        yield
    finally:
        setattr(LambdaFunction, "create_from_cloudformation_json", create)  # noqa: B010
        if had is None:
            urls.url_paths.pop(ROUTE, None)
        else:
            urls.url_paths[ROUTE] = had


def register() -> None:
    """GetAccountSettings answered from now on (the emulator process)."""
    _install()
