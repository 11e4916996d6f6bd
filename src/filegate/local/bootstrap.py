"""The local Lambda runtime's bootstrap: runs inside a worker process, standard library only.

Started as ``python -I -S -u bootstrap.py '<invocation JSON>'``: the argument (``arguments``
builds it) names ``sys.path`` (the unpacked deployment zip and the packages the Lambda runtime
provides, nothing else, so the handler sees what it would see on AWS), the handler, and the
context's attributes. It reads no environment variable: the function's environment is the
function's, and this module imports nothing from filegate, since only the zip (possibly an
older version's) is on its path. It imports the handler once (init), then reads one
invocation per line on stdin and answers with a result line on stdout. The handler's own
output also goes to stdout, as on Lambda; result lines start with RESULT_MARK so the parent
can tell them apart.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

RESULT_MARK = "\x1efilegate-result "


def arguments(path: list[str], handler: str, function: dict[str, Any]) -> str:
    """The bootstrap's one command-line argument: its ``sys.path``, the handler (module.function)
    and the context's attributes (``function_name``, ``function_version``,
    ``invoked_function_arn``, ``memory_limit_in_mb``, ``log_group_name``, ``log_stream_name``)."""
    return json.dumps({"path": path, "handler": handler, "function": function})


class LambdaContext:
    """The attributes of AWS Lambda's context object that handlers use."""

    def __init__(self, function: dict[str, Any], request_id: str, deadline_ms: float) -> None:
        self.function_name = str(function["function_name"])
        self.function_version = str(function.get("function_version", "$LATEST"))
        self.invoked_function_arn = str(function.get("invoked_function_arn", ""))
        self.memory_limit_in_mb = int(function.get("memory_limit_in_mb", 128))
        self.aws_request_id = request_id
        self.log_group_name = str(function.get("log_group_name", ""))
        self.log_stream_name = str(function.get("log_stream_name", ""))
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write("\n" + RESULT_MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def _max_memory_mb() -> int:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used: on Linux a child starts
    with its parent's peak, so it would report the supervisor's memory, not the function's."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _load_handler(spec: str) -> Callable[[Any, LambdaContext], Any]:
    module_name, _, function_name = spec.rpartition(".")
    handler: Callable[[Any, LambdaContext], Any] = getattr(
        importlib.import_module(module_name), function_name
    )
    return handler


def _invoke(
    handler: Callable[[Any, LambdaContext], Any],
    function: dict[str, Any],
    request: dict[str, Any],
) -> dict[str, Any]:
    context = LambdaContext(function, request["request_id"], request["deadline_ms"])
    try:
        result = handler(request["payload"], context)
        json.dumps(result)
    except Exception as exc:
        error = _error(exc)
        sys.stdout.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n")
        return {"ok": False, "error": error, "max_memory_mb": _max_memory_mb()}
    return {"ok": True, "result": result, "max_memory_mb": _max_memory_mb()}


def main(argv: list[str]) -> int:
    given = json.loads(argv[1])
    sys.path[:0] = [p for p in given["path"] if p]
    started = time.perf_counter()
    try:
        handler = _load_handler(given["handler"])
    except Exception as exc:
        _emit({"ready": False, "error": _error(exc)})
        return 1
    _emit({"ready": True, "init_ms": (time.perf_counter() - started) * 1000})
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        answer: dict[str, Any] = _invoke(handler, given["function"], request)
        answer["duration_ms"] = (time.perf_counter() - started) * 1000
        _emit(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
