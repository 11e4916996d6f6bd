"""`filegate verify`: the runbook's "verify system healthy", each step one check.

Each check is a small function returning a ``CheckResult`` (name, passed, detail); ``verify``
runs them in the runbook's order and never stops at the first failure, so the table shows
everything that is wrong at once:

1. the stack's status is ``*_COMPLETE`` and not a rollback;
2. the function is deployed (State Active, last update successful);
3. S3 can reach it: the bucket notifies the queue of created objects, the queue policy lets
   the bucket send, and an enabled event source mapping feeds the queue to the function (in
   this architecture S3 never invokes the function itself);
4. the verdict events can leave (docs/events.md): the ledger table's stream is enabled with
   ``NEW_AND_OLD_IMAGES``; the publisher's event source mapping reads that stream, is Enabled
   (locally: the local stack's runner feeds it) and has the events dead-letter queue as its
   on-failure destination; the event bus exists with an enabled archive;
5. the function's ``AWS/Lambda`` ``Errors`` summed over the last 15 minutes is 0;
6. a smoke upload (``smoke/test-<epoch>.txt``) reaches the ledger as RECEIVED with its size,
   type and version, within ``timeout`` seconds, and the function's logs show it processed;
7. the dead-letter queue is empty, and so is the events dead-letter queue;
8. none of the stack's alarms (``ops.alarms.stack_alarms``, what `filegate alarms` lists) is
   in ALARM.

An AWS error inside a check fails that check; a stack that cannot be described at all raises
``StackError`` (the CLI's exit code 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import FilegateError, StackError, is_error
from filegate.ledger import Ledger, LedgerItem, Status
from filegate.ops.alarms import stack_alarms
from filegate.ops.logs import InvocationFilter, LogReader
from filegate.ops.wiring import (
    STREAM_VIEW,
    bucket_arn,
    events_mapping_problems,
    function_name,
    on_failure_destination,
    policy_lets_bucket_send,
    reads_stream_of,
    stream_view,
)
from filegate.outputs import (
    BUCKET_NAME,
    DLQ_URL,
    EVENT_BUS_NAME,
    EVENTS_DLQ_URL,
    EVENTS_FUNCTION_NAME,
    FUNCTION_NAME,
    QUEUE_ARN,
    QUEUE_URL,
    TABLE_NAME,
)
from filegate.queues import MessageQueue
from filegate.stackref import StackRef
from filegate.storage import BucketOps, ObjectStore

DEFAULT_TIMEOUT = 60.0
ERRORS_WINDOW = timedelta(minutes=15)
POLL_SECONDS = 0.5
SMOKE_PREFIX = "smoke/"
SMOKE_CONTENT_TYPE = "text/plain"

STACK = "stack status"
FUNCTION = "function deployed"
NOTIFICATION = "bucket notification"
QUEUE_POLICY = "queue policy"
MAPPING = "event source mapping"
LEDGER_STREAM = "ledger stream"
EVENTS_MAPPING = "events mapping"
EVENT_BUS = "event bus"
ERRORS = "errors (15 min)"
SMOKE = "smoke upload"
ITEM = "ledger item"
LOGS = "function logs"
DLQ = "dead-letter queue"
EVENTS_DLQ = "events dead-letter queue"
ALARMS = "alarms"

_WRITTEN_STATUSES = frozenset(status.value for status in Status)
_SUCCESS_OUTCOMES = frozenset({"written", "duplicate", "stale"})

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    """Every check of one run, and the key the run looked at (the smoke key, or the given one)."""

    stack_name: str
    checks: tuple[CheckResult, ...]
    key: str | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def result(self, name: str) -> CheckResult | None:
        return next((check for check in self.checks if check.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "passed": self.passed,
            "key": self.key,
            "checks": [asdict(check) for check in self.checks],
        }


@dataclass(frozen=True)
class SmokeObject:
    """The object a smoke upload wrote."""

    bucket: str
    key: str
    version_id: str | None
    size: int
    uploaded_at: datetime


class Clients:
    """One client per service for a whole run: making one costs about a third of a second."""

    def __init__(self, ref: StackRef) -> None:
        self._ref = ref
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self._ref.client(service)
        return self._made[service]


def smoke_key(now: datetime) -> str:
    """The runbook's ``smoke/test-$(date +%s).txt``."""
    return f"{SMOKE_PREFIX}test-{int(now.timestamp())}.txt"


