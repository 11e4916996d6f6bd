"""`filegate evidence`: the evidence set, collected from the stack for real.

One run verifies the stack (``ops.verify``: a smoke upload unless ``--key`` names an object),
saves the raw API responses the run record asks for, as the AWS CLI prints them (indented JSON,
ISO datetimes, no ResponseMetadata), copies in the test results it is given, and writes
``run-report.md`` (``ops.report``). Everything is written into a staging directory beside
``--out`` and moved into place at the end, so a run that fails leaves nothing half-written;
a file whose API call failed is left out and named in the report (and the run exits 1).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import ConfigError, FilegateError
from filegate.ledger import Ledger
from filegate.ops.evidence_files import (
    FUNCTION_FIELDS,
    TABLE_FIELDS,
    AwsCli,
    aws_json,
    item_file,
    logs_file,
    pick,
)
from filegate.ops.logs import InvocationFilter, LogReader
from filegate.ops.report import (
    Command,
    RunRecord,
    SuiteResult,
    acceptance_checklist,
    judge_tests,
    render_run_report,
)
from filegate.ops.verify import (
    DEFAULT_TIMEOUT,
    SMOKE,
    Clients,
    Progress,
    Verifier,
    VerifyReport,
)
from filegate.outputs import (
    ALERTS_TOPIC_ARN,
    BUCKET_NAME,
    DLQ_URL,
    FUNCTION_NAME,
    QUEUE_ARN,
    QUEUE_URL,
    TABLE_NAME,
)
from filegate.queues import MessageQueue
from filegate.stackref import StackRef
from filegate.storage import BucketOps

REPORT = "run-report.md"
CHECKS = "checks.json"
UNIT_TEXT, UNIT_JUNIT = "unit-test-results.txt", "unit-junit.xml"
INTEGRATION_TEXT, INTEGRATION_JUNIT = "integration-test-output.txt", "integration-junit.xml"
LOG_EXCERPT_LINES = 40
_OPTION = {
    UNIT_TEXT: "--unit-results",
    UNIT_JUNIT: "--unit-junit",
    INTEGRATION_TEXT: "--integration-results",
    INTEGRATION_JUNIT: "--integration-junit",
}


class EvidenceError(FilegateError):
    """The evidence cannot be written where asked."""


@dataclass(frozen=True)
class ResultFiles:
    """Test results to attach: pytest's console output and JUnit XML, per kind."""

    unit_text: Path | None = None
    unit_junit: Path | None = None
    integration_text: Path | None = None
    integration_junit: Path | None = None

    def given(self) -> list[tuple[str, Path]]:
        """(evidence file name, source) of every file given."""
        pairs = [
            (UNIT_TEXT, self.unit_text),
            (UNIT_JUNIT, self.unit_junit),
            (INTEGRATION_TEXT, self.integration_text),
            (INTEGRATION_JUNIT, self.integration_junit),
        ]
        return [(name, path) for name, path in pairs if path is not None]


@dataclass(frozen=True)
class EvidenceResult:
    """What one run wrote, and whether everything it checked passed."""

    out_dir: Path
    files: list[str]
    missing: list[tuple[str, str]]
    verification: VerifyReport
    tests: list[SuiteResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        tests_ok = all(run.passed for run in self.tests)
        return self.verification.passed and not self.missing and tests_ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out_dir),
            "passed": self.passed,
            "files": self.files,
            "missing": [{"file": name, "error": error} for name, error in self.missing],
            "verify": self.verification.as_dict(),
        }


