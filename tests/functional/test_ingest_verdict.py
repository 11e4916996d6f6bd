"""The ingestion's verdict on declared partner uploads: ACCEPTED, or REJECTED with a reason."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import BUCKET, REGION, notification, s3_record, sqs_batch

from filegate.events import iso_utc
from filegate.ledger import Declaration, Ledger

KEY = "acme-1a2b/up-abcdefghijklmnopqrstuvwxyz/report 2026.csv"
BODY = b"id,amount\n1,100\n"


def declare(
    ledger: Ledger,
    body: bytes = BODY,
    content_type: str = "text/csv",
    expires_in: int = 900,
    key: str = KEY,
) -> None:
    ledger.declare(
        Declaration(
            key=key,
            bucket=BUCKET,
            upload_id=key.split("/")[1],
            partner_id=key.split("/", maxsplit=1)[0],
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            content_type=content_type,
            method="PUT",
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        )
    )


def arrive(
    s3: Any,
    invoke: Any,
    body: bytes,
    content_type: str = "text/csv",
    checksum: bool = False,
    key: str = KEY,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The object put, and its event (S3's eventTime ``at``, by default now) handled."""
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type, **extra)
    record = s3_record(
        key,
        sequencer="0A",
        version_id=put["VersionId"],
        size=len(body),
        event_time=iso_utc(at or datetime.now(UTC)),
    )
    response: dict[str, Any] = invoke(sqs_batch(notification(record)))
    return response


def item(key: str = KEY) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    got: dict[str, Any] = ddb.get_item(
        TableName="filegate-ledger-test", Key={"s3_key": {"S": key}}
    )["Item"]
    return got


def test_an_upload_as_declared_is_accepted(s3: Any, invoke: Any, ledger: Ledger) -> None:
    declare(ledger)
    assert arrive(s3, invoke, BODY) == {"batchItemFailures": []}
    stored = item()
    assert stored["processing_status"]["S"] == "ACCEPTED"
    assert "reason" not in stored
    assert stored["upload_id"]["S"] == "up-abcdefghijklmnopqrstuvwxyz"  # the declaration stays
    assert stored["size"]["N"] == str(len(BODY))


