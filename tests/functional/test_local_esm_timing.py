"""AWS's retry timing in the local event source mapping (``--aws-timing``).

On AWS a failed message becomes visible again when the visibility timeout it was received with
runs out (the queue's: 180 s for filegate's); locally it comes back after
FILEGATE_LOCAL_RETRY_DELAY seconds unless AWS's timing is asked for. The queue here has a short
visibility timeout so that no test waits 180 s. Queue: in-process moto; worker: a real process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from builders import REGION
from esm_builders import NO_AWS, handler_spec, mapping

from filegate.aws import Target
from filegate.local.esm import EventSourceMapping
from filegate.local.runtime import Worker
from filegate.settings import ENV_LOCAL_AWS_TIMING, ENV_LOCAL_RETRY_DELAY, LocalSettings

VISIBILITY_TIMEOUT = 8  # seconds; the template's queue has 180
RETRY_DELAY = 1
MARKER_DELAY = 3  # after the first failure: past the retry delay, well before the timeout

# "poison" fails every time; every delivery is written down, in order.
HANDLER = """
import os
def record(event, context):
    failed = []
    with open(os.path.join(os.environ["OUT"], "recorded"), "a") as out:
        for record in event["Records"]:
            out.write(record["body"] + "\\n")
            if record["body"] == "poison":
                failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}
"""


def recorded(tmp_path: Path) -> list[str]:
    path = tmp_path / "recorded"
    return path.read_text().splitlines() if path.exists() else []


def wait_recorded(
    tmp_path: Path, condition: Callable[[list[str]], bool], timeout: float = 30
) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = recorded(tmp_path)
        if condition(lines):
            return lines
        time.sleep(0.05)
    raise AssertionError(f"not recorded within {timeout} s: {recorded(tmp_path)}")


def in_flight(sqs: Any, queue_url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def settled_in_flight(sqs: Any, queue_url: str, timeout: float = 5) -> tuple[int, int]:
    """``in_flight`` once at most one message is in flight (a handled message's delete lands
    a moment after its handler returns), or as it is at ``timeout``."""
    deadline = time.monotonic() + timeout
    counts = in_flight(sqs, queue_url)
    while counts[1] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = in_flight(sqs, queue_url)
    return counts


@pytest.mark.parametrize("aws_timing", [True, False])
def test_a_failed_message_comes_back_after_the_visibility_timeout_with_aws_timing(
    aws: None, tmp_path: Path, aws_timing: bool
) -> None:
    settings = LocalSettings.resolve(
        env={ENV_LOCAL_AWS_TIMING: "1" if aws_timing else "0", ENV_LOCAL_RETRY_DELAY: "1"}
    )
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(
        QueueName="timing-test", Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)}
    )["QueueUrl"]
    worker = Worker(handler_spec(tmp_path, HANDLER, "1"), NO_AWS)
    esm = EventSourceMapping(
        Target(region=REGION),
        mapping("timing-test", batch_size=1, maximum_concurrency=1),
        queue_url,
        [worker],
        settings.failed_message_delay,
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody="poison")
    esm.start()
    try:
        wait_recorded(tmp_path, lambda lines: lines == ["poison"])
        # GIVEN the first delivery failed, WHEN a message due after the retry delay arrives
        sqs.send_message(QueueUrl=queue_url, MessageBody="marker", DelaySeconds=MARKER_DELAY)
        lines = wait_recorded(tmp_path, lambda lines: "marker" in lines)
        if aws_timing:
            # THEN the failed message is still in flight (the retry delay did not release it)
            assert lines == ["poison", "marker"]
            # (the marker is deleted just after its handler wrote it down: wait for that first)
            assert settled_in_flight(sqs, queue_url) == (0, 1)
            # ... and it is delivered again once the visibility timeout has run out
            lines = wait_recorded(tmp_path, lambda lines: lines.count("poison") == 2)
            assert lines == ["poison", "marker", "poison"]
        else:
            # the local default: back after the retry delay, before the marker
            assert lines[:2] == ["poison", "poison"]
    finally:
        esm.stop()
        worker.stop()


def test_the_default_is_the_local_retry_delay() -> None:
    settings = LocalSettings.resolve(env={})

    assert settings.aws_timing is False
    assert settings.failed_message_delay == 2
    assert LocalSettings.resolve(env={ENV_LOCAL_AWS_TIMING: "1"}).failed_message_delay is None
    assert (
        LocalSettings.resolve(env={ENV_LOCAL_AWS_TIMING: "1"}, aws_timing=False).aws_timing is False
    )