class EvidenceRun:
    """Collects one evidence set into a staging directory, then moves it into ``out_dir``."""

    def __init__(
        self,
        ref: StackRef,
        out_dir: Path,
        tests: ResultFiles | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
        runner: str | None = None,
        invocation: str = "",
    ) -> None:
        self.ref = ref
        self.out_dir = out_dir
        self.tests = tests or ResultFiles()
        self.timeout = timeout
        self._progress = progress or (lambda _: None)
        self.runner = runner or _runner()
        self.invocation = invocation
        self.cli = AwsCli(ref)
        self.client = Clients(ref)
        self._commands: list[Command] = []
        self._written: list[str] = []
        self._missing: list[tuple[str, str]] = []
        self._excerpts: list[tuple[str, str, str]] = []
        self._role: str | None = None

    def run(self, key: str | None = None) -> EvidenceResult:
        _check_inputs(self.out_dir, self.tests)
        started = datetime.now(UTC)
        verification = Verifier(self.ref, self.timeout, self._progress, clients=self.client).run(
            key
        )
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=self.out_dir.parent))
        try:
            tests = self._collect_all(staging, verification, started)
            self._publish(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return EvidenceResult(
            self.out_dir, list(self._written), list(self._missing), verification, tests
        )

    def _collect_all(
        self, staging: Path, verification: VerifyReport, started: datetime
    ) -> list[SuiteResult]:
        self._progress("collecting the evidence files")
        self._stack_files(staging)
        self._function_files(staging)
        self._storage_files(staging)
        if verification.key:
            self._key_files(staging, verification.key)
        tests = self._test_files(staging)
        self._save(staging, CHECKS, json.dumps(verification.as_dict(), indent=4) + "\n")
        record = self._record(verification, tests, started)
        self._save(staging, REPORT, render_run_report(record))
        return [run for run in tests if run is not None]

    # ------------------------------------------------------------ files
    def _stack_files(self, staging: Path) -> None:
        name = self.ref.stack_name
        cfn = self.client("cloudformation")
        self._api(
            staging,
            "stack-describe.json",
            self.cli("cloudformation", "describe-stacks", "--stack-name", name),
            lambda: cfn.describe_stacks(StackName=name),
        )
        self._api(
            staging,
            "stack-events.json",
            self.cli("cloudformation", "describe-stack-events", "--stack-name", name),
            lambda: _all_events(cfn, name),
        )

    def _function_files(self, staging: Path) -> None:
        function, queue_arn = self.ref.output(FUNCTION_NAME), self.ref.output(QUEUE_ARN)
        lam = self.client("lambda")
        config = self._api(
            staging,
            "lambda-function-configuration.json",
            self.cli("lambda", "get-function-configuration", "--function-name", function),
            lambda: lam.get_function_configuration(FunctionName=function),
        )
        if config:
            self._excerpt_function(config)
        self._api(
            staging,
            "lambda-event-source-mappings.json",
            self.cli("lambda", "list-event-source-mappings", "--event-source-arn", queue_arn),
            lambda: lam.list_event_source_mappings(EventSourceArn=queue_arn),
        )

    def _storage_files(self, staging: Path) -> None:
        table, bucket = self.ref.output(TABLE_NAME), self.ref.output(BUCKET_NAME)
        ledger, s3 = Ledger(table, self.client("dynamodb")), BucketOps(self.client("s3"))
        described = self._api(
            staging,
            "dynamodb-describe-table.json",
            self.cli("dynamodb", "describe-table", "--table-name", table),
            ledger.describe,
        )
        encryption = self._api(
            staging,
            "s3-bucket-encryption.json",
            self.cli("s3api", "get-bucket-encryption", "--bucket", bucket),
            lambda: s3.encryption(bucket),
        )
        self._api(
            staging,
            "s3-bucket-notification.json",
            self.cli("s3api", "get-bucket-notification-configuration", "--bucket", bucket),
            lambda: s3.notification_configuration(bucket),
        )
        for name, output in (
            ("sqs-queue-attributes.json", QUEUE_URL),
            ("sqs-dlq-attributes.json", DLQ_URL),
        ):
            self._queue_file(staging, name, self.ref.output(output))
        self._excerpt_storage(described, encryption)

    def _queue_file(self, staging: Path, name: str, url: str) -> None:
        queue = MessageQueue(url, self.client("sqs"))
        command = self.cli(
            "sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All"
        )
        self._api(staging, name, command, lambda: {"Attributes": queue.attributes(["All"])})

    def _key_files(self, staging: Path, key: str) -> None:
        table = self.ref.output(TABLE_NAME)
        ledger = Ledger(table, self.client("dynamodb"))
        item_key = {"s3_key": {"S": key}}
        item = self._api(
            staging,
            item_file(key),
            self.cli(
                "dynamodb",
                "get-item",
                "--table-name",
                table,
                "--key",
                json.dumps(item_key),
                "--consistent-read",
            ),
            lambda: ledger.raw_item(key),
        )
        if item is not None:
            self._excerpts.append((f"DynamoDB item ({item_file(key)})", "json", aws_json(item)))
        self._log_file(staging, key, item)

    def _log_file(self, staging: Path, key: str, item: dict[str, Any] | None) -> None:
        reader = LogReader(self.ref, logs_client=self.client("logs"))
        start_ms = _start_ms(item)
        shown: list[Any] = []

        def events() -> dict[str, Any]:
            shown.extend(InvocationFilter(key).run(reader.events(start_ms)))
            return {"events": [event for event, _ in shown]}

        command = self.cli(
            "logs",
            "filter-log-events",
            "--log-group-name",
            reader.group,
            "--start-time",
            str(start_ms),
        )
        if self._api(staging, logs_file(key), command + "  # this key's invocations", events):
            lines = "\n".join(line.readable() for _, line in shown[:LOG_EXCERPT_LINES])
            self._excerpts.append((f"CloudWatch logs ({logs_file(key)})", "text", lines))

    def _test_files(self, staging: Path) -> list[SuiteResult | None]:
        contents: dict[str, tuple[str, str]] = {}
        for name, source in self.tests.given():
            text = source.read_bytes().decode("utf-8", errors="replace")
            self._save(staging, name, text)
            contents[name] = (name, text)
        runs = [
            judge_tests("Unit", contents.get(UNIT_TEXT), contents.get(UNIT_JUNIT)),
            judge_tests(
                "Integration", contents.get(INTEGRATION_TEXT), contents.get(INTEGRATION_JUNIT)
            ),
        ]
        for run in runs:
            if run is not None and run.excerpt:
                title = f"{run.kind} test results (first lines of {run.text_name})"
                self._excerpts.append((title, "text", "\n".join(run.excerpt)))
        return runs

    # ------------------------------------------------------------ plumbing
    def _api(
        self, staging: Path, name: str, command: str, call: Callable[[], Any]
    ) -> dict[str, Any] | None:
        """One API call saved as ``name``; a failure is recorded, not raised."""
        self._commands.append(Command(command, name))
        try:
            response = call()
        except (ClientError, BotoCoreError, FilegateError) as exc:
            self._missing.append((name, _aws_error(exc)))
            return None
        self._save(staging, name, aws_json(response))
        return dict(response)

    def _save(self, staging: Path, name: str, text: str) -> None:
        (staging / name).write_text(text, "utf-8")
        self._written.append(name)

    def _publish(self, staging: Path) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in self._written:
                os.replace(staging / name, self.out_dir / name)
        except OSError as exc:
            raise EvidenceError(
                f"cannot write the evidence into {self.out_dir}: {exc}; choose another --out"
            ) from exc

    # ------------------------------------------------------------ the report
    def _record(
        self, verification: VerifyReport, tests: list[SuiteResult | None], started: datetime
    ) -> RunRecord:
        unit, integration = tests
        target = self.ref.target
        if target.profile:
            profile = target.profile
        elif target.is_local:
            profile = f"none: emulator at {target.endpoint_url}"
        else:
            profile = "default credential chain"
        return RunRecord(
            generated_at=started,
            runner=self.runner,
            profile=profile,
            region=target.region,
            stack_name=self.ref.stack_name,
            resources=self._resources(),
            commands=self._smoke_command(verification) + self._commands,
            excerpts=self._excerpts,
            checklist=acceptance_checklist(verification, unit, integration),
            checks=verification.checks,
            files=[*self._written, REPORT],
            missing=self._missing,
            invocation=self.invocation,
        )

    def _resources(self) -> dict[str, str]:
        role = self._role or "unknown (the function's configuration could not be read)"
        return {
            "S3 bucket": self.ref.output(BUCKET_NAME),
            "Lambda function name": self.ref.output(FUNCTION_NAME),
            "DynamoDB table": self.ref.output(TABLE_NAME),
            "IAM role (Lambda)": role,
            "SNS topic (alerts)": self.ref.outputs.get(ALERTS_TOPIC_ARN, "NONE"),
        }

    def _smoke_command(self, verification: VerifyReport) -> list[Command]:
        smoke = verification.result(SMOKE)
        if smoke is None or not verification.key:
            return []
        target = f"s3://{self.ref.output(BUCKET_NAME)}/{verification.key}"
        command = self.cli("s3", "cp", "test.txt", target, "--content-type", "text/plain")
        return [Command(command, f"the smoke object ({'uploaded' if smoke.passed else 'failed'})")]

    def _excerpt_function(self, config: dict[str, Any]) -> None:
        self._role = str(config.get("Role", "")) or None
        relevant = pick(config, FUNCTION_FIELDS)
        self._excerpts.append(("Lambda function (relevant parts)", "json", aws_json(relevant)))

    def _excerpt_storage(
        self, described: dict[str, Any] | None, encryption: dict[str, Any] | None
    ) -> None:
        if described is not None:
            relevant = pick(described.get("Table", {}), TABLE_FIELDS)
            self._excerpts.append(("DynamoDB table (relevant parts)", "json", aws_json(relevant)))
        if encryption is not None:
            self._excerpts.append(("S3 bucket encryption", "json", aws_json(encryption)))


def collect(
    ref: StackRef,
    out_dir: Path,
    key: str | None = None,
    tests: ResultFiles | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    runner: str | None = None,
    invocation: str = "",
) -> EvidenceResult:
    """Verify the stack and write the evidence set and ``run-report.md`` into ``out_dir``."""
    run = EvidenceRun(ref, out_dir, tests, timeout, progress, runner, invocation)
    return run.run(key)


def _check_inputs(out_dir: Path, tests: ResultFiles) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file: give a directory")
    for name, path in tests.given():
        if not path.is_file():
            raise ConfigError(f"{_OPTION[name]} {path}: no such file; give the test results file")


def _all_events(cfn: Any, stack_name: str) -> dict[str, Any]:
    pages = cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name)
    return {"StackEvents": [event for page in pages for event in page["StackEvents"]]}


def _start_ms(item: dict[str, Any] | None) -> int:
    """Where to look for a key's logs: a minute before its event, or a day back."""
    event_time = ((item or {}).get("Item") or {}).get("event_time", {}).get("S")
    try:
        start = datetime.fromisoformat(str(event_time).replace("Z", "+00:00"))
    except ValueError:
        start = datetime.now(UTC) - timedelta(days=1)
    return int((start - timedelta(minutes=1)).timestamp() * 1000)


def _aws_error(exc: Exception) -> str:
    """AWS's own words for a failed call (as the AWS CLI would print them), when it answered."""
    cause = exc.__cause__
    return str(cause if isinstance(cause, ClientError | BotoCoreError) else exc)


def _runner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
