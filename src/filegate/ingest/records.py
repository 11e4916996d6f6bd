"""What one S3 object event does to the ledger.

``Ingestor.ingest`` is the whole record logic: a created object costs one HeadObject and one
conditional ledger write, a removed object one write. An event for any bucket but the stack's
(``bucket``) is refused before either: the ledger is keyed by object key alone, so another bucket's
event would overwrite the item of the same key, and on AWS the function's role may not read another
bucket anyway (``ForeignBucketError``). A declared partner upload (its key is
``<partner_id>/<upload_id>/<filename>`` and the ledger holds its declaration) is also judged: its
arrival time and then size, content type and SHA-256 against what was declared (and, for a multipart
upload declared with its sha256, that of the bytes sent, which the client gives at completion),
giving ACCEPTED, or REJECTED with a reason. The arrival time is the event's ``eventTime`` (when S3
finished storing the object), against the declaration's ``expires_at``: not the declaration's
status, which says only whether `filegate uploads expire` (or a status read) ran before this event
was processed, and one failed delivery (a 180 s visibility timeout) can put that after the expiry of
an upload that arrived in time. The object is never read: its integrity is the SHA-256 checksum S3
verified and holds (HeadObject with checksum mode), compared with the one the ledger expects
(``expected_checksum_sha256``: for a PUT, the declared sha256; for a multipart upload, the composite
over the part checksums listed at completion), so the verdict of 5 GiB costs what that of 1 KiB does
(docs/integrity.md). The clients arrive inside the injected ``ObjectStore`` and ``Ledger``; this
module makes no AWS call itself.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import replace

from filegate.events import ObjectEvent
from filegate.ingest.exceptions import ForeignBucketError
from filegate.ledger import Ledger, LedgerEntry, Outcome, Status, UploadRecord
from filegate.storage import ObjectInfo, ObjectStore

logger = logging.getLogger(__name__)

# <partner_id>/<upload_id>/<filename>, as the upload API lays out declared uploads.
PARTNER_UPLOAD_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*/up-[a-z2-7]{26}/[^/]+")


class Ingestor:
    """Applies the events of one bucket to the ledger: one HeadObject per created object."""

    def __init__(self, store: ObjectStore, ledger: Ledger, bucket: str) -> None:
        self._store = store
        self._ledger = ledger
        self.bucket = bucket

    def ingest(self, event: ObjectEvent) -> Outcome:
        """Record one event; the outcome says whether it changed the ledger."""
        if event.bucket != self.bucket:
            raise ForeignBucketError(
                f"refused an event for s3://{event.bucket}/{event.key}: this function records"
                f" bucket {self.bucket} only (UPLOAD_BUCKET). Find what sends other buckets'"
                " events to its queue; the message ends in the dead-letter queue (`filegate dlq"
                " list`), where `filegate dlq purge` removes it"
            )
        if event.is_created:
            return self._ledger.record(self._created_entry(event))
        if event.is_removed:
            return self._ledger.record(removed_entry(event))
        logger.info("event %s is not recorded in the ledger", event.event_name)
        return Outcome.IGNORED

    def _created_entry(self, event: ObjectEvent) -> LedgerEntry:
        info = self._store.head(event.bucket, event.key, event.version_id)
        if info is None:
            # Deleted before this event was processed: say what S3 says. A later delete event
            # rewrites DELETED; a delete already recorded makes this write stale.
            logger.info("object is gone from S3 before its create event was processed")
            return removed_entry(event)
        entry = received_entry(event, info)
        if not PARTNER_UPLOAD_KEY.fullmatch(event.key):
            return entry
        declared = self._ledger.declaration(event.key)
        if declared is None:
            return entry  # put there some other way: recorded like any object
        reason = rejection_reason(declared, info, arrived_at=event.event_time)
        return replace(entry, status=Status.REJECTED if reason else Status.ACCEPTED, reason=reason)


def rejection_reason(declared: UploadRecord, info: ObjectInfo, arrived_at: str) -> str | None:
    """Why the object that arrived is not the upload the partner declared; None if it is.

    ``arrived_at`` is S3's eventTime; both times are ``iso_utc`` text, which compares as time.
    """
    if declared.expires_at and arrived_at > declared.expires_at:
        return f"arrived at {arrived_at}, after the upload expired at {declared.expires_at}"
    if info.size != declared.declared_size:
        return f"size {info.size} differs from the declared size {declared.declared_size}"
    if info.content_type != declared.declared_content_type:
        return (
            f"content type {info.content_type} differs from the declared"
            f" {declared.declared_content_type}"
        )
    return checksum_problem(declared, info.checksum_sha256) or sent_problem(declared)


def sent_problem(declared: UploadRecord) -> str | None:
    """Why the file sent is not the one declared, by the whole-file SHA-256 the client computed
    from the bytes it sent (given at completion) against the declared one; None if they agree
    or only one is known. S3 verified the parts, not this digest: docs/integrity.md."""
    sent, expected = declared.sent_sha256, declared.declared_sha256
    if not sent or not expected or sent == expected:
        return None
    return (
        f"the file sent has SHA-256 {sent} (computed by the partner's client from the bytes it"
        f" sent), not the declared sha256 {expected}"
    )


def checksum_problem(declared: UploadRecord, held: str | None) -> str | None:
    """Why the SHA-256 checksum S3 holds is not the one the declaration expects; None if it is."""
    expected = expected_checksum(declared)
    if expected is None:
        return (
            f"S3 holds checksum {held}, but no part checksums were listed through the upload API:"
            " the multipart upload was completed some other way"
        )
    if held is None:
        return (
            f"S3 holds no SHA-256 checksum for the object (expected {expected}): it was not"
            " written through the upload's signed URLs"
        )
    if held != expected:
        return f"S3's checksum {held} differs from the expected {expected} ({_meaning(declared)})"
    return None


def expected_checksum(declared: UploadRecord) -> str | None:
    """The SHA-256 checksum S3 must hold: recorded with the declaration (a PUT's is its declared
    sha256) or at completion (a multipart upload's composite)."""
    if declared.expected_checksum_sha256:
        return declared.expected_checksum_sha256
    if declared.method == "MULTIPART":
        return None
    return _base64(declared.declared_sha256)


def _meaning(declared: UploadRecord) -> str:
    if declared.method == "MULTIPART":
        return "the composite SHA-256 of the part checksums listed at completion"
    return f"the declared sha256 {declared.declared_sha256}"


def _base64(hex_digest: str) -> str | None:
    try:
        return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def received_entry(event: ObjectEvent, info: ObjectInfo) -> LedgerEntry:
    """The ledger entry for an object HeadObject found (its answer wins over the event's)."""
    return LedgerEntry(
        key=event.key,
        bucket=event.bucket,
        status=Status.RECEIVED,
        event_name=event.event_name,
        event_time=event.event_time,
        sequencer=event.sequencer,
        version_id=info.version_id or event.version_id,
        size=info.size,
        content_type=info.content_type,
        etag=info.etag or event.etag,
        checksum_sha256=info.checksum_sha256,
        checksum_type=_checksum_type(info),
        checksum_part_count=info.checksum_part_count,
    )


def _checksum_type(info: ObjectInfo) -> str | None:
    """S3's ChecksumType; derived from the value's shape when the answer leaves it out."""
    if not info.checksum_sha256:
        return None
    if info.checksum_type:
        return info.checksum_type
    return "COMPOSITE" if "-" in info.checksum_sha256 else "FULL_OBJECT"


def removed_entry(event: ObjectEvent) -> LedgerEntry:
    """The ledger entry for an object that is gone; its size and type stay as recorded."""
    return LedgerEntry(
        key=event.key,
        bucket=event.bucket,
        status=Status.DELETED,
        event_name=event.event_name,
        event_time=event.event_time,
        sequencer=event.sequencer,
        version_id=event.version_id,
    )
