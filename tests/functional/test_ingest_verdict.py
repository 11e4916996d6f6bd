"""The ingestion's verdict on declared partner uploads: ACCEPTED, or REJECTED with a reason,
judged from HeadObject's checksum and the declaration, never from the object's bytes."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from builders import BUCKET, REGION, notification, s3_record, sqs_batch

from filegate.events import iso_utc
from filegate.ledger import Declaration, Ledger
from filegate.local import patches
from filegate.parts import composite_sha256

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
    checksum: bool = True,
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
    other = b"id,amount\n1,999\n"
    arrive(s3, invoke, other)  # same size, other bytes (a bucket writer overwrote the key)
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    assert stored["reason"]["S"] == (
        f"S3's checksum {b64(other)} differs from the expected {b64(BODY)} (the declared"
        f" sha256 {hashlib.sha256(BODY).hexdigest()})"
    )


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
        Bucket=BUCKET,
        Key=KEY,
        Body=b"id,amount\n1,999\n",
        ContentType="text/csv",
        ChecksumAlgorithm="SHA256",
    )
    right = s3.put_object(
        Bucket=BUCKET, Key=KEY, Body=BODY, ContentType="text/csv", ChecksumAlgorithm="SHA256"
    )
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


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def s3_calls() -> list[str]:
    """The S3 operations the handler's clients make from now on (by name)."""
    calls: list[str] = []
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "before-call.s3.*", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_a_put_is_judged_by_s3s_checksum_without_reading_its_bytes(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN a declared PUT, and an object at its key whose bytes are NOT the declared ones but
    # which S3 holds with the declared SHA-256 (plain moto stores a checksum unverified)
    declare(ledger)
    other = b"id,amount\n1,999\n"
    put = s3.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=other,
        ContentType="text/csv",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=b64(BODY),
    )
    calls = s3_calls()
    # WHEN its event is handled
    invoke(sqs_batch(notification(s3_record(KEY, sequencer="0A", version_id=put["VersionId"]))))
    # THEN the verdict follows S3's checksum (had the bytes been read, it would be REJECTED),
    # and HeadObject was the only S3 call
    stored = item()
    assert stored["processing_status"]["S"] == "ACCEPTED", stored.get("reason")
    assert calls == ["HeadObject"]
    assert (stored["checksum_sha256"]["S"], stored["checksum_type"]["S"]) == (
        b64(BODY),
        "FULL_OBJECT",
    )
    assert stored["checksum_part_count"]["N"] == "1"


def test_an_object_without_an_s3_sha256_is_rejected_and_not_read(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    declare(ledger)
    calls = s3_calls()
    arrive(s3, invoke, BODY, checksum=False)
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    assert stored["reason"]["S"].startswith(
        f"S3 holds no SHA-256 checksum for the object (expected {b64(BODY)})"
    )
    assert [c for c in calls if c != "PutObject"] == ["HeadObject"]


# --- multipart uploads: S3's composite SHA-256 against the parts listed at completion ---

PART = 5 * 1024 * 1024


def multipart_object(s3: Any, parts: list[bytes]) -> dict[str, Any]:
    """A multipart upload as the upload API runs it (composite SHA-256, each part's checksum
    sent), completed; CompleteMultipartUpload's answer."""
    created = s3.create_multipart_upload(
        Bucket=BUCKET, Key=KEY, ContentType="text/csv", ChecksumAlgorithm="SHA256"
    )
    listed = []
    for number, body in enumerate(parts, start=1):
        sent = s3.upload_part(
            Bucket=BUCKET,
            Key=KEY,
            UploadId=created["UploadId"],
            PartNumber=number,
            Body=body,
            ChecksumSHA256=b64(body),
        )
        listed.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": b64(body)})
    done: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=KEY, UploadId=created["UploadId"], MultipartUpload={"Parts": listed}
    )
    return done


def arrive_multipart(s3: Any, invoke: Any, parts: list[bytes]) -> None:
    """``parts`` completed at KEY as the upload API runs it, and its event ingested."""
    with patches.applied():  # the emulator's HeadObject: a composite is "<base64>-<N>"
        done = multipart_object(s3, parts)
        record = s3_record(KEY, sequencer="0A", version_id=done["VersionId"], size=PART + 10)
        invoke(sqs_batch(notification(record)))


def declare_multipart(ledger: Ledger, size: int, whole: bytes) -> None:
    ledger.declare(
        Declaration(
            key=KEY,
            bucket=BUCKET,
            upload_id=KEY.split("/")[1],
            partner_id=KEY.split("/", maxsplit=1)[0],
            size=size,
            sha256=hashlib.sha256(whole).hexdigest(),
            content_type="text/csv",
            method="MULTIPART",
            expires_at=datetime.now(UTC) + timedelta(seconds=900),
            multipart_upload_id="mp-1",
            part_size=PART,
            part_count=2,
        )
    )


