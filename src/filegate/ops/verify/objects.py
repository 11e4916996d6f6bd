"""The checks of one object through the ingestion: a smoke upload (``smoke/test-<epoch>.txt``)
reaches the ledger as RECEIVED with its size, type and version, or a given key has an item the
function wrote; and the function's logs show the key processed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import FilegateError
from filegate.ledger import LedgerItem, Status
from filegate.ops.logs import InvocationFilter, LogReader
from filegate.ops.verify.base import Checks
from filegate.ops.verify.results import ITEM, LOGS, SMOKE, CheckResult
from filegate.outputs import BUCKET_NAME
from filegate.storage import ObjectStore

SMOKE_PREFIX = "smoke/"
SMOKE_CONTENT_TYPE = "text/plain"

_WRITTEN_STATUSES = frozenset(status.value for status in Status)
_SUCCESS_OUTCOMES = frozenset({"written", "duplicate", "stale"})


@dataclass(frozen=True)
class SmokeObject:
    """The object a smoke upload wrote."""

    bucket: str
    key: str
    version_id: str | None
    size: int
    uploaded_at: datetime


def smoke_key(now: datetime) -> str:
    """The runbook's ``smoke/test-$(date +%s).txt``."""
    return f"{SMOKE_PREFIX}test-{int(now.timestamp())}.txt"


class ObjectChecks(Checks):
    """A smoke upload (or a given key): its ledger item and the function's logs of it."""

    def _object_checks(self, key: str | None) -> tuple[list[CheckResult], str | None]:
        if key is not None:
            return self._given_key_checks(key), key
        self._progress(SMOKE)
        try:
            smoke = self.smoke_upload()
        except (ClientError, BotoCoreError, FilegateError) as exc:
            return [CheckResult(SMOKE, False, f"could not upload: {exc}")], None
        since = smoke.uploaded_at - timedelta(minutes=1)
        return [
            CheckResult(SMOKE, True, f"s3://{smoke.bucket}/{smoke.key} ({smoke.size} bytes)"),
            self._guarded(ITEM, lambda: self.smoke_item(smoke)),
            self._guarded(LOGS, lambda: self.function_logs(smoke.key, since)),
        ], smoke.key

    def _given_key_checks(self, key: str) -> list[CheckResult]:
        item_check = self._guarded(ITEM, lambda: self.ledger_item(key))
        item = self._ledger().get(key)
        since = _item_time(item) if item else self._clock() - timedelta(days=1)
        since -= timedelta(minutes=1)
        return [item_check, self._guarded(LOGS, lambda: self.function_logs(key, since))]

    def smoke_upload(self) -> SmokeObject:
        """PUT ``smoke/test-<epoch>.txt`` into the bucket, as the runbook's ``aws s3 cp``."""
        now = self._clock()
        key, bucket = smoke_key(now), self.ref.output(BUCKET_NAME)
        body = f"filegate smoke test {now.isoformat(timespec='seconds')}\n".encode()
        version_id = ObjectStore(self.client("s3")).put(bucket, key, body, SMOKE_CONTENT_TYPE)
        return SmokeObject(bucket, key, version_id, len(body), now)

    def smoke_item(self, smoke: SmokeObject) -> CheckResult:
        """The smoke object's item, RECEIVED with this upload's size, type and version."""
        item = self._wait(lambda: _matching(self._ledger().get(smoke.key), smoke.version_id))
        if item is None:
            found = self._ledger().get(smoke.key)
            seen = f"item is {found.status} for version {found.version_id}" if found else "no item"
            return CheckResult(ITEM, False, f"{smoke.key}: {seen} after {self.timeout:g} s")
        problems = _item_problems(item, smoke.bucket, smoke.size)
        return CheckResult(ITEM, not problems, "; ".join(problems) or _item_detail(item))

    def ledger_item(self, key: str) -> CheckResult:
        """A given key's item, written by the function (not only declared by the upload API)."""
        item = self._ledger().get(key)
        if item is None:
            return CheckResult(ITEM, False, f"{key}: no ledger item")
        ok = item.status in _WRITTEN_STATUSES
        return CheckResult(ITEM, ok, _item_detail(item))

    def function_logs(self, key: str, since: datetime) -> CheckResult:
        """The key's invocation logged a successful outcome (waits for log delivery)."""
        reader = LogReader(self.ref, logs_client=self.client("logs"))
        start_ms = int(since.timestamp() * 1000)

        def processed() -> list[str]:
            lines = [line for _, line in InvocationFilter(key).run(reader.events(start_ms))]
            return [f"{x.level} {x.text}" for x in lines if x.key == key and _succeeded(x.outcome)]

        found = self._wait(processed)
        if not found:
            return CheckResult(LOGS, False, f"no successful processing of {key} in {reader.group}")
        return CheckResult(LOGS, True, f"{reader.group}: {found[-1]} ({key})")


def _matching(item: LedgerItem | None, version_id: str | None) -> LedgerItem | None:
    if item is None or item.status != Status.RECEIVED:
        return None
    return item if version_id is None or item.version_id == version_id else None


def _item_problems(item: LedgerItem, bucket: str, size: int) -> list[str]:
    problems = []
    if item.bucket != bucket:
        problems.append(f"s3_bucket is {item.bucket!r}, expected {bucket!r}")
    if item.size != size:
        problems.append(f"size is {item.size}, expected {size}")
    if item.content_type != SMOKE_CONTENT_TYPE:
        problems.append(f"content_type is {item.content_type!r}, expected {SMOKE_CONTENT_TYPE!r}")
    if not item.event_name.startswith("ObjectCreated:"):
        problems.append(f"event_name is {item.event_name!r}")
    return problems


def _item_detail(item: LedgerItem) -> str:
    return (
        f"{item.key}: {item.status}, {item.size} bytes, {item.content_type},"
        f" {item.event_name} at {item.event_time}"
    )


def _item_time(item: LedgerItem) -> datetime:
    text = item.event_time or item.updated_at
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC) - timedelta(days=1)


def _succeeded(outcome: str | None) -> bool:
    return outcome in _SUCCESS_OUTCOMES
