"""Nothing orphaned: closing declared uploads that never arrived, and the multipart uploads
S3 still holds open for nobody.

``Sweeper`` owns the rules of `filegate uploads expire`; the ledger makes every DynamoDB call
(``Ledger``) and storage every S3 call (``BucketOps``):

1. A declared upload still PENDING past its ``expires_at`` is turned EXPIRED by the ledger's
   conditional write (an upload that arrived, was aborted or had its part URLs signed again
   meanwhile wins and is left alone), and only then is its S3 multipart upload aborted, so
   that a concurrent extension can never lose its parts. Past ``expires_at`` nobody can
   complete it any more: its URLs are dead and the API refuses a late completion.
2. Every multipart upload S3 still holds open (ListMultipartUploads) that no PENDING
   declaration names is aborted: at once when a closed declaration (EXPIRED, ABORTED...)
   names it (a status read turned it EXPIRED without aborting it, or an earlier abort
   failed), and when no declaration names it at all, once it was initiated more than
   ``older_than`` ago (someone with credentials may be uploading it directly).

EXPIRED and ABORTED stay apart: EXPIRED says the declaration ran out of time (this sweep, or
a status read past the expiry), ABORTED that the partner gave the upload up (``POST
/uploads/{id}/abort``, or the client after a transfer failed for good).

``stale_count`` is the metric's rule (``uploads/stale_metric.py``): multipart uploads open
for more than ``older_than``, whatever the ledger says. This module imports nothing from
``cli``, ``ops`` or ``local``: the scheduled metric function runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from filegate.events import iso_utc
from filegate.ledger import Ledger, UploadRecord, UploadStatus
from filegate.progress import NO_PROGRESS, Progress
from filegate.storage import BucketOps, OpenMultipartUpload

# How long a multipart upload no declaration names may stay open before `uploads expire`
# aborts it, and the age from which the metric counts an open upload: a declaration's URLs
# live at most an hour (PresignExpirySeconds), so a day is well past any declared upload that
# is not being renewed; the bucket's lifecycle rule aborts what is left after 7 days.
DEFAULT_OLDER_THAN = timedelta(hours=24)
MULTIPART = "MULTIPART"

Clock = Callable[[], datetime]


class Kind(StrEnum):
    DECLARED = "declared"  # a PENDING declaration past its expiry
    CLOSED = "closed"  # open in S3, but its declaration is no longer PENDING
    UNDECLARED = "undeclared"  # open in S3, no declaration names it


class Action(StrEnum):
    EXPIRED = "expired"  # the ledger says EXPIRED now
    ABORTED = "aborted"  # S3's multipart upload aborted (no ledger change)
    LEFT = "left"  # the declaration moved on meanwhile (arrived, aborted, extended)
    WOULD_EXPIRE = "would expire"  # --dry-run
    WOULD_ABORT = "would abort"  # --dry-run


@dataclass(frozen=True)
class Swept:
    """One upload the sweep closed (or, with ``dry_run``, would close)."""

    kind: Kind
    key: str
    action: Action
    since: str  # a declaration's expires_at; an undeclared upload's Initiated
    upload_id: str | None = None  # filegate's id, for a declared upload
    multipart_upload_id: str | None = None  # S3's UploadId, when there is one
    s3: str = "-"  # aborted / already gone / none (a single PUT) / would abort
    status: str = "-"  # the ledger's status afterwards

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SweepReport:
    """What `filegate uploads expire` did; ``kept`` counts open uploads left open on purpose."""

    bucket: str
    table: str
    dry_run: bool
    older_than_seconds: int
    swept: list[Swept] = field(default_factory=list)
    kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "table": self.table,
            "dry_run": self.dry_run,
            "older_than_seconds": self.older_than_seconds,
            "swept": [s.as_dict() for s in self.swept],
            "kept_open": self.kept,
        }


class Sweeper:
    """The sweep over one bucket and its ledger; clock and progress injected."""

    def __init__(
        self,
        s3: BucketOps,
        ledger: Ledger,
        bucket: str,
        clock: Clock | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._s3 = s3
        self._ledger = ledger
        self.bucket = bucket
        self._clock = clock or (lambda: datetime.now(UTC))
        self._progress = progress or NO_PROGRESS

    def sweep(
        self, older_than: timedelta = DEFAULT_OLDER_THAN, dry_run: bool = False
    ) -> SweepReport:
        """Both steps of the module docstring; with ``dry_run`` nothing is changed."""
        now = self._clock()
        self._progress.start(f"reading overdue declarations in {self._ledger.table_name}")
        overdue = self._ledger.overdue_uploads(now)
        self._progress.start("expiring overdue declarations", len(overdue))
        swept = [self._expire(record, now, dry_run) for record in overdue]
        handled = {s.multipart_upload_id for s in swept if s.multipart_upload_id}
        self._progress.start(f"listing open multipart uploads in s3://{self.bucket}")
        open_uploads = list(self._s3.open_multipart_uploads(self.bucket))
        self._progress.start("aborting orphaned multipart uploads", len(open_uploads))
        orphans, kept = self._orphans(open_uploads, handled, now - older_than, dry_run)
        seconds = int(older_than.total_seconds())
        table = self._ledger.table_name
        return SweepReport(self.bucket, table, dry_run, seconds, swept + orphans, kept)

    def _expire(self, record: UploadRecord, now: datetime, dry_run: bool) -> Swept:
        self._progress.advance()
        multipart_id = record.multipart_upload_id if record.method == MULTIPART else None
        swept = Swept(
            kind=Kind.DECLARED,
            key=record.key,
            action=Action.WOULD_EXPIRE,
            since=record.expires_at,
            upload_id=record.upload_id,
            multipart_upload_id=multipart_id,
            s3="would abort" if multipart_id else "none",
            status=record.status,
        )
        if dry_run:
            return swept
        if self._ledger.expire(record.key, now) is None:
            # Arrived, aborted or extended since it was read: that write wins.
            current = self._ledger.declaration(record.key)
            status = current.status if current else "-"
            return replace(swept, action=Action.LEFT, s3="-", status=status)
        s3 = self._abort(record.key, multipart_id) if multipart_id else "none"
        return replace(swept, action=Action.EXPIRED, s3=s3, status=UploadStatus.EXPIRED.value)

    def _orphans(
        self,
        uploads: Iterable[OpenMultipartUpload],
        handled: set[str],
        cutoff: datetime,
        dry_run: bool,
    ) -> tuple[list[Swept], int]:
        swept, kept = [], 0
        for upload in uploads:
            self._progress.advance()
            if upload.upload_id in handled:
                continue
            declared = self._ledger.declaration(upload.key)
            kind = _orphan_kind(upload, declared, cutoff)
            if kind is None:
                kept += 1
                continue
            if declared is not None and declared.multipart_upload_id != upload.upload_id:
                declared = None  # a declaration of the key, but not of this upload
            swept.append(self._close_orphan(upload, kind, declared, dry_run))
        return swept, kept

    def _close_orphan(
        self,
        upload: OpenMultipartUpload,
        kind: Kind,
        declared: UploadRecord | None,
        dry_run: bool,
    ) -> Swept:
        swept = Swept(
            kind=kind,
            key=upload.key,
            action=Action.WOULD_ABORT,
            since=iso_utc(upload.initiated),
            upload_id=declared.upload_id if declared else None,
            multipart_upload_id=upload.upload_id,
            s3="would abort",
            status=declared.status if declared else "-",
        )
        if dry_run:
            return swept
        return replace(swept, action=Action.ABORTED, s3=self._abort(upload.key, upload.upload_id))

    def _abort(self, key: str, multipart_id: str) -> str:
        gone = not self._s3.abort_multipart(self.bucket, key, multipart_id)
        return "already gone" if gone else "aborted"


def _orphan_kind(
    upload: OpenMultipartUpload, declared: UploadRecord | None, cutoff: datetime
) -> Kind | None:
    """Why ``upload`` should be aborted, or None to keep it open."""
    if declared is not None and declared.multipart_upload_id == upload.upload_id:
        return None if declared.status == UploadStatus.PENDING else Kind.CLOSED
    return Kind.UNDECLARED if upload.initiated < cutoff else None


def stale_count(
    uploads: Iterable[OpenMultipartUpload], now: datetime, older_than: timedelta
) -> int:
    """How many of ``uploads`` were initiated more than ``older_than`` before ``now``."""
    return sum(1 for upload in uploads if upload.initiated < now - older_than)
