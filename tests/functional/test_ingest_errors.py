"""AWS failures become filegate errors where the call is made, and fail only their record."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from builders import BUCKET, REGION, notification, s3_record, sqs_batch

from filegate.errors import LedgerError, StorageError
from filegate.ledger import Ledger, LedgerEntry, Status
from filegate.storage import ObjectStore


def test_put_then_head_round_trips_through_the_store(s3: Any) -> None:
    store = ObjectStore(s3)

    version = store.put(BUCKET, "dir/file.json", b'{"a": 1}', "application/json")

    info = store.head(BUCKET, "dir/file.json", version)
    assert info is not None
    assert (info.size, info.content_type, info.version_id) == (8, "application/json", version)
    assert info.checksum_sha256  # put sends a SHA-256, head asks for it back


def test_head_after_delete_is_none(s3: Any) -> None:
    store = ObjectStore(s3)
    store.put(BUCKET, "short-lived.txt", b"x", "text/plain")

    store.delete(BUCKET, "short-lived.txt")

    assert store.head(BUCKET, "short-lived.txt") is None


def test_a_null_version_id_heads_the_current_object(s3: Any) -> None:
    store = ObjectStore(s3)
    store.put(BUCKET, "unversioned.txt", b"abc", "text/plain")

    info = store.head(BUCKET, "unversioned.txt", "null")

    assert info is not None
    assert info.size == 3


def test_a_missing_bucket_is_a_storage_error_naming_it(s3: Any) -> None:
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/k"):
        ObjectStore(s3).put("no-such-bucket-here", "k", b"", "text/plain")


def test_a_missing_table_is_a_ledger_error_naming_it(aws: None) -> None:
    ledger = Ledger("no-such-table", boto3.client("dynamodb", region_name=REGION))
    entry = LedgerEntry(
        "k", BUCKET, Status.DELETED, "ObjectRemoved:Delete", "2025-01-01T00:00:00.000Z"
    )

    with pytest.raises(LedgerError, match="no-such-table"):
        ledger.record(entry)
    with pytest.raises(LedgerError, match="no-such-table"):
        ledger.get("k")


def test_a_ledger_failure_fails_its_message_only(
    s3: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDB_TABLE", "no-such-table")
    removal = s3_record("a.txt", sequencer="01", event_name="ObjectRemoved:Delete")

    result = invoke(
        sqs_batch(notification(removal), {"Service": "Amazon S3", "Event": "s3:TestEvent"})
    )

    assert result == {
        "batchItemFailures": [{"itemIdentifier": "00000000-0000-4000-8000-000000000001"}]
    }
