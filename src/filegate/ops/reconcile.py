"""Reconciling the bucket with the ledger, and re-driving what the ledger missed.

``compare_key`` is the rule for one key (pure); ``Reconciler`` scans the ledger, then lists
the bucket's latest versions (ListObjectVersions), and applies it to every key:
- missing: S3 holds the object, the ledger has no item for it, or says DELETED, or still holds
  the upload's declaration (PENDING, EXPIRED, ABORTED, or REJECTED because S3 refused its
  bytes): its arrival was never recorded;
- gone: the ledger says the object is there (RECEIVED, ACCEPTED, REJECTED, each written by an
  S3 event: ``ledger.holds_object``) but its latest version is a delete marker, or there is no
  version at all;
- differs: both present, but size, version id or ETag differ (a newer write was not recorded).
A declared upload whose object has not arrived is no gap: the partner may still be uploading,
and `filegate uploads expire` closes the ones that never come. It is counted, not reported.

Repair never writes the object nor the ledger. For each gap it sends the ingest queue one
message shaped like S3's event for the key's CURRENT state (``redrive_event``): for a missing or
differing object an ``ObjectCreated:Reconcile`` naming the listed version, for a gone one an
``ObjectRemoved:Reconcile`` (naming the delete marker, if any). The ingestion then does what
it does for S3's own events (HeadObject of that version, the verdict on a declared upload,
one conditional ledger write). Nothing is copied: no new version (paid for forever in a
versioned bucket), no 5 GiB CopyObject limit, no new LastModified.

The event carries no sequencer (a made-up one could make the ledger refuse later real
events), so the ledger orders it by time (``redrive_time``): the later of the version's
LastModified (to the second, as ListObjectVersions gives it) and 1 ms after the event the
ledger item records. It therefore replaces the state reconcile saw, and never a newer one:
the ledger is read before the bucket is listed (``Reconciler.compare``), so the listed state is
the one the item records or a later one, and a write or delete after the listed state
finished after it: its eventTime is later, and whichever of the two events the ledger
applies second, the newer state stays.

Repair refuses to run while intake is paused (uploads until `filegate resume` would not be
recorded, so no repair could leave the ledger complete), then waits until each item has
reached its re-driven event (or a newer one), and compares again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from filegate.errors import IntakeError, QueueError
from filegate.events import ObjectEvent, iso_utc, normalise_event_time, notification_record
from filegate.ledger import Ledger, LedgerItem, UploadStatus, holds_object
from filegate.ops import intake
from filegate.outputs import BUCKET_NAME, QUEUE_URL, TABLE_NAME
from filegate.progress import NO_PROGRESS, Progress
from filegate.queues import MessageQueue
from filegate.stackref import StackRef
from filegate.storage import NULL_VERSION, BucketOps, LatestVersion

DEFAULT_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.5
# Not names S3 uses: the ledger item then says its state came from a re-drive.
REDRIVE_CREATED = "ObjectCreated:Reconcile"
REDRIVE_REMOVED = "ObjectRemoved:Reconcile"
REDRIVE_PRINCIPAL = "filegate-reconcile"  # the record's userIdentity.principalId
T = TypeVar("T")


class Verdict(StrEnum):
    CONSISTENT = "consistent"
    MISSING = "missing"
    GONE = "gone"
    DIFFERS = "differs"
    DECLARED = "declared"  # a declared upload that has not arrived: not a gap


GAPS = (Verdict.MISSING, Verdict.GONE, Verdict.DIFFERS)
REPAIRABLE = frozenset(GAPS)


@dataclass(frozen=True)
class Finding:
    """What one key looks like in S3 and in the ledger, and the verdict."""

    key: str
    verdict: Verdict
    detail: str = ""
    s3: LatestVersion | None = None
    ledger_status: str | None = None
    ledger_event_time: str | None = None  # the event the ledger item records, if any

    def as_dict(self) -> dict[str, Any]:
        present = self.s3 is not None and not self.s3.deleted
        return {
            "key": self.key,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "s3_version_id": self.s3.version_id if present and self.s3 else None,
            "s3_size": self.s3.size if self.s3 else None,
            "ledger_status": self.ledger_status,
        }


def compare_key(key: str, s3: LatestVersion | None, item: LedgerItem | None) -> Finding:
    """The verdict for one key (the rules are in the module docstring)."""
    seen = {"ledger_status": item.status, "ledger_event_time": item.event_time} if item else {}
    status = item.status if item else None
    present = item is not None and holds_object(item.status, item.event_time)
    if s3 is None or s3.deleted:
        verdict, detail = _absent_verdict(status, present), _absent_detail(s3, status, present)
        return Finding(key, verdict, detail, s3, **seen)
    if item is None:
        return Finding(key, Verdict.MISSING, "no ledger item", s3)
    if not present:
        detail = f"the ledger says {item.status or 'nothing'}: the arrival was never recorded"
        return Finding(key, Verdict.MISSING, detail, s3, **seen)
    differences = _differences(s3, item)
    verdict = Verdict.DIFFERS if differences else Verdict.CONSISTENT
    return Finding(key, verdict, "; ".join(differences), s3, **seen)


def redrive_time(finding: Finding) -> str | None:
    """The eventTime of the event that re-drives ``finding``'s key (rule: module docstring).

    None when there is neither a listed LastModified nor a recorded event to go by.
    """
    times = []
    if finding.s3 is not None and finding.s3.last_modified:
        times.append(normalise_event_time(finding.s3.last_modified))
    try:
        recorded = datetime.fromisoformat(finding.ledger_event_time or "")
    except ValueError:  # no event recorded (a declaration), or not a time: LastModified only
        return max(times, default=None)
    times.append(iso_utc(recorded + timedelta(milliseconds=1)))
    return max(times, default=None)


def redrive_event(finding: Finding, bucket: str, event_time: str) -> ObjectEvent:
    """The event S3 would send for the key's current state: the listed version, or its absence."""
    s3 = finding.s3
    if s3 is None or s3.deleted:
        version = s3.version_id if s3 is not None else None
        return ObjectEvent(bucket, finding.key, REDRIVE_REMOVED, event_time, version_id=version)
    return ObjectEvent(
        bucket,
        finding.key,
        REDRIVE_CREATED,
        event_time,
        size=s3.size,
        etag=s3.etag,
        version_id=s3.version_id,
    )