class Verifier:
    """Runs the checks against one stack; clock and sleep are injected for tests."""

    def __init__(
        self,
        ref: StackRef,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clients: Clients | None = None,
    ) -> None:
        self.ref = ref
        self.client = clients or Clients(ref)
        self.timeout = timeout
        self._progress = progress or (lambda _: None)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._table: dict[str, Any] | None = None

    def run(self, key: str | None = None) -> VerifyReport:
        """All checks; with ``key``, that object's item and logs instead of a smoke upload."""
        self._table = None  # each run reads the ledger's table afresh
        checks = [self._step(STACK, self.stack_status)]
        for name, check in (
            (FUNCTION, self.function_deployed),
            (NOTIFICATION, self.bucket_notification),
            (QUEUE_POLICY, self.queue_policy),
            (MAPPING, self.event_source_mapping),
            (LEDGER_STREAM, self.ledger_stream),
            (EVENTS_MAPPING, self.events_mapping),
            (EVENT_BUS, self.event_bus),
            (ERRORS, self.errors_metric),
        ):
            checks.append(self._guarded(name, check))
        object_checks, key = self._object_checks(key)
        checks += object_checks
        checks.append(self._guarded(DLQ, self.dead_letter_queue))
        checks.append(self._guarded(EVENTS_DLQ, self.events_dead_letter_queue))
        checks.append(self._guarded(ALARMS, self.alarms))
        return VerifyReport(self.ref.stack_name, tuple(checks), key)

    def _step(self, name: str, check: Callable[[], CheckResult]) -> CheckResult:
        self._progress(name)
        return check()

    def _guarded(self, name: str, check: Callable[[], CheckResult]) -> CheckResult:
        try:
            return self._step(name, check)
        except (ClientError, BotoCoreError, FilegateError) as exc:
            return CheckResult(name, False, f"could not check: {exc}")

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

    # ------------------------------------------------------------ the stack
    def stack_status(self) -> CheckResult:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.ref.stack_name)[
                "Stacks"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise StackError(
                f"cannot describe stack {self.ref.stack_name}: {exc}; check --stack, --region"
                " and that the stack (or `filegate local up`) is running"
            ) from exc
        status = str(stacks[0]["StackStatus"])
        healthy = status.endswith("_COMPLETE") and "ROLLBACK" not in status
        return CheckResult(STACK, healthy, status)

    def function_deployed(self) -> CheckResult:
        name = self.ref.output(FUNCTION_NAME)
        config = self.client("lambda").get_function_configuration(FunctionName=name)
        state = config.get("State", "Active")
        update = config.get("LastUpdateStatus", "Successful")
        detail = (
            f"{name}: {state}, last update {update}, {config.get('Runtime')},"
            f" code {str(config.get('CodeSha256', ''))[:12]}"
        )
        return CheckResult(FUNCTION, state == "Active" and update == "Successful", detail)

    # ------------------------------------------------------------ S3 -> SQS -> Lambda
    def bucket_notification(self) -> CheckResult:
        bucket, queue_arn = self.ref.output(BUCKET_NAME), self.ref.output(QUEUE_ARN)
        config = BucketOps(self.client("s3")).notification_configuration(bucket)
        events = sorted(
            event
            for queue in config.get("QueueConfigurations", [])
            if queue.get("QueueArn") == queue_arn
            for event in queue.get("Events", [])
        )
        created = any(event.startswith("s3:ObjectCreated:") for event in events)
        detail = f"{bucket} -> {queue_arn.rsplit(':', 1)[-1]}: {', '.join(events) or 'none'}"
        if not created:
            detail += " (no s3:ObjectCreated events: paused? `filegate resume` restores it)"
        return CheckResult(NOTIFICATION, created, detail)

    def queue_policy(self) -> CheckResult:
        queue_arn, bucket = self.ref.output(QUEUE_ARN), self.ref.output(BUCKET_NAME)
        policy = MessageQueue(self.ref.output(QUEUE_URL), self.client("sqs")).policy()
        source = bucket_arn(bucket, queue_arn)
        allowed = policy_lets_bucket_send(policy, source)
        if allowed:
            return CheckResult(QUEUE_POLICY, True, f"s3.amazonaws.com may send from {source}")
        detail = f"no statement lets s3.amazonaws.com send messages from {source}"
        return CheckResult(QUEUE_POLICY, False, detail)

    def event_source_mapping(self) -> CheckResult:
        function, queue_arn = self.ref.output(FUNCTION_NAME), self.ref.output(QUEUE_ARN)
        mappings = self.client("lambda").list_event_source_mappings(EventSourceArn=queue_arn)
        ours = [
            m
            for m in mappings.get("EventSourceMappings", [])
            if function_name(m.get("FunctionArn", "")) == function
        ]
        if not ours:
            return CheckResult(MAPPING, False, f"no mapping from the queue to {function}")
        mapping = ours[0]
        state = str(mapping.get("State"))
        target = str(mapping.get("FunctionArn", "")).split(":function:", 1)[-1]
        if state == "Enabled":
            return CheckResult(MAPPING, True, f"queue -> {target}: Enabled")
        if state == "Disabled" and self.ref.local is not None and self.ref.local.runs_mapping():
            return CheckResult(
                MAPPING,
                True,
                f"queue -> {target}: the local stack's mapping runner feeds the function"
                " (the emulator's own mapping is disabled on purpose)",
            )
        return CheckResult(MAPPING, False, f"queue -> {target}: {state}")

    # ------------------------------------------------------------ ledger -> events
    def ledger_stream(self) -> CheckResult:
        table = self._ledger_table()
        name, view = table["TableName"], stream_view(table)
        if view == STREAM_VIEW:
            return CheckResult(LEDGER_STREAM, True, f"{name}: stream enabled, {view}")
        found = f"its stream is {view}" if view else "its stream is disabled"
        return CheckResult(
            LEDGER_STREAM,
            False,
            f"{name}: {found}, so no verdict event is published; enable it as the template"
            f" declares (aws dynamodb update-table --table-name {name} --stream-specification"
            f" StreamEnabled=true,StreamViewType={STREAM_VIEW}), then point the events mapping"
            " at the new stream",
        )

    def events_mapping(self) -> CheckResult:
        function = self.ref.output(EVENTS_FUNCTION_NAME)
        table = self._ledger_table()
        latest = table.get("LatestStreamArn")
        ours = sorted(  # the one on the current stream first, if there are several
            (m for m in self._mappings_of(function) if reads_stream_of(m, str(table["TableArn"]))),
            key=lambda m: m.get("EventSourceArn") != latest,
        )
        if not ours:
            return CheckResult(
                EVENTS_MAPPING,
                False,
                f"no mapping from the stream of {table['TableName']} to {function}: no verdict"
                " event is published; recreate it as the template's PublisherEventSourceMapping"
                f" declares it (aws lambda create-event-source-mapping --function-name {function}"
                f" --event-source-arn {latest} --starting-position TRIM_HORIZON ...): a deploy"
                " of the same template does not restore what was deleted outside CloudFormation",
            )
        problems = self._events_mapping_problems(ours[0], table)
        detail = f"stream -> {function}: " + ("; ".join(problems) or "Enabled")
        if not problems:
            destination = on_failure_destination(ours[0]).rsplit(":", 1)[-1]
            detail += f", on failure -> {destination}"
        return CheckResult(EVENTS_MAPPING, not problems, detail)

    def _mappings_of(self, function: str) -> list[dict[str, Any]]:
        pages = self.client("lambda").get_paginator("list_event_source_mappings")
        return [
            m
            for page in pages.paginate(FunctionName=function)
            for m in page.get("EventSourceMappings", [])
            if function_name(m.get("FunctionArn", "")) == function
        ]

    def _events_mapping_problems(self, mapping: dict[str, Any], table: dict[str, Any]) -> list[str]:
        runner = self.ref.local is not None and self.ref.local.runs_mapping()
        dlq_arn = MessageQueue(self.ref.output(EVENTS_DLQ_URL), self.client("sqs")).arn()
        return events_mapping_problems(
            mapping, str(table.get("LatestStreamArn", "")), dlq_arn, local_runner=runner
        )

    def event_bus(self) -> CheckResult:
        name, events = self.ref.output(EVENT_BUS_NAME), self.client("events")
        try:
            bus_arn = str(events.describe_event_bus(Name=name)["Arn"])
        except ClientError as exc:
            if not is_error(exc, "ResourceNotFoundException"):
                raise
            return CheckResult(
                EVENT_BUS,
                False,
                f"no event bus {name}: the publisher cannot publish; restore the stack's"
                " EventBus (see `aws cloudformation detect-stack-drift`)",
            )
        archives = events.list_archives(EventSourceArn=bus_arn).get("Archives", [])
        enabled = [a for a in archives if a.get("State") == "ENABLED"]
        if not enabled:
            found = ", ".join(f"{a['ArchiveName']} {a.get('State')}" for a in archives)
            return CheckResult(
                EVENT_BUS,
                False,
                f"{name}: no enabled archive ({found or 'none'}), so its events cannot be"
                f" replayed; create one (aws events create-archive --archive-name {name}"
                f" --event-source-arn {bus_arn} --retention-days 90)",
            )
        archive = enabled[0]
        return CheckResult(
            EVENT_BUS,
            True,
            f"{name}, archived in {archive['ArchiveName']}"
            f" ({archive.get('RetentionDays') or 'indefinite'} days)",
        )

    # ------------------------------------------------------------ health signals
    def errors_metric(self) -> CheckResult:
        name = self.ref.output(FUNCTION_NAME)
        # The next whole second: the emulator drops fractions of a second from EndTime, which
        # would leave out a datapoint published earlier in the current second.
        end = (self._clock() + timedelta(seconds=1)).replace(microsecond=0)
        datapoints = self.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=end - ERRORS_WINDOW,
            EndTime=end,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        errors = sum(float(point.get("Sum", 0)) for point in datapoints)
        detail = f"{errors:g} errors in {len(datapoints)} datapoints (AWS/Lambda Errors, Sum)"
        return CheckResult(ERRORS, errors == 0, detail)

    def dead_letter_queue(self) -> CheckResult:
        dead_letters = MessageQueue(self.ref.output(DLQ_URL), self.client("sqs"))
        visible, hidden = dead_letters.counts()
        detail = f"{visible} messages ({hidden} in flight)"
        if visible or hidden:
            detail += ": inspect them with `filegate dlq list`"
        return CheckResult(DLQ, visible == 0 and hidden == 0, detail)

    def events_dead_letter_queue(self) -> CheckResult:
        dead_letters = MessageQueue(self.ref.output(EVENTS_DLQ_URL), self.client("sqs"))
        visible, hidden = dead_letters.counts()
        detail = f"{visible} messages ({hidden} in flight)"
        if visible or hidden:
            detail += (
                ": ledger changes were not published; `filegate events redrive` publishes them"
                " again (docs/runbook.md, section 9)"
            )
        return CheckResult(EVENTS_DLQ, visible == 0 and hidden == 0, detail)

    def alarms(self) -> CheckResult:
        found = stack_alarms(self.ref, self.client)
        if not found:
            return CheckResult(ALARMS, False, "none of the stack's alarms found")
        firing = sorted(a["AlarmName"] for a in found if a.get("StateValue") == "ALARM")
        states = sorted(f"{a['AlarmName']}={a.get('StateValue')}" for a in found)
        if firing:
            return CheckResult(ALARMS, False, f"in ALARM: {', '.join(firing)}")
        return CheckResult(ALARMS, True, f"{len(found)} alarms, none in ALARM: {', '.join(states)}")

    # ------------------------------------------------------------ one object
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

    def _ledger(self) -> Ledger:
        return Ledger(self.ref.output(TABLE_NAME), self.client("dynamodb"))

    def _ledger_table(self) -> dict[str, Any]:
        """The ledger's DescribeTable ``Table``, read once per run (``run`` forgets it): the
        stream and the publisher's mapping are both checked against it."""
        if self._table is None:
            self._table = self._ledger().describe()["Table"]
        return self._table

    def _wait(self, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            value = probe()
            if value or time.monotonic() >= deadline:
                return value
            self._sleep(POLL_SECONDS)


def verify(
    ref: StackRef,
    key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> VerifyReport:
    """Run every check against the stack (a smoke upload unless ``key`` is given)."""
    return Verifier(ref, timeout=timeout, progress=progress).run(key)


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
