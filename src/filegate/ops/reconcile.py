"""Reconciling the bucket with the ledger, and re-driving what the ledger missed.

``compare_key`` is the rule for one key (pure); ``Reconciler`` lists the bucket's latest
versions (ListObjectVersions) and scans the ledger, then applies it to every key:
- missing: S3 holds the object, the ledger has no item for it, or says DELETED, or still holds
  the upload's declaration (PENDING, EXPIRED, ABORTED): its arrival was never recorded;
- gone: the ledger says the object is there (RECEIVED, ACCEPTED, REJECTED) but its latest
  version is a delete marker, or there is no version at all;
- differs: both present, but size, version id or ETag differ (a newer write was not recorded).
A declared upload whose object has not arrived is no gap: the partner may still be uploading,
and `filegate uploads expire` closes the ones that never come. It is counted, not reported.

Repair never writes the ledger. It copies each missing or differing object onto itself
(CopyObject, metadata replaced by the same values, CopySourceIfMatch the listed ETag), so S3
itself sends a real ``ObjectCreated:Copy`` event with a real sequencer through the normal
pipeline: ordering stays S3's, a declared upload is judged as on arrival, and a write racing
the repair wins (the copy is refused, or is older). A synthesized event was rejected: it would
need a made-up sequencer, which can make the ledger refuse a later real event. Gone objects are
only reported: the one real event for them is another DeleteObject, which would delete an
upload that arrives meanwhile. Repair refuses to run while intake is paused (no event would
flow), then waits until the ledger records each copy and compares again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from filegate.errors import IntakeError, StorageError
from filegate.ledger import PRESENT, Ledger, LedgerItem, UploadStatus
from filegate.ops import intake
from filegate.ops.progress import NO_PROGRESS, Progress
from filegate.stackref import StackRef
from filegate.storage import NULL_VERSION, BucketOps, LatestVersion

DEFAULT_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.5
MAX_COPY_SIZE = 5 * 1024**3  # the largest object one CopyObject request may copy
T = TypeVar("T")


class Verdict(StrEnum):
    CONSISTENT = "consistent"
    MISSING = "missing"
    GONE = "gone"
    DIFFERS = "differs"
    DECLARED = "declared"  # a declared upload that has not arrived: not a gap


GAPS = (Verdict.MISSING, Verdict.GONE, Verdict.DIFFERS)
REPAIRABLE = frozenset({Verdict.MISSING, Verdict.DIFFERS})


@dataclass(frozen=True)
class Finding:
    """What one key looks like in S3 and in the ledger, and the verdict."""

    key: str
    verdict: Verdict
    detail: str = ""
    s3: LatestVersion | None = None
    ledger_status: str | None = None

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
    status = item.status if item else None
    if s3 is None or s3.deleted:
        return Finding(key, _absent_verdict(status), _absent_detail(s3, status), s3, status)
    if item is None:
        return Finding(key, Verdict.MISSING, "no ledger item", s3, None)
    if item.status not in PRESENT:
        detail = f"the ledger says {item.status or 'nothing'}: the arrival was never recorded"
        return Finding(key, Verdict.MISSING, detail, s3, status)
    differences = _differences(s3, item)
    verdict = Verdict.DIFFERS if differences else Verdict.CONSISTENT
    return Finding(key, verdict, "; ".join(differences), s3, status)


def _absent_verdict(status: str | None) -> Verdict:
    if status in PRESENT:
        return Verdict.GONE
    if status == UploadStatus.PENDING:
        return Verdict.DECLARED
    return Verdict.CONSISTENT


def _absent_detail(s3: LatestVersion | None, status: str | None) -> str:
    if status not in PRESENT:
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
    """One object driven through the pipeline again (or why it was not)."""

    key: str
    version_id: str | None  # the copy's version; None when no copy was made
    recorded: bool = False  # the ledger recorded the copy before the deadline
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
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
    """One bucket against one ledger; clock and sleep injected for the repair's wait."""

    def __init__(
        self,
        s3: BucketOps,
        ledger: Ledger,
        bucket: str,
        progress: Progress = NO_PROGRESS,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s3 = s3
        self._ledger = ledger
        self.bucket = bucket
        self._progress = progress
        self._sleep = sleep
        self._monotonic = monotonic

    def compare(self, prefix: str = "") -> Comparison:
        """Every key under ``prefix`` in S3 or in the ledger, judged by ``compare_key``."""
        self._progress.start(f"listing s3://{self.bucket}/{prefix}")
        latest = {v.key: v for v in self._counted(self._s3.latest(self.bucket, prefix))}
        self._progress.start(f"reading ledger table {self._ledger.table_name}")
        items = {i.key: i for i in self._counted(self._ledger.scan(prefix))}
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
        """Copy every missing or differing object onto itself, wait for the ledger, compare."""
        targets = [f for f in before.findings if f.verdict in REPAIRABLE]
        self._progress.start("re-driving objects through the pipeline", len(targets))
        repairs = [self._redrive(f) for f in targets]
        repairs = self._wait_recorded(repairs, timeout)
        return ReconcileReport(before, repairs, self.compare(before.prefix))

    def _redrive(self, finding: Finding) -> Repair:
        self._progress.advance()
        s3 = finding.s3
        if s3 is None or s3.etag is None:  # repairable findings are listed objects: not expected
            return Repair(finding.key, None, problem="S3 listed no ETag for it")
        if s3.size is not None and s3.size > MAX_COPY_SIZE:
            return Repair(finding.key, None, problem=_TOO_LARGE.format(b=self.bucket, k=s3.key))
        try:
            version = self._s3.copy_onto_itself(self.bucket, finding.key, s3.etag)
        except StorageError as exc:
            return Repair(finding.key, None, problem=str(exc))
        if version is None:
            return Repair(finding.key, None, problem="changed or deleted since it was listed")
        return Repair(finding.key, version)

    def _wait_recorded(self, repairs: list[Repair], timeout: float) -> list[Repair]:
        """Poll the ledger until every copy is recorded or the deadline passes."""
        waiting = {r.key: r for r in repairs if r.version_id is not None}
        self._progress.start("waiting for the ledger to record them", len(waiting))
        done: dict[str, Repair] = {}
        deadline = self._monotonic() + timeout
        while waiting:
            for key, repair in list(waiting.items()):
                if _recorded(self._ledger.get(key), repair):
                    done[key] = Repair(key, repair.version_id, recorded=True)
                    del waiting[key]
                    self._progress.advance()
            if not waiting or self._monotonic() >= deadline:
                break
            self._sleep(POLL_SECONDS)
        late = "not recorded before the deadline: is the function failing? see `filegate logs`"
        return [done.get(r.key) or _late(r, late) for r in repairs]

    def _counted(self, values: Iterable[T]) -> Iterator[T]:
        for value in values:
            self._progress.advance()
            yield value


_TOO_LARGE = (
    "larger than 5 GiB, more than one CopyObject can copy: re-drive it with a multipart copy,"
    " `aws s3 cp s3://{b}/{k} s3://{b}/{k} --metadata-directive REPLACE` (same metadata)"
)


def _recorded(item: LedgerItem | None, repair: Repair) -> bool:
    if item is None or item.status not in PRESENT:
        return False
    if repair.version_id in (None, NULL_VERSION):
        return item.event_name.startswith("ObjectCreated:")
    return item.version_id == repair.version_id


def _late(repair: Repair, problem: str) -> Repair:
    if repair.version_id is None:
        return repair
    return Repair(repair.key, repair.version_id, recorded=False, problem=problem)


def for_stack(ref: StackRef, progress: Progress = NO_PROGRESS) -> Reconciler:
    """The stack's bucket (BucketName output) against its ledger (TableName output)."""
    ledger = Ledger(ref.output("TableName"), ref.client("dynamodb"))
    return Reconciler(BucketOps(ref.client("s3")), ledger, ref.output("BucketName"), progress)


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
    """Repair needs S3's events to reach the queue: refuse unless intake is active."""
    if status.state is intake.IntakeState.ACTIVE:
        return
    raise IntakeError(
        f"cannot repair: intake of bucket {status.bucket} is {status.state.value}, so the copies'"
        " events would not reach the queue; run `filegate resume` (see `filegate intake`) and"
        " then `filegate reconcile --repair`"
    )
