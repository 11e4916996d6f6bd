"""Pure parts of `filegate evidence`: test results, the checklist, run-report.md, file names."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from filegate.aws import Target
from filegate.ops import verify as v
from filegate.ops.evidence_files import AwsCli, aws_json, item_file, logs_file
from filegate.ops.report import (
    ChecklistItem,
    Command,
    RunRecord,
    acceptance_checklist,
    judge_tests,
    parse_junit,
    parse_pytest_summary,
    render_run_report,
)
from filegate.ops.verify import CheckResult, VerifyReport
from filegate.stackref import StackRef

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_ ]*(?: or [A-Za-z_ ]+)?>")
PYTEST_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1" time="0.256">
<testcase classname="tests.test_lambda_unit" name="test_handler_writes_ddb" time="0.002"/>
</testsuite>
</testsuites>"""

ALL_CHECKS = (
    v.STACK,
    v.FUNCTION,
    v.NOTIFICATION,
    v.QUEUE_POLICY,
    v.MAPPING,
    v.ERRORS,
    v.SMOKE,
    v.ITEM,
    v.LOGS,
    v.DLQ,
    v.ALARMS,
)


def report(failed: tuple[str, ...] = (), left_out: tuple[str, ...] = ()) -> VerifyReport:
    checks = tuple(
        CheckResult(
            name, name not in failed, "CREATE_COMPLETE" if name == v.STACK else f"{name} ok"
        )
        for name in ALL_CHECKS
        if name not in left_out
    )
    return VerifyReport("s3-lambda-dynamo-stack", checks, "smoke/test-1.txt")


# ---------------------------------------------------------------- test results
def test_the_run_records_junit_xml_is_one_passing_test() -> None:
    counts = parse_junit(PYTEST_JUNIT)
    assert (counts.tests, counts.failures, counts.errors, counts.passed) == (1, 0, 0, True)


def test_junit_counts_are_summed_over_suites_and_a_failure_fails() -> None:
    xml = (
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1"/>'
        '<testsuite tests="2" failures="0" errors="1"/></testsuites>'
    )
    counts = parse_junit(xml)
    assert (counts.tests, counts.failures, counts.errors, counts.skipped) == (5, 1, 1, 1)
    assert not counts.passed


def test_a_lone_testsuite_root_is_read_and_zero_tests_is_not_passing() -> None:
    assert not parse_junit('<testsuite tests="0" failures="0" errors="0"/>').passed


@pytest.mark.parametrize("xml", ["not xml", "<testsuites/>", '<testsuite tests="many"/>'])
def test_bad_junit_is_an_error(xml: str) -> None:
    with pytest.raises(ValueError):
        parse_junit(xml)


@pytest.mark.parametrize(
    ("text", "tests", "failed", "errors"),
    [
        ("..\n2 passed in 0.01s\n", 2, 0, 0),
        ("F.\n=== 1 failed, 3 passed, 1 skipped in 1.20s ===\n", 5, 1, 0),
        ("E\n== 1 error in 0.1s ==\n", 1, 0, 1),
        ("== 2 passed, 1 warning in 0.1s ==", 2, 0, 0),
    ],
)
def test_pytest_summary_lines(text: str, tests: int, failed: int, errors: int) -> None:
    counts = parse_pytest_summary(text)
    assert counts is not None
    assert (counts.tests, counts.failures, counts.errors) == (tests, failed, errors)


def test_text_without_a_summary_line_cannot_be_judged() -> None:
    assert parse_pytest_summary("collected 3 items\nsomething crashed\n") is None
    run = judge_tests("Unit", ("unit-test-results.txt", "no summary"), None)
    assert run is not None
    assert not run.passed
    assert "no pytest summary" in str(run.problem)


def test_junit_decides_over_text_when_both_are_given() -> None:
    run = judge_tests("Unit", ("u.txt", "5 passed in 1s"), ("u.xml", PYTEST_JUNIT))
    assert run is not None
    assert run.counts is not None
    assert run.counts.tests == 1
    assert run.passed
    assert run.excerpt == ("5 passed in 1s",)


def test_nothing_given_is_no_run() -> None:
    assert judge_tests("Unit", None, None) is None


# ---------------------------------------------------------------- the checklist
def test_every_item_is_ticked_when_every_check_and_the_tests_passed() -> None:
    unit = judge_tests("Unit", None, ("unit-junit.xml", PYTEST_JUNIT))
    integration = judge_tests(
        "Integration", ("integration-test-output.txt", "1 passed in 2s"), None
    )
    items = acceptance_checklist(report(), unit, integration)
    assert len(items) == 6
    assert all(item.ticked for item in items)
    assert items[0].text == "Stack deployed successfully (CREATE_COMPLETE)"


def test_missing_test_results_leave_their_items_unticked_with_the_reason() -> None:
    items = acceptance_checklist(report(), None, None)
    assert [i.ticked for i in items] == [True, True, True, True, False, False]
    assert "no unit test results given" in items[4].why
    assert "no integration test results given" in items[5].why


