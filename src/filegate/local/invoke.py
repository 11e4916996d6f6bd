"""The Lambda Invoke API on the local stack: the emulator forwards it here, the workers run it.

moto cannot run function code (no docker). The emulator answers Invoke itself
(``invoke_forwarding``, middleware) by forwarding each call to ``InvokeServer``, an HTTP server of
the supervisor on 127.0.0.1, which runs it on the function's warm workers (``LocalFunctions``:
the same workers the event source mapping and the function URL gateway use) and records it
with the telemetry, so the logs and the AWS/Lambda metrics (Errors...) appear as on AWS.
``aws lambda invoke`` against the local endpoint then runs the deployed code.

The supervisor registers each function's workers with ``LocalFunctions.register`` and may
register them again (a deploy or rollback swapping workers): an invocation uses what is
registered when it starts.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from filegate.errors import LocalStackError
from filegate.local.cloudwatch import lambda_log_lines
from filegate.local.invoke_forwarding import ENV_INVOKE_URL, INVOKE_PATH
from filegate.local.runtime import FunctionSpec, Invocation, Worker

logger = logging.getLogger(__name__)

LATEST = "$LATEST"
_LOG_TAIL_BYTES = 4096  # Lambda's LogResult: the last 4 KB of the invocation's log

InvocationObserver = Callable[[Worker, Invocation], None]


@dataclass(frozen=True)
class _Pool:
    spec: FunctionSpec
    workers: tuple[Worker, ...]
    observer: InvocationObserver | None
    versions: frozenset[str]


class FunctionNotRunningError(LocalStackError):
    """The local stack runs no workers for this function (or not for this version)."""


class LocalFunctions:
    """The functions the local stack runs, by name: what a direct Invoke runs on."""

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def register(
        self,
        spec: FunctionSpec,
        workers: Collection[Worker],
        observer: InvocationObserver | None = None,
        versions: Collection[str] = (LATEST,),
    ) -> None:
        """Run direct invocations of ``spec.name`` (at these versions) on these workers."""
        if not workers:
            raise ValueError(f"function {spec.name}: no workers to register")
        pool = _Pool(spec, tuple(workers), observer, frozenset(versions))
        with self._lock:
            self._pools[spec.name] = pool

    def invoke(self, name: str, version: str, payload: Any) -> tuple[FunctionSpec, Invocation]:
        """Run one invocation on one of the function's workers; record it like the others."""
        pool = self._pool(name, version)
        worker = pool.workers[next(self._turn) % len(pool.workers)]
        invocation = worker.invoke(payload)
        if pool.observer:
            pool.observer(worker, invocation)
        return pool.spec, invocation

    def require(self, name: str, version: str) -> None:
        """Raise FunctionNotRunningError unless an invocation of this could run."""
        self._pool(name, version)

    def _pool(self, name: str, version: str) -> _Pool:
        with self._lock:
            pool = self._pools.get(name)
        if pool is None:
            raise FunctionNotRunningError(f"the local stack runs no function {name}")
        if version not in pool.versions:
            running = ", ".join(sorted(pool.versions))
            raise FunctionNotRunningError(
                f"the local stack runs function {name} at version {running}, not {version}"
            )
        return pool


def invoke_answer(spec: FunctionSpec, invocation: Invocation, version: str) -> dict[str, Any]:
    """What the emulator answers an Invoke with: payload, function error, log tail."""
    if invocation.ok:
        payload = json.dumps(invocation.result)
    else:
        error = dict(invocation.error or {})
        payload = json.dumps(
            {
                "errorMessage": error.get("errorMessage", ""),
                "errorType": error.get("errorType", "Unhandled"),
                "requestId": invocation.request_id,
                "stackTrace": error.get("stackTrace", []),
            }
        )
    lines = lambda_log_lines(spec, invocation, int(time.time() * 1000))
    text = "".join(f"{event['message']}\n" for event in lines).encode("utf-8")
    return {
        "payload": payload,
        "function_error": None if invocation.ok else "Unhandled",
        "log_result": base64.b64encode(text[-_LOG_TAIL_BYTES:]).decode("ascii"),
        "executed_version": version,
    }


class InvokeServer:
    """HTTP on 127.0.0.1 (a free port) that runs the emulator's forwarded Invoke calls."""

    def __init__(self, functions: LocalFunctions) -> None:
        self._functions = functions
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="invoke-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def emulator_env(self) -> dict[str, str]:
        """What the emulator process needs in its environment to forward Invoke here."""
        return {ENV_INVOKE_URL: self.url}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def handle(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One forwarded Invoke: (HTTP status, answer document)."""
        name, version = str(request["function"]), str(request.get("version") or LATEST)
        payload = request.get("payload")
        if request.get("invocation_type") == "Event":
            self._functions.require(name, version)  # refuse at once if it cannot run
            threading.Thread(
                target=self._functions.invoke, args=(name, version, payload), daemon=True
            ).start()
            return 202, {"payload": "", "function_error": None, "executed_version": version}
        spec, invocation = self._functions.invoke(name, version, payload)
        return 200, invoke_answer(spec, invocation, version)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if self.path != INVOKE_PATH:
                    self._send(404, {"message": f"no such path {self.path}"})
                    return
                length = int(self.headers.get("content-length") or 0)
                try:
                    status, answer = server.handle(json.loads(self.rfile.read(length)))
                except FunctionNotRunningError as exc:
                    status, answer = 404, {"message": str(exc)}
                except (ValueError, KeyError, TypeError) as exc:
                    status, answer = 400, {"message": f"malformed forwarded Invoke: {exc}"}
                self._send(status, answer)

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("invoke server %s", format % args)

        return Handler
