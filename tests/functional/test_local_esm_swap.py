"""Swapping the event source mapping's workers (a deploy or rollback): nothing lost, nothing twice.

Real worker processes run a handler that appends each message body to a file named after its
version; the queue is in-process moto. Workers of "version 2" take over while "version 1" is
busy with batches; once the queue is empty, every message is recorded exactly once, and what
is sent after the swap is run by version 2 only.

The queue is served with the emulator's SQS seam applied (``patches.applied()``), as the local
stack serves it: moto 5.2.5's ``receive_message`` checks that a message is visible and then
marks it received with no lock between, so with four pollers receiving at once during the swap
two of them can be handed the same message (a CI run recorded one body twice). SQS never
hands a message to two receivers within its visibility timeout; the seam's receive takes the
queue's lock, as the local stack's emulator does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from builders import REGION
from esm_builders import NO_AWS, create_queue, handler_spec, mapping, send

from filegate.aws import Target
from filegate.local import patches
from filegate.local.esm import EventSourceMapping
from filegate.local.runtime import Worker

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
def queue(aws: None) -> Iterator[str]:
    with patches.applied():
        yield create_queue("swap-test")


def workers(tmp_path: Path, version: str, count: int = 2) -> list[Worker]:
    spec = handler_spec(tmp_path, HANDLER, version)
    started = [Worker(spec, NO_AWS) for _ in range(count)]
    for worker in started:
        worker.start()
    return started


def recorded(tmp_path: Path, version: str) -> list[str]:
    path = tmp_path / version
    return path.read_text().splitlines() if path.exists() else []


def queue_is_empty(queue_url: str) -> bool:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return all(count == "0" for count in attributes.values())


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_swap_loses_nothing_and_runs_nothing_twice(queue: str, tmp_path: Path) -> None:
    first = workers(tmp_path, "1")
    swap_mapping = mapping("swap-test", batch_size=3, maximum_concurrency=2)
    esm = EventSourceMapping(
        Target(region=REGION), swap_mapping, queue, first, retry_delay_seconds=1
    )
    esm.start()
    try:
        before = [f"before-{n}" for n in range(60)]
        send(queue, before)
        wait_until(lambda: recorded(tmp_path, "1"))  # version 1 is busy with batches

        second = workers(tmp_path, "2")
        retired = esm.swap(second)
        after = [f"after-{n}" for n in range(20)]
        send(queue, after)
        # Every message deleted (none visible, in flight or back after its retry delay): no
        # batch is left that could run again, and stop() waits for the one being delivered.
        wait_until(lambda: queue_is_empty(queue))
    finally:
        esm.stop()
    for worker in first + second:
        worker.stop()

    one, two = recorded(tmp_path, "1"), recorded(tmp_path, "2")
    assert sorted(one + two) == sorted(before + after)  # each exactly once
    assert not set(after) & set(one)  # sent after the swap: version 2 only
    assert retired == first
