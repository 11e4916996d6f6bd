"""The dead-letter queue operations against in-process moto: peek, show, replay, purge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders import notification, s3_record
from ops_pipeline import BUCKET, Pipeline, build_pipeline

from filegate.errors import QueueError
from filegate.ops.dlq import DeadLetters
from filegate.queues import MessageQueue

POISON = "this is not JSON"


@pytest.fixture
def pipeline(table: str) -> Pipeline:
    return build_pipeline(table)


@pytest.fixture
def dead_letters(pipeline: Pipeline) -> DeadLetters:
    return DeadLetters(
        MessageQueue(pipeline.dlq_url, pipeline.sqs), MessageQueue(pipeline.queue_url, pipeline.sqs)
    )


def _event_for(pipeline: Pipeline, key: str, body: bytes = b"payload") -> str:
    """A real object, and the S3 notification a failed delivery would have left behind."""
    version = pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    pipeline.drain(pipeline.queue_url)  # its real event: the ledger must learn it by replay
    record = s3_record(key, sequencer="0A", version_id=version, size=len(body))
    record["s3"]["bucket"]["name"] = BUCKET
    return json.dumps(notification(record))


def _dead_letter(pipeline: Pipeline, body: str, **attributes: Any) -> str:
    request: dict[str, Any] = {"QueueUrl": pipeline.dlq_url, "MessageBody": body}
    if attributes:
        request["MessageAttributes"] = attributes
    return str(pipeline.sqs.send_message(**request)["MessageId"])


def _visible(pipeline: Pipeline, url: str) -> int:
    attributes = pipeline.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_peek_decodes_each_message_and_leaves_all_visible(
    pipeline: Pipeline, dead_letters: DeadLetters
) -> None:
    good = _dead_letter(pipeline, _event_for(pipeline, "partner-a/März report.csv"))
    poison = _dead_letter(pipeline, POISON)
    letters = {letter.message_id: letter for letter in dead_letters.peek()}
    assert set(letters) == {good, poison}
    assert letters[good].keys == ("partner-a/März report.csv",)
    assert letters[good].event_names == ("ObjectCreated:Put",)
    assert letters[good].sent_at
    assert letters[poison].problem is not None
    assert not letters[poison].parseable
    assert _visible(pipeline, pipeline.dlq_url) == 2


def test_show_returns_the_whole_message(pipeline: Pipeline, dead_letters: DeadLetters) -> None:
    body = _event_for(pipeline, "partner-a/shown.txt")
    message_id = _dead_letter(pipeline, body, origin={"DataType": "String", "StringValue": "test"})
    whole = dead_letters.show(message_id).whole()
    assert whole["body"] == json.loads(body)
    assert whole["message_attributes"]["origin"]["StringValue"] == "test"
    assert int(whole["attributes"]["ApproximateReceiveCount"]) >= 1
    with pytest.raises(QueueError, match="no message nope"):
        dead_letters.show("nope")
    assert _visible(pipeline, pipeline.dlq_url) == 1


def test_replay_moves_s3_events_back_and_the_ledger_records_them(
    pipeline: Pipeline, dead_letters: DeadLetters
) -> None:
    # GIVEN a dead-lettered S3 event (with a message attribute) and a poison message
    key = "partner-a/replayed.txt"
    body = _event_for(pipeline, key)
    _dead_letter(
        pipeline,
        body,
        origin={"DataType": "String", "StringValue": "s3"},
        raw={"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    )
    poison = _dead_letter(pipeline, POISON)
    # WHEN replayed
    report = dead_letters.replay()
    # THEN the event is in the ingest queue, same body and attributes; the poison stays
    assert [m.keys for m in report.moved] == [(key,)]
    assert [m.message_id for m in report.left] == [poison]
    (moved,) = pipeline.sqs.receive_message(
        QueueUrl=pipeline.queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert moved["Body"] == body
    assert moved["MessageAttributes"]["origin"]["StringValue"] == "s3"
    assert moved["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\x01"
    assert pipeline.depth(pipeline.dlq_url) == 1
    assert _visible(pipeline, pipeline.dlq_url) == 1  # the poison, visible again
    # AND the function records the object
    pipeline.pump()
    item = pipeline.item(key)
    assert item is not None
    assert item["processing_status"]["S"] == "RECEIVED"


def test_dry_run_moves_nothing(pipeline: Pipeline, dead_letters: DeadLetters) -> None:
    _dead_letter(pipeline, _event_for(pipeline, "partner-a/dry.txt"))
    report = dead_letters.replay(dry_run=True)
    assert report.dry_run
    assert len(report.moved) == 1
    assert pipeline.depth(pipeline.queue_url) == 0
    assert _visible(pipeline, pipeline.dlq_url) == 1


def test_max_and_ids_choose_what_moves(pipeline: Pipeline, dead_letters: DeadLetters) -> None:
    for n in range(3):
        _dead_letter(pipeline, _event_for(pipeline, f"partner-a/many-{n}.txt"))
    poison = _dead_letter(pipeline, POISON)
    assert len(dead_letters.replay(limit=2).moved) == 2
    assert pipeline.depth(pipeline.dlq_url) == 2
    # an explicit id moves even a poison message
    report = dead_letters.replay(ids=[poison])
    assert [m.message_id for m in report.moved] == [poison]
    assert pipeline.bodies(pipeline.queue_url).count(POISON) == 1
    assert pipeline.depth(pipeline.dlq_url) == 1


def test_a_failed_send_loses_nothing(pipeline: Pipeline) -> None:
    # GIVEN an ingest queue that does not exist
    _dead_letter(pipeline, _event_for(pipeline, "partner-a/kept.txt"))
    missing = pipeline.queue_url.replace("ops-queue", "no-such-queue")
    broken = DeadLetters(
        MessageQueue(pipeline.dlq_url, pipeline.sqs), MessageQueue(missing, pipeline.sqs)
    )
    # WHEN a replay fails on the send
    with pytest.raises(QueueError, match="SendMessage on queue no-such-queue"):
        broken.replay()
    # THEN the message is still in the dead-letter queue, visible
    assert _visible(pipeline, pipeline.dlq_url) == 1


def test_purge_empties_the_queue_and_counts(pipeline: Pipeline, dead_letters: DeadLetters) -> None:
    for _ in range(3):
        _dead_letter(pipeline, POISON)
    report = dead_letters.purge()
    assert report.purged == 3
    assert pipeline.depth(pipeline.dlq_url) == 0
    with pytest.raises(QueueError, match="one purge a minute"):
        dead_letters.purge()
