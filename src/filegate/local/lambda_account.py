"""Lambda's account limits in the local twin: GetAccountSettings, and reservations refused.

moto 5.2.5 has no GetAccountSettings (it answers 404 "Not yet implemented"), and
``filegate deploy``'s preflight reads it to see whether the template's reserved concurrency
fits the account. :class:`AccountSettings` answers it as WSGI middleware around moto's app
(``emulator.application``), with AWS's shape and defaults (Lambda quotas page: "Concurrent
executions: 1,000", 75 GB of code storage, 50 MB zipped and 250 MB unzipped per function) or,
with ``FILEGATE_LOCAL_LAMBDA_CONCURRENCY``, another account limit, so a new account's 10 or 50
can be rehearsed. The account's functions and their reservations are asked of moto through its
own API (ListFunctions, GetFunctionConcurrency) with the caller's credentials, so the answer
is for the caller's account and region; ``UnreservedConcurrentExecutions`` is the limit minus
what those functions reserve, as AWS reports it.

The same limit holds when CloudFormation creates a function: Lambda refuses a reservation that
would leave less than 100 unreserved ("Specified ReservedConcurrentExecutions for function
decreases account's UnreservedConcurrentExecution below its minimum value of [100]"; Lambda
developer guide, "Configuring reserved concurrency for a function"), so the resource fails and
the create rolls back. That happens inside moto's CloudFormation, where no middleware sees it:
:func:`reservation_refused` is the rule, ``patches.lambda_reservation`` the seam that applies
it (``register`` for the emulator process, ``installed`` for a block).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from filegate.local.iam import WsgiApp
from filegate.local.patches import lambda_reservation
from filegate.settings import local_lambda_concurrency

MINIMUM_UNRESERVED = 100
TOTAL_CODE_SIZE = 80_530_636_800  # 75 GB
CODE_SIZE_ZIPPED = 52_428_800  # 50 MB
CODE_SIZE_UNZIPPED = 262_144_000  # 250 MB
_ROUTE = re.compile(r"^/[^/]+/account-settings/?$")


def account_settings(functions: Sequence[Mapping[str, Any]], limit: int) -> dict[str, Any]:
    """GetAccountSettings' answer for an account whose functions are ``functions``
    (``ReservedConcurrentExecutions`` and ``CodeSize`` of each)."""
    reserved = sum(int(f.get("ReservedConcurrentExecutions") or 0) for f in functions)
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
            "CodeSizeZipped": CODE_SIZE_ZIPPED,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - reserved,
        },
        "AccountUsage": {
            "TotalCodeSize": sum(int(f.get("CodeSize") or 0) for f in functions),
            "FunctionCount": len(functions),
        },
    }


def reservation_refused(
    reserved: Mapping[str, int], name: str, wanted: int, limit: int
) -> str | None:
    """Lambda's refusal of ``wanted`` reserved executions for function ``name``, if any, in
    an account whose functions reserve ``reserved`` (function name -> executions)."""
    others = sum(count for function, count in reserved.items() if function != name)
    if wanted <= 0 or limit - others - wanted >= MINIMUM_UNRESERVED:
        return None
    return (
        "Specified ReservedConcurrentExecutions for function decreases account's"
        f" UnreservedConcurrentExecution below its minimum value of [{MINIMUM_UNRESERVED}]."
    )


class AccountSettings:
    """Answers Lambda's GetAccountSettings around ``app`` (moto's); the rest goes to ``app``."""

    def __init__(self, app: WsgiApp, limit: Callable[[], int] = local_lambda_concurrency) -> None:
        self._app = app
        self._limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        signed_for = str(environ.get("HTTP_AUTHORIZATION", ""))
        asked = environ.get("REQUEST_METHOD") == "GET" and "/lambda/" in signed_for
        if not asked or not _ROUTE.match(str(environ.get("PATH_INFO", ""))):
            return self._app(environ, start_response)
        status, listed = self._ask(environ, "/2015-03-31/functions/")
        if not status.startswith("200"):  # moto's refusal, as it gave it
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(listed).encode()]
        functions = [self._with_reservation(environ, f) for f in listed.get("Functions", [])]
        body = json.dumps(account_settings(functions, self._limit())).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]

    def _with_reservation(self, environ: dict[str, Any], function: dict[str, Any]) -> Any:
        """The function's configuration with its ``ReservedConcurrentExecutions``."""
        path = f"/2019-09-30/functions/{quote(function['FunctionName'])}/concurrency"
        return {**function, **self._ask(environ, path)[1]}

    def _ask(self, environ: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
        """moto's answer to a GET of ``path``, with the caller's credentials."""
        lookup = {k: v for k, v in environ.items() if k not in ("RAW_URI", "REQUEST_URI")}
        lookup.update(
            {
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "CONTENT_LENGTH": "0",
                "wsgi.input": io.BytesIO(b""),
            }
        )
        answer: dict[str, str] = {}

        def keep(status: str, *_: Any) -> Callable[[bytes], None]:
            answer["status"] = status
            return lambda _data: None

        body = b"".join(self._app(lookup, keep))
        return answer["status"], dict(json.loads(body or b"{}"))


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Reservations checked at CloudFormation's create for the duration of a block."""
    with lambda_reservation.applied(_refusal):
        yield


def register() -> None:
    """Reservations checked at CloudFormation's create from now on (the emulator process)."""
    lambda_reservation.apply(_refusal)


def _refusal(reserved: Mapping[str, int], name: str, wanted: int) -> str | None:
    return reservation_refused(reserved, name, wanted, local_lambda_concurrency())