def _absent_verdict(status: str | None, present: bool) -> Verdict:
    if present:
        return Verdict.GONE
    if status == UploadStatus.PENDING:
        return Verdict.DECLARED
    return Verdict.CONSISTENT


def _absent_detail(s3: LatestVersion | None, status: str | None, present: bool) -> str:
    if not present:
        return ""
    where = "its latest version is a delete marker" if s3 else "S3 has no version of it"
    return f"the ledger says {status}, but {where}"


def _differences(s3: LatestVersion, item: LedgerItem) -> list[str]:
    found = []
    if item.size is not None and s3.size is not None and item.size != s3.size:
        found.append(f"size {item.size} in the ledger, {s3.size} in S3")
    versions = (item.version_id, s3.version_id)
    if None not in versions and NULL_VERSION not in versions and versions[0] != versions[1]:
        found.append(f"version {item.version_id} in the ledger, {s3.version_id} in S3")
    if item.etag and s3.etag and item.etag != s3.etag:
        found.append(f"ETag {item.etag} in the ledger, {s3.etag} in S3")
    return found


@dataclass(frozen=True)
class Comparison:
    """The bucket against the ledger, under one prefix."""

    bucket: str
    table: str
    prefix: str
    objects: int  # keys whose latest version is an object
    items: int  # ledger items under the prefix
    findings: list[Finding]  # every key that is not consistent (declared ones included)

    @property
    def gaps(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict in GAPS]

    @property
    def ok(self) -> bool:
        return not self.gaps

    def of(self, verdict: Verdict) -> list[Finding]:
        return [f for f in self.findings if f.verdict is verdict]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "table": self.table,
            "prefix": self.prefix,
            "objects": self.objects,
            "ledger_items": self.items,
            **{v.value: [f.as_dict() for f in self.of(v)] for v in GAPS},
            "declared_not_arrived": len(self.of(Verdict.DECLARED)),
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Repair:
    """One key re-driven through the queue (or why it was not)."""

    key: str
    event_name: str | None = None  # what was sent; None when nothing was
    version_id: str | None = None  # the version (or delete marker) it names
    event_time: str | None = None
    message_id: str | None = None
    recorded: bool = False  # the ledger item reached this event (or a newer one) in time
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "event_name": self.event_name,
            "version_id": self.version_id,
            "event_time": self.event_time,
            "message_id": self.message_id,
            "recorded": self.recorded,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class ReconcileReport:
    """The comparison, and with ``--repair`` what was re-driven and the comparison after."""

    before: Comparison
    repairs: list[Repair] = field(default_factory=list)
    after: Comparison | None = None

    @property
    def final(self) -> Comparison:
        return self.after or self.before

    @property
    def ok(self) -> bool:
        return self.final.ok

    def as_dict(self) -> dict[str, Any]:
        document = self.final.as_dict()
        if self.after is not None:
            document["before"] = self.before.as_dict()
            document["repairs"] = [r.as_dict() for r in self.repairs]
        return document


