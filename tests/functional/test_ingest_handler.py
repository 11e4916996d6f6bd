"""The whole ingestion handler against emulated S3 and DynamoDB: assertions on the ledger item."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from typing import Any

import pytest
from builders import BUCKET, REGION, load_event, notification, s3_record, sqs_batch

from filegate.errors import ConfigError, EventError
from filegate.ingest import handler
from filegate.ledger import Ledger

SEQ_OLD = "0066F9A2C3D4E5F601"
SEQ_NEW = "0066F9A2C3D4E5F6FF"
SEQ_NEWEST = "0066F9A2C3D4E5F70000"  # longer than the others: compared as right-zero-padded
T_OLD = "2025-09-28T20:37:00.123Z"
T_NEW = "2025-09-28T20:41:07.456Z"


def put(s3: Any, key: str, body: bytes = b"hello, world!", **extra: Any) -> str:
    response = s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)
    return str(response["VersionId"])


def created(key: str, sequencer: str | None, **fields: Any) -> dict[str, Any]:
    return notification(s3_record(key, sequencer=sequencer, **fields))


def removed(key: str, sequencer: str | None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("event_time", T_NEW)
    return notification(
        s3_record(key, sequencer=sequencer, event_name="ObjectRemoved:Delete", **fields)
    )


def test_create_records_received_with_size_and_type_from_s3(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    version = put(s3, "reports/q1.csv", b"a,b\n1,2\n", ContentType="text/csv")

    result = invoke(sqs_batch(created("reports/q1.csv", SEQ_OLD, size=999, version_id=version)))

    assert result == {"batchItemFailures": []}
    item = ledger.get("reports/q1.csv")
    assert item is not None
    assert (item.status, item.size, item.content_type) == ("RECEIVED", 8, "text/csv")
    assert (item.bucket, item.prefix, item.version_id) == (BUCKET, "reports", version)
    assert (item.sequencer, item.event_time, item.event_name) == (
        SEQ_OLD,
        T_OLD,
        "ObjectCreated:Put",
    )
    assert item.etag == hashlib.md5(b"a,b\n1,2\n").hexdigest()  # unquoted, as events carry it
    assert item.first_seen_at == item.updated_at
    assert item.checksum_sha256 is None


def test_duplicate_delivery_leaves_the_item_unchanged(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "dup.txt")
    event = sqs_batch(created("dup.txt", SEQ_OLD))
    invoke(event)
    first = ledger.get("dup.txt")

    result = invoke(event)

    assert result == {"batchItemFailures": []}
    assert ledger.get("dup.txt") == first


def test_out_of_order_delivery_keeps_the_newer_event(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "order.txt", b"version one")
    put(s3, "order.txt", b"version two, longer")
    invoke(sqs_batch(created("order.txt", SEQ_NEWEST, event_time=T_NEW)))
    newer = ledger.get("order.txt")

    invoke(sqs_batch(created("order.txt", SEQ_OLD, event_time=T_OLD)))

    assert ledger.get("order.txt") == newer
    assert newer is not None
    assert newer.sequencer == SEQ_NEWEST


def test_a_newer_create_overwrites_an_older_one(s3: Any, invoke: Any, ledger: Ledger) -> None:
    first = put(s3, "over.txt", b"one")
    second = put(s3, "over.txt", b"two two")
    invoke(sqs_batch(created("over.txt", SEQ_OLD, version_id=first)))

    invoke(sqs_batch(created("over.txt", SEQ_NEW, event_time=T_NEW, version_id=second)))

    item = ledger.get("over.txt")
    assert item is not None
    assert (item.size, item.version_id, item.sequencer) == (7, second, SEQ_NEW)
    assert item.first_seen_at < item.updated_at or item.first_seen_at == item.updated_at


def test_delete_after_create_records_deleted_and_keeps_size(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    put(s3, "gone.txt", b"12345", ContentType="text/plain")
    invoke(sqs_batch(created("gone.txt", SEQ_OLD)))
    marker = s3.delete_object(Bucket=BUCKET, Key="gone.txt")["VersionId"]

    invoke(sqs_batch(removed("gone.txt", SEQ_NEW, version_id=marker)))

    item = ledger.get("gone.txt")
    assert item is not None
    assert (item.status, item.event_name, item.sequencer) == (
        "DELETED",
        "ObjectRemoved:Delete",
        SEQ_NEW,
    )
    assert (item.size, item.content_type, item.version_id) == (5, "text/plain", marker)


def test_delete_processed_before_its_create_stays_deleted(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    version = put(s3, "early.txt")
    invoke(sqs_batch(removed("early.txt", SEQ_NEW)))

    invoke(sqs_batch(created("early.txt", SEQ_OLD, version_id=version)))

    item = ledger.get("early.txt")
    assert item is not None
    assert (item.status, item.sequencer) == ("DELETED", SEQ_NEW)


def test_create_processed_after_the_object_is_gone_records_deleted(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    put(s3, "vanished.txt")
    s3.delete_object(Bucket=BUCKET, Key="vanished.txt")  # a delete marker: HEAD answers 404

    result = invoke(sqs_batch(created("vanished.txt", SEQ_OLD)))

    assert result == {"batchItemFailures": []}
    item = ledger.get("vanished.txt")
    assert item is not None
    assert (item.status, item.sequencer, item.size) == ("DELETED", SEQ_OLD, None)


def test_create_for_a_permanently_deleted_version_records_deleted(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    version = put(s3, "purged.txt")
    s3.delete_object(Bucket=BUCKET, Key="purged.txt", VersionId=version)

    invoke(sqs_batch(created("purged.txt", SEQ_OLD, version_id=version)))

    item = ledger.get("purged.txt")
    assert item is not None
    assert item.status == "DELETED"


def test_a_later_delete_event_rewrites_deleted(s3: Any, invoke: Any, ledger: Ledger) -> None:
    invoke(sqs_batch(created("twice.txt", SEQ_OLD)))  # never uploaded: HEAD 404

    invoke(sqs_batch(removed("twice.txt", SEQ_NEW)))

    item = ledger.get("twice.txt")
    assert item is not None
    assert (item.status, item.sequencer) == ("DELETED", SEQ_NEW)


def test_test_event_is_acknowledged_and_writes_nothing(
    invoke: Any, ledger: Ledger, s3: Any
) -> None:
    result = invoke(load_event("sqs_test_event.json"))

    assert result == {"batchItemFailures": []}
    assert ledger.get("test-file.txt") is None


def test_a_poison_message_fails_alone(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "incoming/good-1.csv")
    put(s3, "incoming/good-2.csv")

    result = invoke(load_event("sqs_malformed_body.json"))

    poison = "0a1b2c3d-0000-4000-8000-00000000dead"
    assert result == {"batchItemFailures": [{"itemIdentifier": poison}]}
    for key in ("incoming/good-1.csv", "incoming/good-2.csv"):
        item = ledger.get(key)
        assert item is not None
        assert item.status == "RECEIVED"


def test_a_message_with_a_bad_record_fails_alone(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "fine.txt")
    bad = created("bad.txt", SEQ_OLD)
    del bad["Records"][0]["s3"]["object"]["key"]

    result = invoke(sqs_batch(created("fine.txt", SEQ_OLD), bad))

    assert result == {
        "batchItemFailures": [{"itemIdentifier": "00000000-0000-4000-8000-000000000002"}]
    }
    assert ledger.get("fine.txt") is not None


def test_a_batch_where_every_message_fails_is_still_a_partial_response(invoke: Any) -> None:
    result = invoke(sqs_batch("not json", "[]"))

    assert [failure["itemIdentifier"] for failure in result["batchItemFailures"]] == [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
    ]


@pytest.mark.parametrize(
    "key",
    ["partner-a/invoices/Q1 report été € +1.pdf", "spaces only.txt", "deep/a/b/c/ü.bin"],
)
def test_encoded_keys_are_recorded_decoded(s3: Any, invoke: Any, ledger: Ledger, key: str) -> None:
    put(s3, key)

    invoke(sqs_batch(created(key, SEQ_OLD)))  # the builder quote_plus-encodes "/" too, as moto

    item = ledger.get(key)
    assert item is not None
    assert (item.key, item.status) == (key, "RECEIVED")


def test_the_encoded_key_fixture_is_recorded_decoded(s3: Any, invoke: Any, ledger: Ledger) -> None:
    key = "partner-a/invoices/Q1 report été € +1.pdf"
    put(s3, key, b"%PDF-1.7", ContentType="application/pdf")

    invoke(sqs_batch(load_event("s3_encoded_key.json")))

    item = ledger.get(key)
    assert item is not None
    assert (item.content_type, item.prefix) == ("application/pdf", "partner-a")


def test_checksum_is_recorded_when_s3_holds_one(s3: Any, invoke: Any, ledger: Ledger) -> None:
    response = s3.put_object(
        Bucket=BUCKET, Key="signed.bin", Body=b"payload", ChecksumAlgorithm="SHA256"
    )

    invoke(sqs_batch(created("signed.bin", SEQ_OLD)))

    item = ledger.get("signed.bin")
    assert item is not None
    assert item.checksum_sha256 == response["ChecksumSHA256"]


def test_direct_s3_invoke_returns_a_summary(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "test-file.txt", b"hello, world!", ContentType="text/plain")

    result = invoke(load_event("s3_put_direct.json"))

    assert result == {"processed": 1, "duplicate": 0, "stale": 0, "ignored": 0}
    item = ledger.get("test-file.txt")
    assert item is not None
    assert (item.status, item.size, item.content_type) == ("RECEIVED", 13, "text/plain")
    assert json.loads(json.dumps(result)) == result


def test_direct_invoke_counts_each_record(s3: Any, invoke: Any) -> None:
    put(s3, "batch/one.txt", b"one")
    put(s3, "batch/two.txt", b"two")
    invoke(load_event("s3_multi_record.json"))

    result = invoke(load_event("s3_multi_record.json"))

    assert result == {"processed": 0, "duplicate": 2, "stale": 0, "ignored": 0}


def test_direct_invoke_then_delete_fixture(s3: Any, invoke: Any, ledger: Ledger) -> None:
    put(s3, "test-file.txt")
    invoke(load_event("s3_put_direct.json"))

    result = invoke(load_event("s3_delete.json"))

    assert result["processed"] == 1
    item = ledger.get("test-file.txt")
    assert item is not None
    assert item.status == "DELETED"


def test_direct_invoke_raises_on_a_malformed_event(invoke: Any) -> None:
    event = load_event("s3_put_direct.json")
    event["Records"][0]["eventTime"] = "not a time"

    with pytest.raises(EventError, match=r"Records\[0\]\.eventTime"):
        invoke(event)


def test_an_unknown_event_shape_is_rejected(invoke: Any) -> None:
    with pytest.raises(EventError, match="eventSource"):
        invoke({"Records": [{"eventSource": "aws:kinesis"}]})


def test_events_without_sequencers_are_ordered_by_time(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    put(s3, "local.txt")  # moto's events carry no sequencer
    invoke(sqs_batch(removed("local.txt", None, event_time=T_NEW)))

    result = invoke(sqs_batch(created("local.txt", None, event_time=T_OLD)))

    assert result == {"batchItemFailures": []}
    item = ledger.get("local.txt")
    assert item is not None
    assert (item.status, item.sequencer, item.event_time) == ("DELETED", None, T_NEW)


def test_a_missing_table_setting_fails_the_invocation(
    s3: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DDB_TABLE")

    with pytest.raises(ConfigError, match="DDB_TABLE"):
        invoke(sqs_batch(created("x.txt", SEQ_OLD)))


def test_a_missing_upload_bucket_setting_fails_the_invocation_naming_it(
    s3: Any, invoke: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN new code under a template that predates UPLOAD_BUCKET
    put(s3, "x.txt")
    monkeypatch.delenv("UPLOAD_BUCKET")

    # THEN every invocation fails, saying what to do, and records nothing
    with pytest.raises(ConfigError, match=r"UPLOAD_BUCKET is not set: .*filegate deploy"):
        invoke(sqs_batch(created("x.txt", SEQ_OLD)))
    assert ledger.get("x.txt") is None


OTHER_BUCKET = "someone-elses-bucket"


def _from_other_bucket(key: str, sequencer: str) -> dict[str, Any]:
    event = created(key, sequencer, event_time=T_NEW)
    event["Records"][0]["s3"]["bucket"].update(
        name=OTHER_BUCKET, arn=f"arn:aws:s3:::{OTHER_BUCKET}"
    )
    return event


def test_an_event_for_another_bucket_fails_its_message_and_leaves_the_item_of_its_key(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN an object of the stack's bucket, recorded
    put(s3, "shared/name.csv", b"ours")
    invoke(sqs_batch(created("shared/name.csv", SEQ_OLD)))
    ours = ledger.get("shared/name.csv")
    # AND another bucket (readable here: the emulator enforces no IAM) with the same key
    s3.create_bucket(Bucket=OTHER_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=OTHER_BUCKET, Key="shared/name.csv", Body=b"theirs, and newer")
    put(s3, "fine.txt")

    # WHEN a batch carries that bucket's (newer) event next to one of ours
    result = invoke(
        sqs_batch(_from_other_bucket("shared/name.csv", SEQ_NEW), created("fine.txt", SEQ_OLD))
    )

    # THEN only its message fails (back to the queue, then the dead-letter queue)
    assert result == {
        "batchItemFailures": [{"itemIdentifier": "00000000-0000-4000-8000-000000000001"}]
    }
    # AND the item of the same key still records our object
    assert ledger.get("shared/name.csv") == ours
    assert ledger.get("fine.txt") is not None


def test_a_direct_invoke_for_another_bucket_raises_naming_both_buckets(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    from filegate.ingest.exceptions import ForeignBucketError

    with pytest.raises(ForeignBucketError, match=f"s3://{OTHER_BUCKET}/a.txt.*bucket {BUCKET}"):
        invoke(_from_other_bucket("a.txt", SEQ_OLD))
    assert ledger.get("a.txt") is None


def test_a_batch_s_records_run_concurrently_each_logged_and_counted_as_itself(
    s3: Any, invoke: Any, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch of ten messages, one object each
    keys = [f"batch/file-{n}.txt" for n in range(10)]
    for key in keys:
        put(s3, key, key.encode())
    event = sqs_batch(*(created(key, SEQ_OLD) for key in keys))
    key_of = {r["messageId"]: key for r, key in zip(event["Records"], keys, strict=True)}
    log_stream = io.StringIO()
    log_handler = handler.logger.registered_handler
    assert isinstance(log_handler, logging.StreamHandler)
    previous = log_handler.setStream(log_stream)
    capsys.readouterr()

    # WHEN it is handled
    try:
        result = invoke(event)
    finally:
        log_handler.setStream(previous)

    # THEN every object is recorded, by more than one thread of the record pool
    assert result == {"batchItemFailures": []}
    assert all(ledger.get(key) is not None for key in keys)
    assert len([t for t in threading.enumerate() if t.name.startswith("record")]) > 1
    # AND each record's log line names its own message and key (thread-local log keys)
    logged = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    written = [line for line in logged if line.get("message") == "object event written"]
    assert sorted(line["s3_key"] for line in written) == sorted(keys)
    assert all(key_of[line["message_id"]] == line["s3_key"] for line in written)
    # AND no increment of the Processed metric was lost
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert sum(len(document.get("Processed", [])) for document in emf) == 10


def test_a_record_thread_works_inside_the_invocation_s_trace_and_leaves_it() -> None:
    # GIVEN X-Ray on (off in every other test: there is no daemon here) and an open segment
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.context import Context

    recorder: Any = handler.tracer.provider
    previous_context = recorder.context
    global_sdk_config.set_sdk_enabled(True)
    recorder.configure(context=Context(context_missing="LOG_ERROR"), sampling=False)
    seen: dict[str, Any] = {}

    def job() -> None:
        seen["during"] = recorder.get_trace_entity()

    def record_thread(entity: Any) -> None:
        handler._in_thread(entity, job)
        seen["after"] = recorder.context.get_trace_entity()

    try:
        segment = recorder.begin_segment("invocation")
        # WHEN a record runs on a thread of its own with the invocation's entity handed over
        worker = threading.Thread(target=record_thread, args=(recorder.get_trace_entity(),))
        worker.start()
        worker.join()
        recorder.end_segment()
    finally:
        recorder.configure(context=previous_context)
        global_sdk_config.set_sdk_enabled(False)
    # THEN the record's work ran under the invocation's segment, and the thread (kept in the
    # pool for the next invocation) holds no entity afterwards
    assert seen["during"] is segment
    assert seen["after"] is None
