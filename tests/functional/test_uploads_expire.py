"""`filegate uploads expire`'s rules (``uploads/expiry.py``) against moto: the ledger item and
the multipart uploads S3 still holds open are the state asserted on."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import BUCKET, REGION

from filegate.ledger import Declaration, Ledger
from filegate.storage import BucketOps
from filegate.uploads.expiry import Action, Kind, Sweeper, stale_count

PART = b"p" * (5 * 1024 * 1024)


def declare_multipart(s3: Any, ledger: Ledger, name: str, expires_in: timedelta) -> str:
    """A declared multipart upload with one part sent; its S3 UploadId."""
    key = f"acme-1a2b/up-{name:a<26}/big.bin"
    multipart_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=multipart_id, PartNumber=1, Body=PART)
    ledger.declare(
        Declaration(
            key=key,
            bucket=BUCKET,
            upload_id=key.split("/")[1],
            partner_id="acme-1a2b",
            size=2 * len(PART),
            sha256=hashlib.sha256(PART * 2).hexdigest(),
            content_type="application/octet-stream",
            method="MULTIPART",
            expires_at=datetime.now(UTC) + expires_in,
            multipart_upload_id=multipart_id,
        )
    )
    return multipart_id


def open_ids(s3: Any) -> set[str]:
    return {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])}


def status(ledger: Ledger, multipart_id: str, s3: Any) -> str:
    items = [i for i in ledger.scan() if i.key.startswith("acme-1a2b/")]
    records = [ledger.declaration(i.key) for i in items]
    return next(r.status for r in records if r and r.multipart_upload_id == multipart_id)


@pytest.fixture
def sweeper(s3: Any, ledger: Ledger) -> Sweeper:
    return Sweeper(BucketOps(s3), ledger, BUCKET)


def test_an_abandoned_multipart_upload_is_aborted_in_s3_and_expired_in_the_ledger(
    s3: Any, ledger: Ledger, sweeper: Sweeper
) -> None:
    # GIVEN an upload declared, one part sent, never completed, past its expiry; and one
    # still within its expiry (a slow upload on its way)
    abandoned = declare_multipart(s3, ledger, "abandoned", timedelta(seconds=-1))
    on_its_way = declare_multipart(s3, ledger, "onitsway", timedelta(minutes=10))

    # WHEN the sweep runs
    report = sweeper.sweep()

    # THEN S3 no longer holds the abandoned one (its parts are gone) and the ledger says EXPIRED;
    # the one on its way is untouched
    assert open_ids(s3) == {on_its_way}
    assert status(ledger, abandoned, s3) == "EXPIRED"
    assert status(ledger, on_its_way, s3) == "PENDING"
    (swept,) = report.swept
    assert (swept.kind, swept.action, swept.s3, swept.status) == (
        Kind.DECLARED,
        Action.EXPIRED,
        "aborted",
        "EXPIRED",
    )
    assert report.kept == 1


def test_a_dry_run_changes_nothing(s3: Any, ledger: Ledger, sweeper: Sweeper) -> None:
    abandoned = declare_multipart(s3, ledger, "dryrun", timedelta(seconds=-1))
    s3.create_multipart_upload(Bucket=BUCKET, Key="ops/undeclared.bin")

    report = sweeper.sweep(dry_run=True)

    assert {(s.kind, s.action) for s in report.swept} == {
        (Kind.DECLARED, Action.WOULD_EXPIRE),
        (Kind.UNDECLARED, Action.WOULD_ABORT),
    }
    assert abandoned in open_ids(s3)
    assert len(open_ids(s3)) == 2
    assert status(ledger, abandoned, s3) == "PENDING"


def complete(s3: Any, key: str, multipart_id: str) -> None:
    etag = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=multipart_id)["Parts"][0]["ETag"]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=multipart_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )


def test_a_completed_upload_is_left_alone(s3: Any, ledger: Ledger, sweeper: Sweeper) -> None:
    # GIVEN a declared upload completed in S3 (its event not recorded yet: still PENDING,
    # past its expiry), so S3 no longer knows its multipart upload
    multipart_id = declare_multipart(s3, ledger, "completed", timedelta(seconds=-1))
    key = f"acme-1a2b/up-{'completed':a<26}/big.bin"
    complete(s3, key, multipart_id)

    report = sweeper.sweep()

    # THEN the object stays, and the abort finds the upload already gone
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(PART)
    (swept,) = report.swept
    assert swept.s3 == "already gone"


def test_an_arrival_written_first_wins_over_the_expiry(
    s3: Any, ledger: Ledger, sweeper: Sweeper
) -> None:
    # GIVEN an overdue declaration whose object arrived and was judged ACCEPTED already
    multipart_id = declare_multipart(s3, ledger, "accepted", timedelta(seconds=-1))
    key = f"acme-1a2b/up-{'accepted':a<26}/big.bin"
    complete(s3, key, multipart_id)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.update_item(
        TableName=ledger.table_name,
        Key={"s3_key": {"S": key}},
        UpdateExpression="SET processing_status = :accepted",
        ExpressionAttributeValues={":accepted": {"S": "ACCEPTED"}},
    )

    report = sweeper.sweep()

    assert status(ledger, multipart_id, s3) == "ACCEPTED"
    assert report.swept == []  # no longer PENDING: not overdue, and its upload is not open


def test_an_upload_a_status_read_expired_is_aborted_in_s3(
    s3: Any, ledger: Ledger, sweeper: Sweeper
) -> None:
    # GIVEN a declaration a GET turned EXPIRED (the API does not abort S3's upload then)
    multipart_id = declare_multipart(s3, ledger, "readexpired", timedelta(seconds=-1))
    key = f"acme-1a2b/up-{'readexpired':a<26}/big.bin"
    assert ledger.expire(key, datetime.now(UTC)) is not None

    report = sweeper.sweep()

    assert multipart_id not in open_ids(s3)
    (swept,) = report.swept
    assert (swept.kind, swept.action, swept.status) == (Kind.CLOSED, Action.ABORTED, "EXPIRED")


def test_an_undeclared_upload_is_aborted_only_once_older_than_the_threshold(
    s3: Any, ledger: Ledger
) -> None:
    # GIVEN a multipart upload no declaration names (someone with credentials uploading)
    s3.create_multipart_upload(Bucket=BUCKET, Key="ops/direct.bin")
    (upload,) = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    initiated = upload["Initiated"]  # moto reports one fixed time for every upload

    # WHEN the sweep runs an hour after it began: it is kept
    young = Sweeper(BucketOps(s3), ledger, BUCKET, clock=lambda: initiated + timedelta(hours=1))
    assert young.sweep(timedelta(hours=24)).kept == 1
    assert len(open_ids(s3)) == 1

    # WHEN it runs two days after: it is aborted
    old = Sweeper(BucketOps(s3), ledger, BUCKET, clock=lambda: initiated + timedelta(days=2))
    (swept,) = old.sweep(timedelta(hours=24)).swept
    assert (swept.kind, swept.action, swept.s3) == (Kind.UNDECLARED, Action.ABORTED, "aborted")
    assert open_ids(s3) == set()


def test_the_metric_rule_counts_uploads_open_longer_than_the_threshold(s3: Any) -> None:
    for key in ("a.bin", "b.bin"):
        s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    uploads = list(BucketOps(s3).open_multipart_uploads(BUCKET))
    initiated = uploads[0].initiated

    assert stale_count(uploads, initiated + timedelta(hours=1), timedelta(hours=24)) == 0
    assert stale_count(uploads, initiated + timedelta(days=2), timedelta(hours=24)) == 2
