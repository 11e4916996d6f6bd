"""The local Function URL: HTTP on 127.0.0.1 turned into Lambda invocations, and back.

As chalice's LocalGateway does for API Gateway, this turns each HTTP request into the event a
Lambda function URL sends (payload format 2.0), invokes the deployed function in a warm worker,
and turns the function's answer into the HTTP response. CORS preflights are answered from the
URL's ``Cors`` configuration in the template, as the function URL service does on AWS. When all
workers are busy for longer than ``QUEUE_TIMEOUT_SECONDS`` the answer is 429, as Lambda's
throttle gives. A failed, timed-out or crashed invocation answers 502, as a function URL does.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from filegate.local.runtime import Invocation, Worker

logger = logging.getLogger(__name__)

QUEUE_TIMEOUT_SECONDS = 10.0
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")

InvocationObserver = Callable[[Worker, Invocation], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of more new connections than that
    # overflows it and clients see resets, where a function URL takes the connections and
    # throttles with 429 if need be. 128 is Linux's default somaxconn before 5.4.
    request_queue_size = 128


def function_url_event(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    domain: str,
) -> dict[str, Any]:
    """The event a Lambda function URL sends for one HTTP request (payload format 2.0)."""
    parts = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers.items()}
    text = _is_text(lowered.get("content-type", ""))
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": domain.split(".", 1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if parts.query:
        event["queryStringParameters"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if body:
        try:
            event["body"] = body.decode("utf-8") if text else base64.b64encode(body).decode()
        except UnicodeDecodeError:  # a "text" body that is not UTF-8 travels base64, as on AWS
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def _is_text(content_type: str) -> bool:
    return content_type.lower().startswith(_TEXT_TYPES) or content_type == ""


def http_response(invocation: Invocation) -> tuple[int, dict[str, str], bytes]:
    """The HTTP answer for an invocation, by the function URL's rules."""
    if not invocation.ok:
        return 502, {"content-type": "application/json"}, b'{"Message":"Internal Server Error"}'
    result = invocation.result
    if not (isinstance(result, dict) and "statusCode" in result):
        # A function that returns plain JSON gets a 200 with that JSON, as on AWS.
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return int(result["statusCode"]), headers, body


def cors_headers(cors: Mapping[str, Any], origin: str | None, preflight: bool) -> dict[str, str]:
    """The CORS headers the function URL service adds for this request's origin."""
    allowed = [str(o) for o in cors.get("AllowOrigins", [])]
    if not origin or not allowed or ("*" not in allowed and origin not in allowed):
        return {}
    headers = {"access-control-allow-origin": "*" if "*" in allowed else origin}
    if preflight:
        headers["access-control-allow-methods"] = ",".join(cors.get("AllowMethods", []))
        headers["access-control-allow-headers"] = ",".join(cors.get("AllowHeaders", []))
        if "MaxAge" in cors:
            headers["access-control-max-age"] = str(cors["MaxAge"])
    if cors.get("ExposeHeaders"):
        headers["access-control-expose-headers"] = ",".join(cors["ExposeHeaders"])
    return headers


class FunctionUrlGateway:
    """An HTTP server on 127.0.0.1 in front of a function's warm workers."""

    def __init__(
        self,
        workers: list[Worker],
        port: int,
        cors: Mapping[str, Any],
        domain: str,
        observer: InvocationObserver | None = None,
    ) -> None:
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._size = len(workers)
        for worker in workers:
            self._idle.put(worker)
        self._cors = dict(cors)
        self._domain = domain
        self._observer = observer
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gateway", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def swap(self, workers: list[Worker]) -> list[Worker]:
        """Serve with these workers from now on; return the old ones once each is idle."""
        old, old_size = self._idle, self._size
        self._idle, self._size = queue.Queue(), len(workers)
        for worker in workers:
            self._idle.put(worker)
        return [old.get() for _ in range(old_size)]  # in-flight requests finish first

    def invoke(self, event: dict[str, Any]) -> Invocation | None:
        """Run one event on an idle worker; None when every worker stayed busy (throttled)."""
        idle = self._idle  # a request started before a swap gives its worker back there
        try:
            worker = idle.get(timeout=QUEUE_TIMEOUT_SECONDS)
        except queue.Empty:
            return None
        try:
            invocation = worker.invoke(event)
        finally:
            idle.put(worker)
        if self._observer:
            self._observer(worker, invocation)
        return invocation

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                origin = self.headers.get("origin")
                if self.command == "OPTIONS" and self.headers.get("access-control-request-method"):
                    self._send(204, cors_headers(gateway._cors, origin, preflight=True), b"")
                    return
                event = function_url_event(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    self.client_address[0],
                    gateway._domain,
                )
                invocation = gateway.invoke(event)
                if invocation is None:
                    status, headers, payload = (
                        429,
                        {"content-type": "application/json"},
                        (b'{"Message":"Rate Exceeded."}'),
                    )
                else:
                    status, headers, payload = http_response(invocation)
                headers.update(cors_headers(gateway._cors, origin, preflight=False))
                self._send(status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve
            do_TRACE = do_CONNECT = _serve  # the function answers every method, as on AWS

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("gateway %s", format % args)

        return Handler