def test_a_different_body_is_rejected_naming_the_sha256(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    declare(ledger)
    arrive(s3, invoke, b"id,amount\n1,999\n")  # same size, other bytes
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    assert "sha256" in stored["reason"]["S"]


def test_a_different_size_is_rejected_naming_the_size(s3: Any, invoke: Any, ledger: Ledger) -> None:
    declare(ledger)
    arrive(s3, invoke, BODY + b"2,250\n")
    assert item()["processing_status"]["S"] == "REJECTED"
    assert item()["reason"]["S"].startswith(f"size {len(BODY) + 6} differs")


def test_a_different_content_type_is_rejected(s3: Any, invoke: Any, ledger: Ledger) -> None:
    declare(ledger)
    arrive(s3, invoke, BODY, content_type="application/pdf")
    assert "content type application/pdf" in item()["reason"]["S"]


def test_an_upload_after_expiry_is_rejected(s3: Any, invoke: Any, ledger: Ledger) -> None:
    declare(ledger, expires_in=-60)
    assert ledger.expire(KEY, datetime.now(UTC)) is not None  # a GET turned it EXPIRED
    arrive(s3, invoke, BODY)
    assert item()["processing_status"]["S"] == "REJECTED"
    assert "expired" in item()["reason"]["S"]


def test_an_upload_that_arrived_in_time_is_judged_on_its_content_though_expired_since(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN an upload whose URLs expired a minute ago, and the sweep that marked it EXPIRED
    declare(ledger, expires_in=-60)
    assert ledger.expire_overdue(datetime.now(UTC))
    # WHEN its event, which S3 sent two minutes ago (before the expiry), is processed only now
    # (a failed delivery waits out the queue's 180 s visibility timeout on AWS), twice
    two_minutes_ago = datetime.now(UTC) - timedelta(minutes=2)
    arrive(s3, invoke, BODY, at=two_minutes_ago)
    first = item()
    arrive_again = s3_record(KEY, sequencer="0A", event_time=iso_utc(two_minutes_ago))
    assert invoke(sqs_batch(notification(arrive_again))) == {"batchItemFailures": []}
    # THEN it is judged on what arrived: ACCEPTED, no reason, and the duplicate changed nothing
    assert first["processing_status"]["S"] == "ACCEPTED"
    assert "reason" not in first
    assert item() == first
    # AND the sweep leaves it alone
    assert ledger.expire_overdue(datetime.now(UTC)) == []
    assert item()["processing_status"]["S"] == "ACCEPTED"


def test_an_upload_that_arrived_after_expiry_is_rejected_though_still_pending(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN an upload that expired a minute ago, not swept yet (still PENDING)
    declare(ledger, expires_in=-60)
    # WHEN an object as declared arrives now
    arrive(s3, invoke, BODY)
    # THEN it is REJECTED, the reason saying when it arrived and when the upload expired
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    reason = stored["reason"]["S"]
    assert reason.startswith(f"arrived at {stored['event_time']['S']}, after the upload expired")
    assert reason.endswith(stored["expires_at"]["S"])


def test_a_late_event_of_an_earlier_arrival_does_not_undo_the_later_verdict(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN the same URL used twice: a wrong body first, the right one after (both in time)
    declare(ledger)
    wrong = s3.put_object(
        Bucket=BUCKET, Key=KEY, Body=b"id,amount\n1,999\n", ContentType="text/csv"
    )
    right = s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY, ContentType="text/csv")
    now = datetime.now(UTC)
    events = {
        "wrong": s3_record(
            KEY,
            sequencer="0A",
            version_id=wrong["VersionId"],
            event_time=iso_utc(now - timedelta(seconds=2)),
        ),
        "right": s3_record(
            KEY, sequencer="0B", version_id=right["VersionId"], event_time=iso_utc(now)
        ),
    }
    # WHEN the later event is processed first, then the earlier one
    invoke(sqs_batch(notification(events["right"])))
    invoke(sqs_batch(notification(events["wrong"])))
    # THEN the verdict is the later object's
    assert item()["processing_status"]["S"] == "ACCEPTED"
    assert item()["version_id"]["S"] == right["VersionId"]


def test_an_object_at_a_partner_like_key_without_declaration_is_received(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    arrive(s3, invoke, BODY)
    assert item()["processing_status"]["S"] == "RECEIVED"


@pytest.mark.parametrize("checksum", [True, False])
def test_s3s_checksum_spares_reading_the_object(
    s3: Any, invoke: Any, ledger: Ledger, checksum: bool
) -> None:
    declare(ledger)
    calls: list[str] = []
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "before-call.s3.*", lambda model, **_: calls.append(model.name)
    )
    arrive(s3, invoke, BODY, checksum=checksum)
    assert item()["processing_status"]["S"] == "ACCEPTED"
    handler_calls = [c for c in calls if c != "PutObject"]
    assert handler_calls == (["HeadObject"] if checksum else ["HeadObject", "GetObject"])


def test_s3_checksum_is_compared_in_hex() -> None:
    digest = hashlib.sha256(BODY).digest()
    from filegate.ingest.records import _s3_sha256
    from filegate.storage import ObjectInfo

    info = ObjectInfo(len(BODY), "text/csv", "e", "v", base64.b64encode(digest).decode())
    assert _s3_sha256(info) == digest.hex()
    assert _s3_sha256(ObjectInfo(1, None, None, None, "abc-3")) is None


def test_overdue_declarations_are_swept_to_expired(ledger: Ledger) -> None:
    overdue = "acme-1a2b/up-aaaaaaaaaaaaaaaaaaaaaaaaaa/late.csv"
    declare(ledger, expires_in=-5, key=overdue)
    declare(ledger, expires_in=900)  # still in time
    expired = ledger.expire_overdue(datetime.now(UTC))
    assert [r.key for r in expired] == [overdue]
    assert item(overdue)["processing_status"]["S"] == "EXPIRED"
    assert item()["processing_status"]["S"] == "PENDING"
    assert ledger.expire_overdue(datetime.now(UTC)) == []  # idempotent
