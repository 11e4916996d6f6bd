"""moto's Lambda Invoke forwarded to the local stack's workers, in the emulator process only.

moto cannot run function code without docker (its Invoke answers "error running docker").
When the supervisor gives the emulator ``FILEGATE_EMULATOR_INVOKE_URL`` (the local stack's
``invoke.InvokeServer``), Invoke is patched: moto still finds the function (an unknown
function or qualifier is moto's 404), the request is checked as Lambda checks it (a payload
that is not JSON is a 400), and the call is forwarded to the supervisor, which runs the
deployed code. The answer is Lambda's: the function's payload, ``X-Amz-Function-Error:
Unhandled`` when it failed, ``X-Amz-Log-Result`` (with ``--log-type Tail``) and
``X-Amz-Executed-Version``. ``InvocationType=Event`` is accepted and runs in the background;
``DryRun`` runs nothing. Without the variable, moto's own Invoke is left alone.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

ENV_INVOKE_URL = "FILEGATE_EMULATOR_INVOKE_URL"
INVOKE_PATH = "/invoke"
_FORWARD_MARGIN_SECONDS = 30  # beyond the function's own timeout


def _client_error(error_type: str, message: str, status: int) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(error_type, message)
    error.code = status
    return error


def _payload(body: Any) -> Any:
    text = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise _client_error(
            "InvalidRequestContentException", "Could not parse request body into json", 400
        ) from None


def _forward(url: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    data = json.dumps(request).encode("utf-8")
    http = urllib.request.Request(  # noqa: S310 - the supervisor's own 127.0.0.1 URL
        url + INVOKE_PATH, data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read() or b"{}").get("message", str(exc))
        status = 404 if exc.code == 404 else 500
        error_type = "ResourceNotFoundException" if status == 404 else "ServiceException"
        raise _client_error(error_type, message, status) from None
    except (OSError, ValueError) as exc:
        raise _client_error(
            "ServiceException", f"the local stack's function runtime did not answer: {exc}", 500
        ) from None


def _invoke(
    self: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    """LambdaBackend.invoke, running the function on the local stack's workers."""
    fn = self.get_function(function_name, qualifier)
    invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    payload = _payload(body)
    response_headers["x-amz-executed-version"] = str(fn.version)
    if invocation_type == "DryRun":
        response_headers["Content-Length"] = "0"
        return b""
    request = {
        "function": fn.function_name,
        "version": str(fn.version),
        "payload": payload,
        "invocation_type": invocation_type,
    }
    timeout = float(getattr(fn, "timeout", 3) or 3) + _FORWARD_MARGIN_SECONDS
    answer = _forward(os.environ[ENV_INVOKE_URL], request, timeout)
    if answer.get("function_error"):
        response_headers["x-amz-function-error"] = str(answer["function_error"])
    if answer.get("log_result"):
        response_headers["x-amz-log-result"] = str(answer["log_result"])
    result = str(answer.get("payload") or "").encode("utf-8")
    response_headers["Content-Length"] = str(len(result))
    return result


def patch() -> bool:
    """Forward Invoke when the supervisor asked for it; True if patched."""
    if not os.environ.get(ENV_INVOKE_URL):
        return False
    from moto.awslambda.models import LambdaBackend

    setattr(LambdaBackend, "invoke", _invoke)  # noqa: B010 - see s3.patch
    return True
