"""`filegate evidence` against a stack built in moto: the whole set, the run record's ticks,
and nothing half-written when it cannot finish."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ops_builders import BUCKET, KEY, REQUEST_ID, build_stack, client, record_processed

from filegate.errors import ConfigError, StackError
from filegate.ops.evidence import ResultFiles, collect, item_file, logs_file
from filegate.stackref import StackRef

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

API_FILES = {
    "stack-describe.json",
    "stack-events.json",
    "lambda-function-configuration.json",
    "lambda-event-source-mappings.json",
    "dynamodb-describe-table.json",
    "s3-bucket-encryption.json",
    "s3-bucket-notification.json",
    "sqs-queue-attributes.json",
    "sqs-dlq-attributes.json",
}
PASSING_JUNIT = (
    '<testsuites><testsuite name="pytest" tests="3" failures="0" errors="0" skipped="0">'
    '<testcase classname="t" name="a"/></testsuite></testsuites>'
)


@pytest.fixture
def ref(aws: None) -> StackRef:
    stack = build_stack()
    record_processed()
    return stack


def ticks(report: str) -> list[str]:
    return re.findall(r"^- \[([x ])\] ", report, re.MULTILINE)


def test_the_whole_set_is_written_for_a_key(ref: StackRef, tmp_path: Path) -> None:
    junit = tmp_path / "unit.xml"
    junit.write_text(PASSING_JUNIT)
    out = tmp_path / "artifacts"
    result = collect(ref, out, KEY, ResultFiles(unit_junit=junit), timeout=1, runner="ops")
    assert result.passed
    names = {p.name for p in out.iterdir()}
    assert names == API_FILES | {
        item_file(KEY),
        logs_file(KEY),
        "unit-junit.xml",
        "checks.json",
        "run-report.md",
    }
    item = json.loads((out / item_file(KEY)).read_text())["Item"]
    assert item["s3_key"] == {"S": KEY}
    assert item["processing_status"] == {"S": "RECEIVED"}
    assert {"size", "s3_bucket", "content_type"} <= item.keys()
    events = json.loads((out / logs_file(KEY)).read_text())["events"]
    assert events[0]["message"].startswith(f"START RequestId: {REQUEST_ID}")
    assert events[-1]["message"].startswith(f"REPORT RequestId: {REQUEST_ID}")
    described = json.loads((out / "stack-describe.json").read_text())
    assert described["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert "ResponseMetadata" not in described
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "unit.xml"]  # no staging


def test_the_record_ticks_what_passed_and_says_why_the_rest_is_not(
    ref: StackRef, tmp_path: Path
) -> None:
    junit = tmp_path / "unit.xml"
    junit.write_text(PASSING_JUNIT)
    result = collect(ref, tmp_path / "ev", KEY, ResultFiles(unit_junit=junit), timeout=1)
    report = (result.out_dir / "run-report.md").read_text()
    assert ticks(report) == ["x", "x", "x", "x", "x", " "]
    assert "not ticked: no integration test results given" in report
    assert f"- S3 bucket: {BUCKET}" in report
    assert "3 tests: 3 passed" in report
    assert re.search(r"<[A-Z_]+>", report) is None


def test_failing_tests_are_copied_in_and_untick_their_item(ref: StackRef, tmp_path: Path) -> None:
    text = tmp_path / "integration.txt"
    text.write_text("F..\n=== 1 failed, 2 passed in 0.5s ===\n")
    result = collect(ref, tmp_path / "ev", KEY, ResultFiles(integration_text=text), timeout=1)
    assert not result.passed
    assert (result.out_dir / "integration-test-output.txt").read_text() == text.read_text()
    assert ticks((result.out_dir / "run-report.md").read_text())[5] == " "


def test_a_file_whose_call_fails_is_named_and_the_rest_is_written(
    ref: StackRef, tmp_path: Path
) -> None:
    client("s3").delete_bucket_encryption(Bucket=BUCKET)
    result = collect(ref, tmp_path / "ev", KEY, timeout=1)
    assert not result.passed
    assert [name for name, _ in result.missing] == ["s3-bucket-encryption.json"]
    assert not (result.out_dir / "s3-bucket-encryption.json").exists()
    assert (result.out_dir / "s3-bucket-notification.json").exists()
    report = (result.out_dir / "run-report.md").read_text()
    assert "`s3-bucket-encryption.json`: An error occurred" in report


def test_test_results_that_do_not_exist_stop_it_before_anything_is_done(
    ref: StackRef, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"--unit-junit .*missing\.xml: no such file"):
        collect(ref, tmp_path / "ev", KEY, ResultFiles(unit_junit=tmp_path / "missing.xml"))
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_stack_writes_nothing(ref: StackRef, tmp_path: Path) -> None:
    from dataclasses import replace

    with pytest.raises(StackError):
        collect(replace(ref, stack_name="no-such-stack"), tmp_path / "ev", KEY, timeout=1)
    assert list(tmp_path.iterdir()) == []


def test_files_already_in_the_directory_are_kept(ref: StackRef, tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    out.mkdir()
    (out / "unit-test-results.txt").write_text("..\n2 passed in 0.1s\n")
    (out / "notes.txt").write_text("mine")
    result = collect(ref, out, KEY, ResultFiles(unit_text=out / "unit-test-results.txt"), timeout=1)
    assert result.passed
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "unit-test-results.txt").read_text() == "..\n2 passed in 0.1s\n"
