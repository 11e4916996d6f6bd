"""AWS failures become filegate errors where the call is made, and fail only their record."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from builders import BUCKET, REGION, notification, s3_record, sqs_batch
from moto.core import set_initial_no_auth_action_count

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


def test_a_403_from_head_object_is_an_error_naming_the_permissions_not_a_gone_object(
    s3: Any,
) -> None:
    # GIVEN credentials whose policy does not let them read the bucket
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="cannot-read")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}],
    }
    iam.put_user_policy(
        UserName="cannot-read", PolicyName="put-only", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName="cannot-read")["AccessKey"]
    denied = boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )

    @set_initial_no_auth_action_count(0)  # moto checks IAM for the calls inside only
    def head_missing_key() -> object:
        return ObjectStore(denied).head(BUCKET, "not-there.txt")

    # WHEN HeadObject answers 403 (AWS: also for a missing key without s3:ListBucket)
    # THEN it is an error naming both permissions, not "the object is gone"
    with pytest.raises(StorageError, match=r"not-there.txt failed \((403|AccessDenied)\)") as e:
        head_missing_key()
    assert "s3:GetObject" in str(e.value)
    assert "s3:ListBucket" in str(e.value)


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
