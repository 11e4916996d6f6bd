"""Swapping the event source mapping's workers (a deploy or rollback): nothing lost, nothing twice.

Real worker processes run a handler that appends each message body to a file named after its
version; the queue is in-process moto. Workers of "version 2" take over while "version 1" is
busy with batches; every message is then recorded exactly once, and what is sent after the
swap is run by version 2 only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from builders import REGION

from filegate.aws import Target
from filegate.local.esm import EventSourceMapping
from filegate.local.provision import MappingConfig
from filegate.local.runtime import FunctionSpec, Worker, runtime_packages_dir

HANDLER = """
import os, time
def record(event, context):
    time.sleep(0.05)  # long enough for batches to be in flight when the swap comes
    with open(os.path.join(os.environ["OUT"], context.function_version), "a") as out:
        for record in event["Records"]:
            out.write(record["body"] + "\\n")
    return {"batchItemFailures": []}
"""


@pytest.fixture
def queue(aws: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    return str(sqs.create_queue(QueueName="swap-test")["QueueUrl"])


def workers(tmp_path: Path, version: str, count: int = 2) -> list[Worker]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "fn.py").write_text(HANDLER)
    spec = FunctionSpec(
        name="fn",
        arn=f"arn:aws:lambda:{REGION}:123456789012:function:fn:{version}",
        handler="fn.record",
        timeout_seconds=10,
        memory_mb=128,
        environment={"OUT": str(tmp_path)},
        code_dir=code,
        runtime_dir=runtime_packages_dir(tmp_path),
        version=version,
    )
    target = Target(region=REGION, endpoint_url="http://127.0.0.1:9")  # the handler calls no AWS
    started = [Worker(spec, target) for _ in range(count)]
    for worker in started:
        worker.start()
    return started


def recorded(tmp_path: Path, version: str) -> list[str]:
    path = tmp_path / version
    return path.read_text().splitlines() if path.exists() else []


def send(queue_url: str, bodies: list[str]) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_swap_loses_nothing_and_runs_nothing_twice(queue: str, tmp_path: Path) -> None:
    mapping = MappingConfig(
        uuid="u",
        queue_arn=f"arn:aws:sqs:{REGION}:123456789012:swap-test",
        function_name="fn:live",
        batch_size=3,
        batching_window_seconds=0,
        report_batch_item_failures=True,
        maximum_concurrency=2,
    )
    first = workers(tmp_path, "1")
    esm = EventSourceMapping(Target(region=REGION), mapping, queue, first, retry_delay_seconds=1)
    esm.start()
    try:
        before = [f"before-{n}" for n in range(60)]
        send(queue, before)
        wait_until(lambda: recorded(tmp_path, "1"))  # version 1 is busy with batches

        second = workers(tmp_path, "2")
        retired = esm.swap(second)
        after = [f"after-{n}" for n in range(20)]
        send(queue, after)
        wait_until(lambda: len(recorded(tmp_path, "1")) + len(recorded(tmp_path, "2")) >= 80)
        time.sleep(1.5)  # anything run twice would show up by now
    finally:
        esm.stop()
    for worker in first + second:
        worker.stop()

    one, two = recorded(tmp_path, "1"), recorded(tmp_path, "2")
    assert sorted(one + two) == sorted(before + after)  # each exactly once
    assert not set(after) & set(one)  # sent after the swap: version 2 only
    assert retired == first
