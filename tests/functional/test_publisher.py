"""The verdict-events publisher against in-process moto: ledger writes in, bus events out.

GIVEN the ledger table created as the local stack creates it from the template (its stream
included), an EventBridge bus and a rule sending every `filegate` event to an SQS queue, WHEN
the ledger changes through ``Ledger`` (declare, record, expire, abort) and the publisher runs on
the stream's new records as Lambda would hand them over, THEN the queue holds exactly one event
per change that matters, each detail valid against docs/events.schema.json, and nothing for a
change that does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from builders import BUCKET, REGION
from conftest import FakeContext

from filegate import template as cfn
from filegate.ledger import Declaration, Ledger, LedgerEntry, Outcome, Status, lambda_record
from filegate.local.stack_tables import create_table_request
from filegate.publish import handler
from filegate.publish.bus import EventBus
from filegate.publish.exceptions import PublishError
from filegate.publish.mapping import (
    OBJECT_DELETED,
    OBJECT_RECEIVED,
    UPLOAD_ABORTED,
    UPLOAD_ACCEPTED,
    UPLOAD_EXPIRED,
    UPLOAD_REJECTED,
    verdict_event,
)

TABLE = "filegate-ledger-events-test"
BUS = "filegate-events-test"
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "events.schema.json").read_text())
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SHA256_HEX = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
SHA256_B64 = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


class Pipeline:
    """The ledger, its stream, the publisher and a queue target of the bus."""

    def __init__(self) -> None:
        self.ledger = Ledger(TABLE, client("dynamodb"), clock=lambda: NOW)
        # botocore derives an account-based endpoint from a stream ARN, which in-process moto
        # does not route; the service's own endpoint, named, is routed.
        self._streams = boto3.client(
            "dynamodbstreams",
            region_name=REGION,
            endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com",
        )
        stream_arn = client("dynamodb").describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self.stream_arn = str(stream_arn)
        shard = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn,
            ShardId=shard["Shards"][0]["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        sqs = client("sqs")
        self.queue_url = sqs.create_queue(QueueName="events-target")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events = client("events")
        events.create_event_bus(Name=BUS)
        events.put_rule(
            Name="everything", EventBusName=BUS, EventPattern=json.dumps({"source": ["filegate"]})
        )
        target = {"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}
        events.put_targets(Rule="everything", EventBusName=BUS, Targets=[target])

    def new_records(self) -> list[dict[str, Any]]:
        """The stream's records since the last call, as Lambda hands them to the function."""
        answer = self._streams.get_records(ShardIterator=self._iterator)
        self._iterator = answer["NextShardIterator"]
        return [lambda_record(r, self.stream_arn, REGION) for r in answer["Records"]]

    def publish(self) -> dict[str, Any]:
        """The publisher, run on the stream's new records (one batch)."""
        records = self.new_records()
        answer: dict[str, Any] = handler.lambda_handler({"Records": records}, FakeContext())
        return answer

    def delivered(self) -> list[dict[str, Any]]:
        """Every event the rule delivered to the queue so far (received and deleted)."""
        sqs, found = client("sqs"), []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def pipeline(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    properties = cfn.load()["Resources"]["LedgerTable"]["Properties"]
    client("dynamodb").create_table(**create_table_request(TABLE, properties))
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    handler.build_bus.cache_clear()  # its EventBridge client must be made inside moto
    yield Pipeline()
    handler.build_bus.cache_clear()


def declared(key: str = "acme/up-abcdefghijklmnopqrstuvwxyz/report.csv") -> Declaration:
    return Declaration(
        key=key,
        bucket=BUCKET,
        upload_id=key.split("/")[1],
        partner_id="acme",
        size=11,
        sha256=SHA256_HEX,
        content_type="text/csv",
        method="PUT",
        expires_at=NOW + timedelta(minutes=15),
        expected_checksum_sha256=SHA256_B64,
    )


def arrival(
    key: str, status: Status, sequencer: str = "0055AED6DCD90281E5", **fields: Any
) -> LedgerEntry:
    values: dict[str, Any] = {
        "size": 11,
        "content_type": "text/csv",
        "etag": '"5eb63bbbe01eeed093cb22bb8f5acdc3"',
        "checksum_sha256": SHA256_B64,
        "checksum_type": "FULL_OBJECT",
        "version_id": "v1",
    }
    values.update(fields)
    return LedgerEntry(
        key=key,
        bucket=BUCKET,
        status=status,
        event_name="ObjectCreated:Put" if status is not Status.DELETED else "ObjectRemoved:Delete",
        event_time="2026-12-06T12:00:01.000Z",
        sequencer=sequencer,
        **values,
    )


def test_the_template_gives_the_ledger_a_stream_of_old_and_new_images(pipeline: Pipeline) -> None:
    table = client("dynamodb").describe_table(TableName=TABLE)["Table"]

    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_each_verdict_reaches_the_bus_once_with_its_detail_type(pipeline: Pipeline) -> None:
    accepted, rejected, expired, aborted = (
        declared(f"acme/up-{letter * 26}/report.csv") for letter in "abcd"
    )
    for declaration in (accepted, rejected, expired, aborted):
        pipeline.ledger.declare(declaration)
    pipeline.ledger.record(arrival(accepted.key, Status.ACCEPTED))
    reason = "size 12 differs from the declared size 11"
    pipeline.ledger.record(arrival(rejected.key, Status.REJECTED, size=12, reason=reason))
    pipeline.ledger.expire(expired.key, NOW + timedelta(hours=1))
    pipeline.ledger.abort(aborted.key, NOW)
    pipeline.ledger.record(arrival("loose/file.bin", Status.RECEIVED))
    pipeline.ledger.record(
        arrival("loose/file.bin", Status.DELETED, sequencer="0055AED6DCD90281F0")
    )

    answer = pipeline.publish()
    delivered = pipeline.delivered()

    assert answer["published"] == 6
    assert [(e["detail-type"], e["detail"]["key"]) for e in delivered] == [
        (UPLOAD_ACCEPTED, accepted.key),
        (UPLOAD_REJECTED, rejected.key),
        (UPLOAD_EXPIRED, expired.key),
        (UPLOAD_ABORTED, aborted.key),
        (OBJECT_RECEIVED, "loose/file.bin"),
        (OBJECT_DELETED, "loose/file.bin"),
    ]
    assert {e["source"] for e in delivered} == {"filegate"}
    for event in delivered:
        jsonschema.validate(event["detail"], SCHEMA, format_checker=jsonschema.FormatChecker())
    assert delivered[1]["detail"]["reason"] == reason
    assert delivered[0]["detail"]["checksums"]["sha256"] == SHA256_B64
    assert delivered[0]["detail"]["partner_id"] == "acme"
    assert delivered[0]["detail"]["declared"]["sha256"] == SHA256_HEX
    assert delivered[5]["detail"]["size"] is None  # nothing is there any more


def test_an_upload_whose_bytes_s3_refused_is_rejected_on_the_bus_with_no_object(
    pipeline: Pipeline,
) -> None:
    upload = declared()
    pipeline.ledger.declare(upload)
    reason = "S3 refused the bytes sent as not matching the declared sha256 (BadDigest)"
    assert pipeline.ledger.reject(upload.key, reason, NOW) is not None

    pipeline.publish()
    (event,) = pipeline.delivered()

    assert (event["detail-type"], event["detail"]["reason"]) == (UPLOAD_REJECTED, reason)
    assert (event["detail"]["size"], event["detail"]["etag"]) == (None, None)
    assert event["detail"]["checksums"]["sha256"] is None
    jsonschema.validate(event["detail"], SCHEMA, format_checker=jsonschema.FormatChecker())


def test_a_declaration_and_bookkeeping_writes_publish_nothing(pipeline: Pipeline) -> None:
    upload = declared()
    pipeline.ledger.declare(upload)
    pipeline.ledger.extend(upload.key, NOW + timedelta(hours=1), NOW)
    pipeline.ledger.expect_checksum(upload.key, SHA256_B64, NOW)
    assert pipeline.publish() == {"records": 3, "published": 0}

    # The change that comes after them is published, and only it.
    pipeline.ledger.record(arrival(upload.key, Status.ACCEPTED))
    pipeline.publish()

    assert [e["detail-type"] for e in pipeline.delivered()] == [UPLOAD_ACCEPTED]


def test_a_duplicate_s3_event_publishes_nothing(pipeline: Pipeline) -> None:
    entry = arrival("loose/file.bin", Status.RECEIVED)
    assert pipeline.ledger.record(entry) is Outcome.WRITTEN
    assert pipeline.ledger.record(entry) is Outcome.DUPLICATE
    pipeline.ledger.record(arrival("loose/later.bin", Status.RECEIVED))

    pipeline.publish()

    keys = [e["detail"]["key"] for e in pipeline.delivered()]
    assert keys == ["loose/file.bin", "loose/later.bin"]


def test_a_rewrite_that_changes_no_object_field_publishes_nothing(pipeline: Pipeline) -> None:
    # The same verdict written again for the same object version, only bookkeeping changed
    # (AWS streams no record for a write that changes nothing; a write of updated_at alone
    # is streamed): no news.
    pipeline.ledger.record(arrival("loose/file.bin", Status.RECEIVED))
    # moto also streams the key-only item its UpdateItem creates first: the last record is
    # the write's (AWS streams one INSERT).
    insert = pipeline.new_records()[-1]
    modify = json.loads(json.dumps(insert))
    modify["eventName"] = "MODIFY"
    modify["dynamodb"]["OldImage"] = insert["dynamodb"]["NewImage"]
    modify["dynamodb"]["NewImage"] = {
        **insert["dynamodb"]["NewImage"],
        "updated_at": {"S": "2026-12-06T13:00:00.000Z"},
    }

    assert verdict_event(insert) is not None
    assert verdict_event(modify) is None


def test_a_new_version_of_an_object_is_received_again_under_a_new_id(pipeline: Pipeline) -> None:
    pipeline.ledger.record(arrival("loose/file.bin", Status.RECEIVED))
    pipeline.ledger.record(
        arrival("loose/file.bin", Status.RECEIVED, sequencer="0055AED6DCD90281F0", version_id="v2")
    )

    pipeline.publish()
    delivered = pipeline.delivered()

    assert [e["detail"]["version_id"] for e in delivered] == ["v1", "v2"]
    assert delivered[0]["detail"]["event_id"] != delivered[1]["detail"]["event_id"]


def test_the_event_id_is_the_same_whenever_the_same_change_is_published(
    pipeline: Pipeline,
) -> None:
    upload = declared()
    pipeline.ledger.declare(upload)
    pipeline.ledger.record(arrival(upload.key, Status.ACCEPTED))
    records = pipeline.new_records()

    # The batch delivered twice (a retry after a failure): the same ids, EventBridge's differ.
    for _ in range(2):
        handler.lambda_handler({"Records": records}, FakeContext())
    first, second = pipeline.delivered()

    assert first["detail"]["event_id"] == second["detail"]["event_id"]
    assert first["id"] != second["id"]
    assert first["detail"] == second["detail"]


def test_a_bus_that_refuses_the_events_fails_the_invocation(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    handler.build_bus.cache_clear()
    pipeline.ledger.record(arrival("loose/file.bin", Status.RECEIVED))
    records = pipeline.new_records()

    with pytest.raises(PublishError, match="no-such-bus"):
        handler.lambda_handler({"Records": records}, FakeContext())
    assert pipeline.delivered() == []


class RefusingFirst:
    """An EventBridge client that refuses some entries of the first PutEvents, as EventBridge
    may (FailedEntryCount > 0 in a 200 answer), and takes everything after."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused
        self.requests: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append([json.loads(e["Detail"])["key"] for e in Entries])
        first = len(self.requests) == 1
        answers = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            if first and index in self.refused
            else {"EventId": f"id-{len(self.requests)}-{index}"}
            for index in range(len(Entries))
        ]
        return {"FailedEntryCount": sum("ErrorCode" in a for a in answers), "Entries": answers}


def events_for(keys: list[str]) -> list[Any]:
    found = []
    for key in keys:
        image = {
            "s3_key": {"S": key},
            "processing_status": {"S": "RECEIVED"},
            "updated_at": {"S": "2026-12-06T12:00:00.000Z"},
            "sequencer_key": {"S": key},
        }
        found.append(verdict_event({"eventName": "INSERT", "dynamodb": {"NewImage": image}}))
    return found


def test_only_the_refused_entries_are_sent_again() -> None:
    fake = RefusingFirst(refused={1})
    bus = EventBus("bus", fake, sleep=lambda _: None)

    ids = bus.publish(events_for(["a", "b", "c"]))

    assert fake.requests == [["a", "b", "c"], ["b"]]
    assert ids == ["id-1-0", "id-2-0", "id-1-2"]


def test_entries_still_refused_after_the_attempts_fail_the_batch() -> None:
    class AlwaysRefusing(RefusingFirst):
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            self.requests.append([])
            answers = [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}] * len(
                Entries
            )
            return {"FailedEntryCount": len(Entries), "Entries": answers}

    fake = AlwaysRefusing(refused=set())
    bus = EventBus("bus", fake, attempts=3, sleep=lambda _: None)

    with pytest.raises(PublishError, match="ThrottlingException"):
        bus.publish(events_for(["a"]))
    assert len(fake.requests) == 3
