"""The emulator patches make moto's S3 events look like real S3's (in-process moto)."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filegate.events import parse_sqs_body, sequencer_key
from filegate.local import patches

REGION = "eu-central-1"
BUCKET = "patched-bucket"


@pytest.fixture
def queue_url(aws_env: None) -> Iterator[str]:
    with patches.applied(), mock_aws():
        yield _notified_queue()


def _notified_queue() -> str:
    """A versioned bucket whose object events go to a queue (inside mock_aws); the queue."""
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    _drain(url)  # the s3:TestEvent
    return url


def _drain(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    records = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return records
        for message in messages:
            records += json.loads(message["Body"]).get("Records", [])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_put_events_carry_sequencer_version_and_request_fields(queue_url: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    first = s3.put_object(Bucket=BUCKET, Key="a/x y.txt", Body=b"1")
    second = s3.put_object(Bucket=BUCKET, Key="a/x y.txt", Body=b"22")
    records = _drain(queue_url)
    assert [r["eventName"] for r in records] == ["ObjectCreated:Put", "ObjectCreated:Put"]
    objects = [r["s3"]["object"] for r in records]
    assert [o["versionId"] for o in objects] == [first["VersionId"], second["VersionId"]]
    assert sequencer_key(objects[0]["sequencer"]) < sequencer_key(objects[1]["sequencer"])
    assert records[0]["responseElements"]["x-amz-request-id"]
    assert records[0]["userIdentity"]["principalId"]


def test_a_versioned_delete_sends_delete_marker_created(queue_url: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="gone.txt", Body=b"1")
    marker = s3.delete_object(Bucket=BUCKET, Key="gone.txt")
    records = _drain(queue_url)
    assert [r["eventName"] for r in records] == [
        "ObjectCreated:Put",
        "ObjectRemoved:DeleteMarkerCreated",
    ]
    removed = records[1]["s3"]["object"]
    assert removed["versionId"] == marker["VersionId"]
    assert "size" not in removed  # as on S3: a delete marker has no size or eTag


def test_multipart_upload_sends_only_complete_multipart_upload(queue_url: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big.bin")
    parts = []
    for number, body in enumerate([b"a" * 5 * 1024 * 1024, b"b" * 10], start=1):
        part = s3.upload_part(
            Bucket=BUCKET, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    records = _drain(queue_url)
    assert [r["eventName"] for r in records] == ["ObjectCreated:CompleteMultipartUpload"]
    assert records[0]["s3"]["object"]["size"] == 5 * 1024 * 1024 + 10


def test_patched_events_parse_into_object_events(queue_url: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="dir/Zürich report.pdf", Body=b"%PDF")
    sqs = boto3.client("sqs", region_name=REGION)
    body = sqs.receive_message(QueueUrl=queue_url)["Messages"][0]["Body"]
    (event,) = parse_sqs_body(body)
    assert event.key == "dir/Zürich report.pdf"
    assert event.sequencer
    assert event.version_id


def test_a_put_whose_body_does_not_match_its_checksum_is_refused(queue_url: str) -> None:
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", region_name=REGION)
    wrong = base64.b64encode(hashlib.sha256(b"declared").digest()).decode()
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"tampered", ChecksumSHA256=wrong)
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    right = base64.b64encode(hashlib.sha256(b"declared").digest()).decode()
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"declared", ChecksumSHA256=right)
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"declared"


def _put_tampered_then_delete() -> tuple[list[dict[str, Any]], str]:
    """A PUT whose body does not match its SHA-256, then a versioned delete: (events, outcome)."""
    from botocore.exceptions import ClientError

    url = _notified_queue()
    s3 = boto3.client("s3", region_name=REGION)
    wrong = base64.b64encode(hashlib.sha256(b"declared").digest()).decode()
    try:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"tampered", ChecksumSHA256=wrong)
        outcome = "stored"
    except ClientError as exc:
        outcome = exc.response["Error"]["Code"]
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"1")
    s3.delete_object(Bucket=BUCKET, Key="k")
    return _drain(url), outcome


def test_patches_applied_for_a_test_are_undone_when_it_ends(aws_env: None) -> None:
    # GIVEN the patches applied for a block: S3's behaviour
    with patches.applied(), mock_aws():
        events, outcome = _put_tampered_then_delete()
    assert outcome == "BadDigest"
    assert [e["eventName"] for e in events] == [
        "ObjectCreated:Put",
        "ObjectRemoved:DeleteMarkerCreated",
    ]
    assert all(e["s3"]["object"].get("sequencer") for e in events)

    # WHEN the block has ended, THEN moto behaves as moto: the tampered body is stored, the
    # delete marker sends no event, and events carry no sequencer
    with mock_aws():
        events, outcome = _put_tampered_then_delete()
    assert outcome == "stored"
    assert [e["eventName"] for e in events] == ["ObjectCreated:Put", "ObjectCreated:Put"]
    assert not any(e["s3"]["object"].get("sequencer") for e in events)


def test_events_of_concurrent_writes_to_one_key_are_numbered_in_the_order_s3_applied_them(
    queue_url: str,
) -> None:
    # AWS (S3 user guide, "Event message structure"): for one key, a later write's sequencer
    # is greater; the ledger keeps the event with the greatest sequencer, so it must be the
    # version S3 holds last. Threads switch as often as the interpreter allows, so a write
    # numbered apart from when it was applied would show.
    s3 = boto3.client("s3", region_name=REGION)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(Bucket=BUCKET, Key="raced.txt", Body=b"%d" % i),
                    range(80),
                )
            )
    finally:
        sys.setswitchinterval(interval)
    records = _drain(queue_url)
    by_sequencer = sorted(records, key=lambda r: sequencer_key(r["s3"]["object"]["sequencer"]))
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="raced.txt")["Versions"]
    applied = [v["VersionId"] for v in reversed(versions)]  # S3 lists the newest first
    assert [r["s3"]["object"]["versionId"] for r in by_sequencer] == applied
