"""The local Lambda runtime: isolation, timeouts, crashes, init failures, warm reuse.

Workers run tiny purpose-built handlers here, so timeouts and crashes are deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.local.runtime import FunctionSpec, Invocation, Worker, runtime_packages_dir

HANDLERS = """
import os, sys, time
CALLS = {"n": 0}
def ok(event, context):
    CALLS["n"] += 1
    print("hello from", context.function_name)
    return {"calls": CALLS["n"], "remaining": context.get_remaining_time_in_millis(),
            "table": os.environ.get("DDB_TABLE")}
def slow(event, context):
    if event.get("marker"):
        open(event["marker"], "w").close()  # the invocation has begun
    time.sleep(event["sleep"])
    return "late"
def crash(event, context):
    os._exit(3)
def dies_answering(event, context):
    sys.stdout.write("\\n\\x1efilegate-result {\\"ok\\": tr")
    sys.stdout.flush()
    os._exit(3)
def fail(event, context):
    raise ValueError("bad record")
def key(event, context):
    return os.environ.get("AWS_ACCESS_KEY_ID")
def imports(event, context):
    import importlib.util
    return {name: importlib.util.find_spec(name) is not None for name in event["names"]}
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "fn.py").write_text(HANDLERS)
    return directory


def worker(code: Path, handler: str, timeout: int = 5) -> Worker:
    spec = FunctionSpec(
        name="fn",
        arn="arn:aws:lambda:eu-central-1:123456789012:function:fn",
        handler=handler,
        timeout_seconds=timeout,
        memory_mb=128,
        environment={"DDB_TABLE": "ledger"},
        code_dir=code,
        runtime_dir=runtime_packages_dir(code.parent),
    )
    return Worker(spec, Target(region="eu-central-1", endpoint_url="http://127.0.0.1:9"))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def invoke_once(code: Path, handler: str, payload: Any = None) -> Invocation:
    """One invocation on a fresh worker, stopped afterwards."""
    w = worker(code, handler)
    try:
        return w.invoke({} if payload is None else payload)
    finally:
        w.stop()


def test_a_warm_worker_keeps_module_state_and_sees_the_function_env(code: Path) -> None:
    w = worker(code, "fn.ok")
    try:
        first, second = w.invoke({}), w.invoke({})
    finally:
        w.stop()
    assert first.ok
    assert second.ok
    assert first.init_ms is not None
    assert second.init_ms is None
    assert second.result["calls"] == 2
    assert first.result["table"] == "ledger"
    assert 0 < first.result["remaining"] <= 5000
    assert [line for _, line in first.lines] == ["hello from fn"]
    assert first.max_memory_mb > 0


def test_an_environment_past_its_age_is_replaced_with_new_credentials(code: Path) -> None:
    # GIVEN a worker whose role sessions run out (as they do after 12 hours locally)
    issued: list[str] = []

    def credentials(_spec: FunctionSpec) -> dict[str, str]:
        issued.append(f"ASIA{len(issued)}")
        return {"AWS_ACCESS_KEY_ID": issued[-1]}

    now = [0.0]
    spec = worker(code, "fn.key").spec
    w = Worker(spec, Target(region="eu-central-1"), credentials, 100.0, lambda: now[0])
    try:
        first = w.invoke({})
        now[0] = 99.0
        still_warm = w.invoke({})
        now[0] = 100.0  # WHEN the environment reaches its age
        replaced = w.invoke({})
    finally:
        w.stop()

    # THEN the next invocation runs in a fresh environment with a new session
    assert (first.result, still_warm.result, replaced.result) == ("ASIA0", "ASIA0", "ASIA1")
    assert (first.init_ms is None, still_warm.init_ms is None, replaced.init_ms is None) == (
        False,
        True,
        False,
    )


