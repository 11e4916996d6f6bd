"""The run record (``run-report.md``) and the test results it judges; pure, no AWS.

The record has its fixed sections (Run metadata, Resources created / used, Commands
executed, Evidence / outputs, Acceptance checklist) filled with values read in the run. Each
checklist item is ticked only when the checks behind it ran and passed in this run; an
unticked item says why. Test results are judged from JUnit XML (counts of tests, failures,
errors) or, without one, from pytest's summary line ("12 passed, 1 skipped in 0.3s").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from xml.etree import ElementTree

from filegate.ops.verify import (
    FUNCTION,
    ITEM,
    LOGS,
    MAPPING,
    NOTIFICATION,
    QUEUE_POLICY,
    SMOKE,
    STACK,
    CheckResult,
    VerifyReport,
)

EXCERPT_LINES = 20
_SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")
_WIRING_NOTE = (
    "In this architecture S3 never invokes the function: it notifies the SQS queue and the"
    " event source mapping invokes the function. So this item is the function's"
    " configuration, the bucket notification to the queue, the queue policy allowing the"
    " bucket, and the enabled mapping."
)


@dataclass(frozen=True)
class SuiteCounts:
    """What a test run reported."""

    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0 and self.errors == 0

    def summary(self) -> str:
        return (
            f"{self.tests} tests: {self.tests - self.failures - self.errors - self.skipped}"
            f" passed, {self.failures} failed, {self.errors} errors, {self.skipped} skipped"
        )


def parse_junit(text: str) -> SuiteCounts:
    """Counts summed over every ``<testsuite>`` (a root ``<testsuites>`` or one suite)."""
    try:
        # The file is the user's own test report. No external entities are fetched, and the
        # expat bundled with CPython (>= 2.4.1) refuses entity-expansion bombs.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise ValueError(f"not JUnit XML: {exc}") from exc
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    if not suites:
        raise ValueError("no <testsuite> element")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for name in total:
            try:
                total[name] += int(suite.get(name, "0") or 0)
            except ValueError as exc:
                raise ValueError(f"<testsuite {name}={suite.get(name)!r}> is not a number") from exc
    return SuiteCounts(**total)


def parse_pytest_summary(text: str) -> SuiteCounts | None:
    """Counts from pytest's last summary line, or None when there is none."""
    for line in reversed(text.splitlines()):
        found = {word: int(number) for number, word in _SUMMARY_COUNT.findall(line)}
        if found and (" in " in line or line.strip().startswith("=")):
            passed, failed = found.get("passed", 0), found.get("failed", 0)
            errors = found.get("errors", found.get("error", 0))
            skipped = found.get("skipped", 0) + found.get("xfailed", 0)
            tests = passed + failed + errors + skipped + found.get("xpassed", 0)
            return SuiteCounts(tests, failed, errors, skipped)
    return None


@dataclass(frozen=True)
class SuiteResult:
    """One kind of given test results (unit or integration), as copied into the evidence."""

    kind: str
    text_name: str | None = None
    junit_name: str | None = None
    counts: SuiteCounts | None = None
    problem: str | None = None
    excerpt: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.problem is None and self.counts is not None and self.counts.passed


def judge_tests(
    kind: str, text: tuple[str, str] | None, junit: tuple[str, str] | None
) -> SuiteResult | None:
    """A SuiteResult from (file name, content) pairs; JUnit XML decides when given."""
    if text is None and junit is None:
        return None
    excerpt = tuple(text[1].splitlines()[:EXCERPT_LINES]) if text else ()
    text_name, junit_name = (text[0] if text else None), (junit[0] if junit else None)
    run = SuiteResult(kind, text_name, junit_name, excerpt=excerpt)
    try:
        counts = parse_junit(junit[1]) if junit else parse_pytest_summary(text[1] if text else "")
    except ValueError as exc:
        return replace(run, problem=f"{junit_name}: {exc}")
    if counts is None:
        return replace(run, problem=f"{text_name} has no pytest summary line (give the JUnit XML)")
    return replace(run, counts=counts)


@dataclass(frozen=True)
class ChecklistItem:
    text: str
    ticked: bool
    why: str
    note: str = ""

    def markdown(self) -> str:
        mark = "x" if self.ticked else " "
        reason = self.why if self.ticked else f"not ticked: {self.why}"
        line = f"- [{mark}] {self.text} — {reason}"
        return f"{line}\n  - {self.note}" if self.note else line