def test_a_failed_check_unticks_its_item_and_says_which() -> None:
    items = acceptance_checklist(report(failed=(v.QUEUE_POLICY,)), None, None)
    assert not items[1].ticked
    assert "queue policy failed" in items[1].why
    assert items[0].ticked
    assert items[2].ticked


def test_a_check_that_did_not_run_does_not_tick() -> None:
    items = acceptance_checklist(report(left_out=(v.LOGS,)), None, None)
    assert not items[3].ticked
    assert "did not run" in items[3].why


def test_failing_tests_do_not_tick() -> None:
    unit = judge_tests("Unit", ("u.txt", "== 1 failed, 1 passed in 1s =="), None)
    item = acceptance_checklist(report(), unit, None)[4]
    assert not item.ticked
    assert "1 failed" in item.why


def test_a_rolled_back_stack_is_named_in_its_item() -> None:
    checks = (CheckResult(v.STACK, False, "UPDATE_ROLLBACK_COMPLETE"),)
    item = acceptance_checklist(VerifyReport("s", checks), None, None)[0]
    assert not item.ticked
    assert "UPDATE_ROLLBACK_COMPLETE" in item.why


def test_a_checklist_item_renders_as_a_markdown_task() -> None:
    assert ChecklistItem("A", True, "why").markdown() == "- [x] A — why"
    assert ChecklistItem("B", False, "no").markdown() == "- [ ] B — not ticked: no"


# ---------------------------------------------------------------- run-report.md
def record(checklist: list[ChecklistItem]) -> RunRecord:
    return RunRecord(
        generated_at=datetime(2025, 9, 28, 14, 31, tzinfo=UTC),
        runner="ops",
        profile="admin01",
        region="eu-central-1",
        stack_name="s3-lambda-dynamo-stack",
        resources={
            "S3 bucket": "b",
            "Lambda function name": "f",
            "DynamoDB table": "t",
            "IAM role (Lambda)": "r",
            "SNS topic (alerts)": "NONE",
        },
        commands=[
            Command("aws cloudformation describe-stacks --stack-name s", "stack-describe.json")
        ],
        excerpts=[("DynamoDB item", "json", '{"Item": {}}\n')],
        checklist=checklist,
        checks=report().checks,
        files=["stack-describe.json", "run-report.md"],
        missing=[("s3-bucket-encryption.json", "AccessDenied")],
    )


def test_the_report_has_the_seeds_sections_filled_and_no_placeholder() -> None:
    text = render_run_report(record(acceptance_checklist(report(), None, None)))
    for heading in (
        "## Run metadata",
        "## Resources created / used",
        "## Commands executed",
        "## Evidence / outputs",
        "## Acceptance checklist",
        "## Checks run",
    ):
        assert heading in text
    assert "- Run date: 2025-09-28" in text
    assert "- AWS profile: admin01" in text
    assert "- Stack name (CF): s3-lambda-dynamo-stack" in text
    assert PLACEHOLDER.search(text) is None
    assert len(re.findall(r"^- \[[x ]\] ", text, re.MULTILINE)) == 6
    assert "`s3-bucket-encryption.json`: AccessDenied" in text


def test_a_pipe_in_a_detail_does_not_break_the_checks_table() -> None:
    rec = record([])
    rec = RunRecord(**{**rec.__dict__, "checks": (CheckResult("x", False, "a | b"),)})
    assert "| x | FAIL | a \\| b |" in render_run_report(rec)


# ---------------------------------------------------------------- evidence file names
def test_keys_become_safe_file_names() -> None:
    assert item_file("smoke/test-1759068937.txt") == "dynamodb_item_smoke_test-1759068937.txt.json"
    assert logs_file("p1/u 1/ä?.csv") == "lambda_logs_p1_u_1___.csv.json"


def test_api_json_is_printed_as_the_aws_cli_prints_it() -> None:
    response = {
        "ResponseMetadata": {"RequestId": "x"},
        "Stacks": [{"CreationTime": datetime(2025, 9, 28, tzinfo=UTC)}],
    }
    assert json.loads(aws_json(response)) == {
        "Stacks": [{"CreationTime": "2025-09-28T00:00:00+00:00"}]
    }


def test_cli_equivalents_name_the_target_and_quote_arguments() -> None:
    local = StackRef(Target("eu-central-1", "http://127.0.0.1:4566"), "s", {})
    assert AwsCli(local)("dynamodb", "get-item", "--key", '{"s3_key": {"S": "a b"}}') == (
        'aws dynamodb get-item --key \'{"s3_key": {"S": "a b"}}\' --region eu-central-1'
        " --endpoint-url http://127.0.0.1:4566"
    )
    aws = StackRef(Target("eu-west-1", profile="admin01"), "s", {})
    assert AwsCli(aws)("s3api", "get-bucket-encryption", "--bucket", "b").endswith(
        "--region eu-west-1 --profile admin01"
    )
