"""Verdict events end to end on the local stack: ledger stream -> publisher -> bus -> a rule's
SQS target, and `filegate events tail`.

GIVEN a rule the test creates on the stack's bus (its partner's events to a queue of its own),
WHEN one upload is ACCEPTED, one REJECTED, and the accepted one's S3 notification is sent to
the ingest queue again (a duplicate delivery), THEN the queue receives each verdict exactly
once and nothing for the duplicate (checked after a later, known event arrived), each detail
valid against docs/events.schema.json, and `filegate events tail` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from filegate.events import ObjectEvent, notification_record
from filegate.uploads.client import UploadClient
from tests.e2e.conftest import Stack, filegate, own_stack, wait_for
from tests.e2e.upload_api import rejected_upload

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "events.schema.json").read_text())
RULE = "e2e-partner-events"


@pytest.fixture(scope="module")
def partner(stack: Stack) -> dict[str, Any]:
    done = filegate(stack.state_dir, "partner", "add", "events partner", "--output", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def subscribe(stack: Stack, partner_id: str, queue_name: str) -> str:
    """A queue receiving this partner's events through a rule (RULE) on the stack's bus."""
    events = stack.target.client("events")
    bus = stack.env["EventBusName"]
    queue_url = stack.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = stack.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    pattern = {"source": ["filegate"], "detail": {"partner_id": [partner_id]}}
    rule_arn = events.put_rule(Name=RULE, EventBusName=bus, EventPattern=json.dumps(pattern))[
        "RuleArn"
    ]
    # What AWS needs for EventBridge to send to a queue (the emulator does not check it).
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    stack.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=RULE, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return str(queue_url)


def unsubscribe(stack: Stack) -> None:
    events, bus = stack.target.client("events"), stack.env["EventBusName"]
    events.remove_targets(Rule=RULE, EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name=RULE, EventBusName=bus)


@pytest.fixture(scope="module")
def target(stack: Stack, partner: dict[str, Any]) -> Iterator[str]:
    yield subscribe(stack, partner["partner_id"], "e2e-events-target")
    unsubscribe(stack)


class Received:
    """Every event the target queue received so far (each message deleted once read)."""

    def __init__(self, stack: Stack, queue_url: str) -> None:
        self._stack, self._url = stack, queue_url
        self.events: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        answer = self._stack.sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10)
        for message in answer.get("Messages", []):
            self.events.append(json.loads(message["Body"]))
            self._stack.sqs.delete_message(
                QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"]
            )
        return self.events

    def of(self, key: str) -> list[dict[str, Any]]:
        return [e for e in self.drain() if e["detail"]["key"] == key]


def upload(stack: Stack, partner: dict[str, Any], tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(f"{name}\n")
    client = UploadClient(stack.env["upload_api_url"], partner["api_key"])
    result = client.wait(client.upload(path), timeout=60)
    assert result.status == "ACCEPTED", result
    return result.key


def resend_notification(stack: Stack, key: str) -> None:
    """The object's S3 notification again, to the ingest queue, as S3 may deliver it twice:
    the same event name, time, sequencer, version and ETag the ledger recorded."""
    item = stack.item(key)
    assert item is not None
    event = ObjectEvent(
        bucket=stack.bucket,
        key=key,
        event_name=item["event_name"]["S"],
        event_time=item["event_time"]["S"],
        size=int(item["size"]["N"]),
        etag=item["etag"]["S"],
        version_id=item["version_id"]["S"],
        sequencer=item["sequencer"]["S"],
    )
    record = notification_record(event, "AWS:e2e", stack.env["region"], "filegate-0")
    stack.sqs.send_message(
        QueueUrl=stack.env["QueueUrl"], MessageBody=json.dumps({"Records": [record]})
    )


def alarm_state(stack: Stack, name: str) -> str | None:
    listed = filegate(stack.state_dir, "alarms", "--output", "json")
    states = {a["name"]: a["state"] for a in json.loads(listed.stdout)}
    return states.get(name)


def duplicate_recorded(stack: Stack, key: str) -> bool:
    return any(d.get("outcome") == "duplicate" for d in stack.log_documents(key))


def test_each_verdict_reaches_a_rule_target_once_and_a_duplicate_s3_event_none(
    stack: Stack, partner: dict[str, Any], target: str, tmp_path: Path
) -> None:
    received = Received(stack, target)
    # GIVEN one upload ACCEPTED and one REJECTED
    accepted = upload(stack, partner, tmp_path, "accepted.csv")
    plan = rejected_upload(stack, partner)
    wait_for(lambda: received.of(accepted) and received.of(plan["key"]), timeout=30)
    # WHEN the accepted upload's S3 notification is delivered again, and ingested (duplicate)
    resend_notification(stack, accepted)
    wait_for(lambda: duplicate_recorded(stack, accepted), timeout=30)
    # ... and a later upload's event has arrived (anything from the duplicate came before it)
    later = upload(stack, partner, tmp_path, "later.csv")
    wait_for(lambda: received.of(later), timeout=30)

    # THEN each verdict arrived exactly once, and nothing for the duplicate
    events = received.drain()
    assert sorted((e["detail-type"], e["detail"]["key"]) for e in events) == sorted(
        [
            ("Upload Accepted", accepted),
            ("Upload Rejected", plan["key"]),
            ("Upload Accepted", later),
        ]
    )
    assert len({e["detail"]["event_id"] for e in events}) == 3
    for event in events:
        assert event["source"] == "filegate"
        jsonschema.validate(event["detail"], SCHEMA, format_checker=jsonschema.FormatChecker())
    rejected = next(e for e in events if e["detail-type"] == "Upload Rejected")
    assert "differs from the expected" in rejected["detail"]["reason"]

    # AND the bus's archive kept them: a replay of the window delivers them again to the
    # rule's target, with the same event_id (docs/events.md, "Replay from the archive")
    events_api = stack.target.client("events")
    (archive,) = events_api.list_archives()["Archives"]
    replay = events_api.start_replay(
        ReplayName="e2e-replay",
        EventSourceArn=events_api.describe_archive(ArchiveName=archive["ArchiveName"])[
            "ArchiveArn"
        ],
        EventStartTime=datetime.now(UTC) - timedelta(hours=1),
        EventEndTime=datetime.now(UTC),
        Destination={"Arn": events_api.describe_event_bus(Name=stack.env["EventBusName"])["Arn"]},
    )
    assert replay["ReplayArn"].endswith("replay/e2e-replay")
    again = Received(stack, target)
    wait_for(lambda: len(again.drain()) >= 3, timeout=30)
    assert sorted(e["detail"]["event_id"] for e in again.events) == sorted(
        e["detail"]["event_id"] for e in events
    )
    assert {e["replay-name"] for e in again.events} == {"e2e-replay"}

    # AND `filegate events tail` prints them
    tail = filegate(stack.state_dir, "events", "tail", "--since", "15m", "--output", "json")
    assert tail.returncode == 0, tail.stderr
    printed = {e["detail"]["event_id"]: e for e in json.loads(tail.stdout)}
    for event in events:
        assert printed[event["detail"]["event_id"]]["detail-type"] == event["detail-type"]
        assert printed[event["detail"]["event_id"]]["id"] == event["id"]
    readable = filegate(stack.state_dir, "events", "tail", "--since", "15m")
    assert f"Upload Rejected   {plan['key']}" in readable.stdout


def test_changes_not_published_reach_the_dead_letter_queue_and_redrive_publishes_them(
    tmp_path: Path,
) -> None:
    """docs/runbook.md, "9. Verdict events not published", as written."""
    with own_stack(tmp_path / "state") as stack:
        done = filegate(stack.state_dir, "partner", "add", "redrive partner", "--output", "json")
        partner = json.loads(done.stdout)
        events, bus = stack.target.client("events"), stack.env["EventBusName"]
        # GIVEN a bus that is gone: every PutEvents of the publisher is refused
        for archive in events.list_archives()["Archives"]:
            events.delete_archive(ArchiveName=archive["ArchiveName"])
        events.delete_event_bus(Name=bus)
        key = upload(stack, partner, tmp_path, "unpublished.csv")
        # WHEN the mapping has given up on the batch (retries, bisected to the one record)
        dead_letters = stack.env["EventsDeadLetterQueueUrl"]
        wait_for(lambda: stack.queue_depth(dead_letters) >= 1, timeout=60)
        # ... which the alarm the runbook starts from reports
        alarm = f"{stack.env['FunctionName']}-events-dlq-not-empty"
        wait_for(lambda: alarm_state(stack, alarm) == "ALARM", timeout=90, interval=2)
        # ... and the cause is fixed (the bus is back) and the batches are redriven
        events.create_event_bus(Name=bus)
        queue_url = subscribe(stack, partner["partner_id"], "e2e-redrive-target")
        redriven = filegate(stack.state_dir, "events", "redrive", "--output", "json")

        # THEN the change is published, once, and the dead-letter queue is empty
        assert redriven.returncode == 0, redriven.stderr + redriven.stdout
        (result,) = json.loads(redriven.stdout)
        assert (result["records"], result["published"]) == (1, True)
        received = Received(stack, queue_url)
        wait_for(lambda: received.of(key), timeout=30)
        assert [e["detail-type"] for e in received.drain()] == ["Upload Accepted"]
        assert stack.queue_depth(dead_letters) == 0
