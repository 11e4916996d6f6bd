"""Lambda's Invoke forwarded to the local stack's workers: WSGI middleware around moto's app.

moto cannot run function code without docker (its Invoke answers "error running docker").
When the supervisor gives the emulator ``FILEGATE_EMULATOR_INVOKE_URL`` (the local stack's
``invoke.InvokeServer``), :class:`InvokeForwarding` answers Invoke itself, composed around
moto's app (``emulator.application``): the function is looked up through moto's own
GetFunctionConfiguration (an unknown function or qualifier is moto's 404, as it was), the
request is checked as Lambda checks it (a payload that is not JSON is a 400), and the call is
forwarded to the supervisor, which runs the deployed code. The answer is Lambda's (Lambda API
reference, "Invoke"): the function's payload with 200 (202 for ``InvocationType=Event``, which
runs in the background; 204 for ``DryRun``, which runs nothing), ``X-Amz-Function-Error:
Unhandled`` when it failed, ``X-Amz-Log-Result`` (with ``--log-type Tail``) and
``X-Amz-Executed-Version``. Every other request goes to moto unchanged.
"""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode

from filegate.settings import ENV_EMULATOR_INVOKE_URL

ENV_INVOKE_URL = ENV_EMULATOR_INVOKE_URL  # the supervisor sets it for the main emulator
INVOKE_PATH = "/invoke"
_FORWARD_MARGIN_SECONDS = 30  # beyond the function's own timeout
_INVOKE = re.compile(r"^/(?P<api>[^/]+)/functions/(?P<name>[^/]+)/invocations/?$")
_STATUS = {"RequestResponse": "200 OK", "Event": "202 Accepted", "DryRun": "204 No Content"}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class InvokeError(Exception):
    """A failed Invoke, answered in Lambda's error shape."""

    def __init__(self, error_type: str, message: str, status: str) -> None:
        super().__init__(message)
        self.error_type, self.message, self.status = error_type, message, status


class InvokeForwarding:
    """Answers Lambda Invoke by running the function on the local stack; the rest to ``app``."""

    def __init__(self, app: WsgiApp, invoke_url: str) -> None:
        self._app = app
        self._url = invoke_url

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        match = _INVOKE.match(environ.get("PATH_INFO", ""))
        signed_for = str(environ.get("HTTP_AUTHORIZATION", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not match or "/lambda/" not in signed_for:
            return self._app(environ, start_response)
        qualifier = parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier", [None])[0]
        status, headers, body = self._configuration(environ, match["api"], match["name"], qualifier)
        if not status.startswith("200"):
            start_response(status, headers)  # moto's answer: no such function or qualifier
            return [body]
        try:
            return self._invoke(environ, start_response, json.loads(body))
        except InvokeError as exc:
            error = json.dumps({"__type": exc.error_type, "message": exc.message}).encode()
            start_response(
                exc.status,
                [("Content-Type", "application/json"), ("X-Amzn-ErrorType", exc.error_type)],
            )
            return [error]

    def _configuration(
        self, environ: dict[str, Any], api: str, name: str, qualifier: str | None
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """moto's GetFunctionConfiguration for the function invoked, with the caller's
        credentials (its account and region)."""
        lookup = {k: v for k, v in environ.items() if k not in ("RAW_URI", "REQUEST_URI")}
        lookup.update(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": f"/{api}/functions/{name}/configuration",
                "QUERY_STRING": urlencode({"Qualifier": qualifier}) if qualifier else "",
                "CONTENT_LENGTH": "0",
                "wsgi.input": io.BytesIO(b""),
            }
        )
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], *_: Any) -> Callable[..., Any]:
            answer.update(status=status, headers=headers)
            return lambda _data: None

        body = b"".join(self._app(lookup, keep))
        return answer["status"], answer["headers"], body

    def _invoke(
        self, environ: dict[str, Any], start_response: Callable[..., Any], config: dict[str, Any]
    ) -> Iterable[bytes]:
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = _payload(environ["wsgi.input"].read(length) if length else b"")
        headers = [("Content-Type", "application/json")]
        headers.append(("X-Amz-Executed-Version", str(config.get("Version", "$LATEST"))))
        if invocation_type == "DryRun":
            start_response(_STATUS["DryRun"], headers)
            return [b""]
        request = {
            "function": config["FunctionName"],
            "version": str(config.get("Version", "$LATEST")),
            "payload": payload,
            "invocation_type": invocation_type,
        }
        timeout = float(config.get("Timeout") or 3) + _FORWARD_MARGIN_SECONDS
        answer = _forward(self._url, request, timeout)
        if answer.get("function_error"):
            headers.append(("X-Amz-Function-Error", str(answer["function_error"])))
        tail = environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail"
        if answer.get("log_result") and tail and invocation_type == "RequestResponse":
            headers.append(("X-Amz-Log-Result", str(answer["log_result"])))
        result = str(answer.get("payload") or "").encode("utf-8")
        if invocation_type == "Event":
            result = b""
        headers.append(("Content-Length", str(len(result))))
        start_response(_STATUS.get(invocation_type, "200 OK"), headers)
        return [result]


def _payload(body: bytes) -> Any:
    text = body.decode("utf-8")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise InvokeError(
            "InvalidRequestContentException",
            "Could not parse request body into json",
            "400 Bad Request",
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
        if exc.code == 404:
            raise InvokeError("ResourceNotFoundException", message, "404 Not Found") from None
        raise InvokeError("ServiceException", message, "500 Internal Server Error") from None
    except (OSError, ValueError) as exc:
        raise InvokeError(
            "ServiceException",
            f"the local stack's function runtime did not answer: {exc}",
            "500 Internal Server Error",
        ) from None
