"""The local event source mapping keeps every message when a worker cannot run a batch.

A worker killed while it starts (its init fails), or anything unexpected raised while a batch
is delivered, must fail that batch only: its messages come back after the retry delay and
the poller goes on, as Lambda's poller does. Queue: in-process moto; workers: real processes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from builders import REGION
from esm_builders import NO_AWS, create_queue, handler_spec, mapping, send

from filegate.aws import Target
from filegate.local.esm import EventSourceMapping, QueueConnector
from filegate.local.runtime import Invocation, Worker

# The first import of the module dies, as a worker killed during its init phase does.
HANDLER = """
import os, pathlib
marker = pathlib.Path(os.environ["OUT"]) / "started-once"
if not marker.exists():
    marker.write_text("x")
    os._exit(9)
def record(event, context):
    with open(os.path.join(os.environ["OUT"], "recorded"), "a") as out:
        for record in event["Records"]:
            out.write(record["body"] + "\\n")
    return {"batchItemFailures": []}
"""

MAPPING = mapping("recovery-test", batch_size=5, maximum_concurrency=1)


@pytest.fixture
def queue(aws: None) -> str:
    return create_queue("recovery-test")


def flaky_worker(tmp_path: Path) -> Worker:
    return Worker(handler_spec(tmp_path, HANDLER, "1"), NO_AWS)


class ExplodesOnce(Worker):
    """A worker whose first delivery raises something no invocation should raise."""

    exploded = False

    def invoke(self, payload: Any) -> Invocation:
        if not self.exploded:
            self.exploded = True
            raise RuntimeError("unexpected")
        return super().invoke(payload)


def recorded_within(tmp_path: Path, count: int, timeout: float) -> list[str]:
    path = tmp_path / "recorded"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return path.read_text().splitlines() if path.exists() else []


def queue_depth(queue_url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def deliver_all(
    queue: str,
    tmp_path: Path,
    worker: Worker,
    connect: QueueConnector | None = None,
    count: int = 5,
) -> None:
    """Every message is recorded once and deleted, even those whose first delivery fails
    (they come back after the retry delay, to the same poller)."""
    esm = EventSourceMapping(
        Target(region=REGION), MAPPING, queue, [worker], retry_delay_seconds=1, connect=connect
    )
    bodies = [f"message-{n}" for n in range(count)]
    send(queue, bodies)
    esm.start()
    try:
        lines = recorded_within(tmp_path, len(bodies), timeout=15)
        deadline = time.monotonic() + 5
        while queue_depth(queue) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        esm.stop()
        worker.stop()
    assert sorted(lines) == sorted(bodies)
    assert queue_depth(queue) == (0, 0)  # all deleted, none left in flight


def test_a_worker_killed_during_init_fails_one_batch_only(queue: str, tmp_path: Path) -> None:
    deliver_all(queue, tmp_path, flaky_worker(tmp_path))


def test_an_unexpected_error_in_delivery_fails_one_batch_only(queue: str, tmp_path: Path) -> None:
    (tmp_path / "started-once").write_text("x")  # this worker's init is fine
    spec = flaky_worker(tmp_path).spec
    deliver_all(queue, tmp_path, ExplodesOnce(spec, NO_AWS))