class Reconciler:
    """One bucket against one ledger, re-driving through one queue; clock and sleep injected."""

    def __init__(
        self,
        s3: BucketOps,
        ledger: Ledger,
        bucket: str,
        queue: MessageQueue,
        progress: Progress = NO_PROGRESS,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        region: str = "",
    ) -> None:
        self._s3 = s3
        self._ledger = ledger
        self.bucket = bucket
        self._queue = queue
        self._progress = progress
        self._sleep = sleep
        self._monotonic = monotonic
        self._region = region

    def compare(self, prefix: str = "") -> Comparison:
        """Every key under ``prefix`` in S3 or in the ledger, judged by ``compare_key``.

        The ledger is read first: every state it shows was written to S3 before the listing
        began, so (S3 lists with strong consistency) the listing shows that state or a newer
        one, and a re-drive of what it lists can only move an item forward. Read the other
        way round, an upload made between the two reads shows in the ledger only ("gone"),
        and re-driving its absence would undo it.
        """
        self._progress.start(f"reading ledger table {self._ledger.table_name}")
        items = {i.key: i for i in self._counted(self._ledger.scan(prefix))}
        self._progress.start(f"listing s3://{self.bucket}/{prefix}")
        latest = {v.key: v for v in self._counted(self._s3.latest(self.bucket, prefix))}
        verdicts = (compare_key(k, latest.get(k), items.get(k)) for k in sorted({*latest, *items}))
        return Comparison(
            bucket=self.bucket,
            table=self._ledger.table_name,
            prefix=prefix,
            objects=sum(1 for v in latest.values() if not v.deleted),
            items=len(items),
            findings=[f for f in verdicts if f.verdict is not Verdict.CONSISTENT],
        )

    def repair(
        self, before: Comparison, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> ReconcileReport:
        """Re-drive every gap through the ingest queue, wait for the ledger, compare again."""
        targets = [f for f in before.findings if f.verdict in REPAIRABLE]
        self._progress.start(f"re-driving through queue {self._queue.name}", len(targets))
        repairs = [self._redrive(f) for f in targets]
        repairs = self._wait_recorded(repairs, timeout)
        return ReconcileReport(before, repairs, self.compare(before.prefix))

    def _redrive(self, finding: Finding) -> Repair:
        self._progress.advance()
        event_time = redrive_time(finding)
        if event_time is None:
            return Repair(finding.key, problem="neither S3 nor the ledger gives a time for it")
        event = redrive_event(finding, self.bucket, event_time)
        record = notification_record(event, REDRIVE_PRINCIPAL, self._region, REDRIVE_PRINCIPAL)
        sent = Repair(finding.key, event.event_name, event.version_id, event_time)
        try:
            message_id = self._queue.send(json.dumps({"Records": [record]}), {})
        except QueueError as exc:
            return replace(sent, problem=str(exc))
        return replace(sent, message_id=message_id)

    def _wait_recorded(self, repairs: list[Repair], timeout: float) -> list[Repair]:
        """Poll the ledger until every item reached its re-driven event, or the deadline."""
        waiting = {r.key: r for r in repairs if r.message_id is not None}
        self._progress.start("waiting for the ledger to record them", len(waiting))
        done: dict[str, Repair] = {}
        deadline = self._monotonic() + timeout
        while waiting:
            for key, repair in list(waiting.items()):
                if _reached(self._ledger.get(key), repair):
                    done[key] = replace(repair, recorded=True)
                    del waiting[key]
                    self._progress.advance()
            if not waiting or self._monotonic() >= deadline:
                break
            self._sleep(POLL_SECONDS)
        late = (
            "not recorded before the deadline: is the function failing? see `filegate logs`"
            " and `filegate dlq list`"
        )
        return [done.get(r.key) or _late(r, late) for r in repairs]

    def _counted(self, values: Iterable[T]) -> Iterator[T]:
        for value in values:
            self._progress.advance()
            yield value


def _reached(item: LedgerItem | None, repair: Repair) -> bool:
    """The item records the re-driven event, or a newer one (which the re-drive must not undo)."""
    if item is None or not item.event_time or repair.event_time is None:
        return False
    return item.event_time >= repair.event_time


def _late(repair: Repair, problem: str) -> Repair:
    if repair.message_id is None:
        return repair
    return replace(repair, recorded=False, problem=problem)


def for_stack(ref: StackRef, progress: Progress = NO_PROGRESS) -> Reconciler:
    """The stack's bucket (BucketName output) against its ledger (TableName output),
    re-driving through its ingest queue (QueueUrl output)."""
    return Reconciler(
        BucketOps(ref.client("s3")),
        Ledger(ref.output(TABLE_NAME), ref.client("dynamodb")),
        ref.output(BUCKET_NAME),
        MessageQueue(ref.output(QUEUE_URL), ref.client("sqs")),
        progress,
        region=ref.target.region or "",
    )


def reconcile(
    ref: StackRef,
    prefix: str = "",
    repair: bool = False,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Progress = NO_PROGRESS,
) -> ReconcileReport:
    """Compare the stack's bucket with its ledger; with ``repair``, re-drive the gaps first."""
    if repair:
        require_flowing(intake.for_stack(ref).status())
    reconciler = for_stack(ref, progress)
    before = reconciler.compare(prefix)
    if not repair or not any(f.verdict in REPAIRABLE for f in before.findings):
        return ReconcileReport(before)
    return reconciler.repair(before, timeout)


def require_flowing(status: intake.IntakeStatus) -> None:
    """Repair only while S3's events flow: otherwise uploads made until they flow again are
    missed anew, and no repair could leave the ledger complete."""
    if status.state is intake.IntakeState.ACTIVE:
        return
    raise IntakeError(
        f"cannot repair: intake of bucket {status.bucket} is {status.state.value}, so uploads"
        " made meanwhile are not recorded and the ledger cannot be made complete; run"
        " `filegate resume` (see `filegate intake`) and then `filegate reconcile --repair`"
    )