def test_a_multipart_upload_is_judged_from_head_object_without_reading_its_bytes(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN a multipart upload whose parts were listed at completion (the ledger expects their
    # composite), declared with a whole-file SHA-256 that is NOT that of the bytes sent
    parts = [b"a" * PART, b"b" * 10]
    declare_multipart(ledger, PART + 10, whole=b"something else")
    assert ledger.expect_checksum(KEY, composite_sha256(map(b64, parts)), datetime.now(UTC))
    with patches.applied():  # the emulator's HeadObject: a composite is "<base64>-<N>"
        done = multipart_object(s3, parts)
        calls = s3_calls()
        record = s3_record(KEY, sequencer="0A", version_id=done["VersionId"], size=PART + 10)
        invoke(sqs_batch(notification(record)))
    # THEN it is ACCEPTED from S3's composite checksum alone (reading the bytes would have
    # found the whole-file SHA-256 wrong: docs/integrity.md says what that does not prove)
    stored = item()
    assert stored["processing_status"]["S"] == "ACCEPTED", stored.get("reason")
    assert calls == ["HeadObject"]
    assert stored["checksum_sha256"]["S"] == composite_sha256(map(b64, parts))
    assert stored["checksum_sha256"]["S"].endswith("-2")
    assert (stored["checksum_type"]["S"], stored["checksum_part_count"]["N"]) == ("COMPOSITE", "2")
    assert (stored["declared_part_size"]["N"], stored["declared_part_count"]["N"]) == (
        str(PART),
        "2",
    )


def test_a_multipart_upload_whose_sent_sha256_is_not_the_declared_one_is_rejected_naming_both(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN a multipart upload declared with the file's SHA-256, whose client gave at completion
    # the SHA-256 of the bytes it sent: another file's (its parts are those bytes, which S3 holds)
    parts = [b"a" * PART, b"b" * 10]
    declared = hashlib.sha256(b"the declared file").hexdigest()
    sent = hashlib.sha256(b"".join(parts)).hexdigest()
    declare_multipart(ledger, PART + 10, whole=b"the declared file")
    expected = composite_sha256(map(b64, parts))
    assert ledger.expect_checksum(KEY, expected, datetime.now(UTC), sent_sha256=sent)
    arrive_multipart(s3, invoke, parts)
    # THEN S3's composite is the expected one, and the verdict is REJECTED naming both digests
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    assert stored["checksum_sha256"]["S"] == expected
    assert stored["reason"]["S"] == (
        f"the file sent has SHA-256 {sent} (computed by the partner's client from the bytes it"
        f" sent), not the declared sha256 {declared}"
    )


def test_a_multipart_object_that_is_not_the_listed_parts_is_rejected_naming_both_checksums(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    # GIVEN the ledger expects the composite of the parts listed at completion, and the key
    # holds another multipart object (a bucket writer completed its own upload over it)
    listed = [b"a" * PART, b"b" * 10]
    written = [b"c" * PART, b"d" * 10]
    declare_multipart(ledger, PART + 10, whole=b"".join(listed))
    expected = composite_sha256(map(b64, listed))
    assert ledger.expect_checksum(KEY, expected, datetime.now(UTC))
    arrive_multipart(s3, invoke, written)
    stored = item()
    held = composite_sha256(map(b64, written))
    assert stored["processing_status"]["S"] == "REJECTED"
    assert stored["reason"]["S"] == (
        f"S3's checksum {held} differs from the expected {expected} (the composite SHA-256 of"
        " the part checksums listed at completion)"
    )


def test_a_multipart_upload_completed_outside_the_api_is_rejected(
    s3: Any, invoke: Any, ledger: Ledger
) -> None:
    parts = [b"a" * PART, b"b" * 10]
    declare_multipart(ledger, PART + 10, whole=b"".join(parts))  # never completed through the API
    arrive_multipart(s3, invoke, parts)
    stored = item()
    assert stored["processing_status"]["S"] == "REJECTED"
    assert "no part checksums were listed through the upload API" in stored["reason"]["S"]


def test_overdue_declarations_are_swept_to_expired(ledger: Ledger) -> None:
    overdue = "acme-1a2b/up-aaaaaaaaaaaaaaaaaaaaaaaaaa/late.csv"
    declare(ledger, expires_in=-5, key=overdue)
    declare(ledger, expires_in=900)  # still in time
    expired = ledger.expire_overdue(datetime.now(UTC))
    assert [r.key for r in expired] == [overdue]
    assert item(overdue)["processing_status"]["S"] == "EXPIRED"
    assert item()["processing_status"]["S"] == "PENDING"
    assert ledger.expire_overdue(datetime.now(UTC)) == []  # idempotent