def acceptance_checklist(
    verification: VerifyReport, unit: SuiteResult | None, integration: SuiteResult | None
) -> list[ChecklistItem]:
    """The checklist's six items, each ticked only by checks that ran and passed in this run."""
    stack = verification.result(STACK)
    status = stack.detail if stack and stack.passed else "CREATE_COMPLETE"
    return [
        _from_checks(f"Stack deployed successfully ({status})", verification, [STACK]),
        _from_checks(
            "Lambda code deployed and permission to be invoked by S3 present",
            verification,
            [FUNCTION, NOTIFICATION, QUEUE_POLICY, MAPPING],
            note=_WIRING_NOTE,
        ),
        _from_checks(
            "S3 object upload triggers Lambda and Lambda writes to DynamoDB",
            verification,
            [SMOKE, ITEM] if verification.result(SMOKE) else [ITEM],
        ),
        _from_checks("CloudWatch logs show successful processing message", verification, [LOGS]),
        _from_tests("Unit tests passing", unit, "unit-test-results.txt", "--unit-results"),
        _from_tests(
            "Integration test passing",
            integration,
            "integration-test-output.txt",
            "--integration-results",
        ),
    ]


def _from_checks(
    text: str, verification: VerifyReport, names: Sequence[str], note: str = ""
) -> ChecklistItem:
    results = [verification.result(name) for name in names]
    missing = [name for name, result in zip(names, results, strict=True) if result is None]
    if missing:
        return ChecklistItem(text, False, f"{', '.join(missing)} did not run in this run", note)
    ran = [result for result in results if result is not None]
    failed = [r for r in ran if not r.passed]
    if failed:
        why = "; ".join(f"{r.name} failed: {r.detail}" for r in failed)
        return ChecklistItem(text, False, why, note)
    why = "; ".join(f"{r.name}: {r.detail}" for r in ran)
    return ChecklistItem(text, True, why, note)


def _from_tests(text: str, run: SuiteResult | None, attach: str, option: str) -> ChecklistItem:
    title = f"{text} (attach `{attach}`)"
    if run is None:
        return ChecklistItem(
            title, False, f"no {text.split(maxsplit=1)[0].lower()} test results given ({option})"
        )
    if run.problem is not None:
        return ChecklistItem(title, False, run.problem)
    assert run.counts is not None
    files = ", ".join(f"`{n}`" for n in (run.text_name, run.junit_name) if n)
    return ChecklistItem(title, run.passed, f"{run.counts.summary()} ({files})")


@dataclass(frozen=True)
class Command:
    """One AWS call of the run, as the AWS CLI command that makes it, and where its output is."""

    command: str
    output: str


@dataclass(frozen=True)
class RunRecord:
    """Everything ``run-report.md`` shows, read in one run."""

    generated_at: datetime
    runner: str
    profile: str
    region: str
    stack_name: str
    resources: dict[str, str]
    commands: list[Command]
    excerpts: list[tuple[str, str, str]]
    checklist: list[ChecklistItem]
    checks: tuple[CheckResult, ...]
    files: list[str]
    missing: list[tuple[str, str]] = field(default_factory=list)
    invocation: str = ""


def render_run_report(record: RunRecord) -> str:
    parts = [
        f"# Run record: filegate stack {record.stack_name}",
        "",
        f"Written by `{record.invocation or 'filegate evidence'}` at"
        f" {record.generated_at.isoformat(timespec='seconds')}. Every value below was read"
        " from the stack in this run; a checklist item is ticked only when the checks behind"
        " it ran and passed in this run.",
        *_metadata(record),
        *_resources(record),
        *_commands(record),
        *_evidence(record),
        "",
        "## Acceptance checklist",
        *(item.markdown() for item in record.checklist),
        *_checks(record.checks),
    ]
    return "\n".join(parts) + "\n"


def _metadata(record: RunRecord) -> list[str]:
    return [
        "",
        "## Run metadata",
        f"- Run date: {record.generated_at.date().isoformat()}",
        f"- Runner: {record.runner}",
        f"- AWS profile: {record.profile}",
        f"- AWS region: {record.region}",
        f"- Stack name (CF): {record.stack_name}",
    ]


def _resources(record: RunRecord) -> list[str]:
    return [
        "",
        "## Resources created / used",
        *(f"- {k}: {v}" for k, v in record.resources.items()),
    ]


def _commands(record: RunRecord) -> list[str]:
    lines = ["", "## Commands executed", ""]
    lines += [f"{i}. `{c.command}` → `{c.output}`" for i, c in enumerate(record.commands, 1)]
    return lines


def _evidence(record: RunRecord) -> list[str]:
    lines = ["", "## Evidence / outputs", ""]
    lines += [f"- `{name}`" for name in record.files]
    if record.missing:
        lines += ["", "Files that could not be collected:"]
        lines += [f"- `{name}`: {error}" for name, error in record.missing]
    for title, language, body in record.excerpts:
        lines += ["", f"### {title}", "", f"```{language}", body.rstrip("\n"), "```"]
    return lines


def _checks(checks: Sequence[CheckResult]) -> list[str]:
    lines = ["", "## Checks run", "", "| check | result | detail |", "|---|---|---|"]
    for check in checks:
        detail = check.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {check.name} | {'PASS' if check.passed else 'FAIL'} | {detail} |")
    return lines
