"""The AWS calls one event costs, observed through botocore's event system.

A behaviour contract, not a mock: the calls really go to the emulator, and every call the
handler's clients make (they come from boto3's default session) is counted on the way.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest
from builders import BUCKET, notification, s3_record, sqs_batch


class CallLog:
    """Each (operation, HTTP status) the default session's clients complete."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def after_call(self, model: Any, http_response: Any, **_: Any) -> None:
        self.calls.append((model.name, http_response.status_code))

    def count(self) -> Counter[str]:
        return Counter(name for name, _ in self.calls)

    def successful(self, name: str) -> int:
        return sum(1 for call, status in self.calls if call == name and status < 300)

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def call_log(invoke: Any) -> CallLog:
    log = CallLog()
    boto3.DEFAULT_SESSION.events.register("after-call.*.*", log.after_call)  # type: ignore[union-attr]
    return log


def put(s3: Any, key: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"counted")


def test_a_created_object_costs_one_head_and_one_update(
    s3: Any, invoke: Any, call_log: CallLog
) -> None:
    put(s3, "one.txt")
    put(s3, "two.txt")
    call_log.clear()

    invoke(sqs_batch(*(notification(s3_record(k, sequencer="01")) for k in ("one.txt", "two.txt"))))

    assert call_log.count() == Counter({"HeadObject": 2, "UpdateItem": 2})


def test_a_removed_object_costs_one_update(s3: Any, invoke: Any, call_log: CallLog) -> None:
    record = s3_record("gone.txt", sequencer="02", event_name="ObjectRemoved:Delete")

    invoke(sqs_batch(notification(record)))

    assert call_log.count() == Counter({"UpdateItem": 1})


def test_a_duplicate_makes_no_successful_write(s3: Any, invoke: Any, call_log: CallLog) -> None:
    put(s3, "dup.txt")
    event = sqs_batch(notification(s3_record("dup.txt", sequencer="03")))
    invoke(event)
    call_log.clear()

    invoke(event)

    assert call_log.count() == Counter({"HeadObject": 1, "UpdateItem": 1})
    assert call_log.successful("UpdateItem") == 0


def test_a_test_event_makes_no_call(s3: Any, invoke: Any, call_log: CallLog) -> None:
    invoke(sqs_batch({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}))

    assert call_log.calls == []