def test_the_function_sees_only_its_code_and_the_runtime_packages(code: Path) -> None:
    found = invoke_once(
        code, "fn.imports", {"names": ["boto3", "botocore", "moto", "typer", "filegate"]}
    )
    assert found.result == {
        "boto3": True,
        "botocore": True,
        "moto": False,
        "typer": False,
        "filegate": False,
    }


def test_a_timed_out_invocation_fails_and_the_worker_is_replaced(code: Path) -> None:
    w = worker(code, "fn.slow", timeout=1)
    try:
        timed_out = w.invoke({"sleep": 5})
        after = w.invoke({"sleep": 0})
    finally:
        w.stop()
    assert not timed_out.ok
    assert timed_out.timed_out
    assert "Task timed out after 1.00 seconds" in timed_out.lines[-1][1]
    assert after.ok
    assert after.result == "late"
    assert after.init_ms is not None  # a fresh environment: a cold start again


def test_a_worker_stopped_when_idle_lets_the_invocation_in_flight_finish(
    code: Path, tmp_path: Path
) -> None:
    # (what a code update does to a stream-fed function's busy worker: the batch in flight
    # must not fail, or the function's errors alarm counts it)
    results: dict[str, Invocation] = {}
    for stopping in ("stop", "stop_when_idle"):
        busy = worker(code, "fn.slow")
        marker = tmp_path / f"{stopping}.begun"
        payload = {"sleep": 1, "marker": str(marker)}

        def run(w: Worker = busy, name: str = stopping, event: Any = payload) -> None:
            results[name] = w.invoke(event)

        thread = threading.Thread(target=run)
        thread.start()
        wait_until(marker.exists)  # the handler is running
        getattr(busy, stopping)()
        thread.join()
        busy.stop()
    assert not results["stop"].ok  # killed in flight
    assert results["stop_when_idle"].ok
    assert results["stop_when_idle"].result == "late"


def test_a_crashed_invocation_fails_without_a_reason_and_recovers(code: Path) -> None:
    crashed = invoke_once(code, "fn.crash")
    assert not crashed.ok
    assert not crashed.timed_out
    assert crashed.error is not None
    assert crashed.error["errorMessage"] == "Runtime exited without providing a reason"


def test_a_worker_that_dies_while_it_answers_fails_the_invocation(code: Path) -> None:
    cut_off = invoke_once(code, "fn.dies_answering")
    assert not cut_off.ok
    assert cut_off.error is not None
    assert cut_off.error["errorMessage"] == "Runtime exited without providing a reason"


def test_a_handler_exception_is_reported_like_lambda(code: Path) -> None:
    failed = invoke_once(code, "fn.fail")
    assert not failed.ok
    assert failed.error is not None
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "bad record"
    assert any("[ERROR] ValueError: bad record" in line for _, line in failed.lines)


def test_an_unimportable_handler_fails_at_init_with_the_reason(code: Path) -> None:
    w = worker(code, "nope.handler")
    with pytest.raises(LocalStackError, match=r"failed to initialise.*nope"):
        w.start()


def test_a_worker_killed_during_init_fails_the_invocation_and_recovers(code: Path) -> None:
    # GIVEN a handler module whose first import dies (a worker killed while it starts)
    (code / "flaky.py").write_text(
        "import os, pathlib\n"
        "marker = pathlib.Path(os.environ['LAMBDA_TASK_ROOT']) / 'started-once'\n"
        "if not marker.exists():\n"
        "    marker.write_text('x')\n"
        "    os._exit(9)\n"
        "def ok(event, context):\n"
        "    return 'up'\n"
    )
    w = worker(code, "flaky.ok")
    try:
        # WHEN it is invoked: the init fails, which fails this invocation (no exception)
        first = w.invoke({})
        # AND the next invocation starts a fresh environment that comes up
        second = w.invoke({})
    finally:
        w.stop()
    assert not first.ok
    assert first.error is not None
    assert first.error["errorType"] == "Runtime.InitError"
    assert "failed to initialise" in first.error["errorMessage"]
    assert second.ok
    assert second.result == "up"
