"""`filegate events tail`'s reader against in-process moto's CloudWatch Logs.

GIVEN the publisher's log group holding its lines (Lambda's frame lines, other JSON lines and
one ``event published`` line per event), THEN the reader gives back exactly the events, as
the bus received them, reading and following.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from builders import REGION

from filegate.aws import Target
from filegate.ops.events import EventTail, published
from filegate.ops.logs import parse_duration
from filegate.stackref import StackRef

FUNCTION = "filegate-ingest-events"
GROUP = f"/aws/lambda/{FUNCTION}"


def event(key: str, event_id: str) -> dict[str, Any]:
    return {
        "id": f"eb-{event_id}",
        "source": "filegate",
        "detail-type": "Upload Accepted",
        "time": "2026-12-06T12:00:00Z",
        "detail": {"key": key, "event_id": event_id, "reason": None},
    }


@pytest.fixture
def tail(aws: None) -> EventTail:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="s")
    now = int(time.time() * 1000)
    lines = [
        "START RequestId: r1 Version: $LATEST",
        json.dumps({"level": "INFO", "message": "event published", "event": event("a", "1")}),
        json.dumps({"level": "WARNING", "message": "EventBridge refused 1 of 2 entries"}),
        json.dumps({"level": "INFO", "message": "event published", "event": event("b", "2")}),
        "not json {",
        "END RequestId: r1",
    ]
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
    )
    ref = StackRef(Target(region=REGION), "filegate", {"EventsFunctionName": FUNCTION})
    return EventTail(ref)


def test_tail_reads_only_the_published_events(tail: EventTail) -> None:
    shown = tail.read(parse_duration("15m"))

    assert [e.document["detail"]["key"] for e in shown] == ["a", "b"]
    assert shown[0].readable() == "2026-12-06T12:00:00Z  Upload Accepted   a  event_id=1"


def test_follow_yields_each_event_once(tail: EventTail) -> None:
    followed = list(tail.follow(parse_duration("15m"), sleep=lambda _: None, polls=2))

    assert [e.document["id"] for e in followed] == ["eb-1", "eb-2"]


def test_other_lines_are_not_events() -> None:
    assert published({"message": '{"message": "event published"}'}) is None  # no event
    assert published({"message": '{"message": "other", "event": {}}'}) is None
    assert published({"message": "REPORT RequestId: r1"}) is None
