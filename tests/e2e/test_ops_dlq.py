"""The dead-letter queue on the local stack: a poison message dead-lettered by the pipeline,
an S3 event left there by a failed delivery, list, show, replay (dry run first), purge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, own_stack, wait_for
from tests.e2e.ops_stack import run, run_json

POISON = "this is not JSON"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-ops-dlq")) as running:
        yield running


def _dead_lettered_event(stack: Stack, key: str) -> str:
    """An object whose event never reached the ledger, and that event, in the dead-letter queue.

    The object is uploaded while intake is paused (so no event flows); the event is the one S3
    would have sent, put where a delivery that failed five times leaves it.
    """
    run_json(stack, "pause")
    put = stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"replay me")
    run_json(stack, "resume")
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": stack.env["region"],
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": stack.bucket},
            "object": {"key": key, "size": 9, "versionId": put["VersionId"]},
        },
    }
    body = json.dumps({"Records": [record]})
    stack.sqs.send_message(QueueUrl=stack.env["DeadLetterQueueUrl"], MessageBody=body)
    return body


def test_poison_and_a_failed_delivery_are_listed_replayed_and_purged(stack: Stack) -> None:
    dlq_url = stack.env["DeadLetterQueueUrl"]
    key = "dlq/replayed.txt"
    # GIVEN a poison message the pipeline dead-letters after five receives
    stack.sqs.send_message(QueueUrl=stack.env["QueueUrl"], MessageBody=POISON)
    wait_for(lambda: stack.queue_depth(dlq_url) == 1, timeout=90, interval=1)
    # AND an S3 event for a real object that a failed delivery left there
    body = _dead_lettered_event(stack, key)
    assert stack.item(key) is None
    # WHEN listed THEN both show, one decoded, one unparseable, and both stay
    listed = {m["message_id"]: m for m in run_json(stack, "dlq", "list")}
    assert len(listed) == 2
    (event_id,) = [i for i, m in listed.items() if m["keys"] == [key]]
    (poison_id,) = [i for i, m in listed.items() if m["problem"]]
    assert listed[event_id]["event_names"] == ["ObjectCreated:Put"]
    assert listed[poison_id]["receive_count"] >= 5
    assert stack.queue_depth(dlq_url) == 2
    # AND show gives the whole message
    assert run_json(stack, "dlq", "show", event_id)["body"] == json.loads(body)
    # WHEN replayed as a dry run THEN nothing moves
    dry = run_json(stack, "dlq", "replay", "--dry-run")
    assert [m["message_id"] for m in dry["moved"]] == [event_id]
    assert stack.queue_depth(dlq_url) == 2
    assert stack.item(key) is None
    # WHEN replayed THEN the event moves, the poison stays, and the object reaches the ledger
    replayed = run_json(stack, "dlq", "replay")
    assert [m["message_id"] for m in replayed["moved"]] == [event_id]
    assert [m["message_id"] for m in replayed["left"]] == [poison_id]
    item = wait_for(lambda: stack.item(key), timeout=10)
    assert item["processing_status"]["S"] == "RECEIVED"
    assert item["size"]["N"] == "9"
    assert stack.queue_depth(dlq_url) == 1
    # WHEN the poison is replayed by id THEN it leaves, goes round the pipeline, fails again
    # five times and is dead-lettered anew (the same body, a new message)
    again = run_json(stack, "dlq", "replay", "--id", poison_id)
    assert [m["message_id"] for m in again["moved"]] == [poison_id]
    returned = wait_for(lambda: run_json(stack, "dlq", "list"), timeout=90, interval=1)
    assert [m["message_id"] for m in returned] != [poison_id]
    assert returned[0]["problem"]
    # WHEN purged without a terminal and without --yes THEN it refuses
    refused = run(stack, "dlq", "purge")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert stack.queue_depth(dlq_url) == 1
    # WHEN purged with --yes THEN the queue is empty
    assert run_json(stack, "dlq", "purge", "--yes")["purged"] == 1
    assert stack.queue_depth(dlq_url) == 0


def test_show_of_an_unknown_message_is_a_clear_error(stack: Stack) -> None:
    result = run(stack, "dlq", "show", "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 2
    assert "no message 00000000-0000-0000-0000-000000000000" in result.stderr
