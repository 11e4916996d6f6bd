"""The local Lambda runtime's bootstrap: runs inside a worker process, standard library only.

Started as ``python -I -S -u bootstrap.py`` with ``sys.path`` limited to the unpacked
deployment zip and the packages the Lambda runtime provides (FILEGATE_RUNTIME_PATH), so the
handler sees what it would see on AWS. It imports the handler once (init), then reads one
invocation per line on stdin and answers with a result line on stdout. The handler's own
output also goes to stdout, as on Lambda; result lines start with RESULT_MARK so the parent
can tell them apart.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

RESULT_MARK = "\x1efilegate-result "


class LambdaContext:
    """The attributes of AWS Lambda's context object that handlers use."""

    def __init__(self, request_id: str, deadline_ms: float) -> None:
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = env.get("FILEGATE_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
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
    handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]
) -> dict[str, Any]:
    context = LambdaContext(request["request_id"], request["deadline_ms"])
    try:
        result = handler(request["payload"], context)
        json.dumps(result)
    except Exception as exc:
        error = _error(exc)
        sys.stdout.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n")
        return {"ok": False, "error": error, "max_memory_mb": _max_memory_mb()}
    return {"ok": True, "result": result, "max_memory_mb": _max_memory_mb()}


def main() -> int:
    sys.path[:0] = [p for p in os.environ["FILEGATE_RUNTIME_PATH"].split(os.pathsep) if p]
    started = time.perf_counter()
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except Exception as exc:
        _emit({"ready": False, "error": _error(exc)})
        return 1
    _emit({"ready": True, "init_ms": (time.perf_counter() - started) * 1000})
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        answer: dict[str, Any] = _invoke(handler, request)
        answer["duration_ms"] = (time.perf_counter() - started) * 1000
        _emit(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
