"""`filegate verify`, `logs` and `evidence` against a real local stack, as an operator runs them.

The module starts its own stack: verify needs a quiet one (no errors in the last 15 minutes,
an empty dead-letter queue), which the shared stack of the other e2e tests is not.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BIN, Stack, cli_env, filegate, free_port, own_stack, wait_for

pytestmark = pytest.mark.e2e

CHECKS = [
    "stack status",
    "function deployed",
    "bucket notification",
    "queue policy",
    "event source mapping",
    "ledger stream",
    "events mapping",
    "event bus",
    "errors (15 min)",
    "smoke upload",
    "ledger item",
    "function logs",
    "dead-letter queue",
    "events dead-letter queue",
    "alarms",
]
EVIDENCE_FILES = {
    "stack-describe.json",
    "stack-events.json",
    "lambda-function-configuration.json",
    "lambda-event-source-mappings.json",
    "dynamodb-describe-table.json",
    "s3-bucket-encryption.json",
    "s3-bucket-notification.json",
    "sqs-queue-attributes.json",
    "sqs-dlq-attributes.json",
    "checks.json",
    "run-report.md",
}
TEST_FILES = {
    "unit-test-results.txt",
    "unit-junit.xml",
    "integration-test-output.txt",
    "integration-junit.xml",
}


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-ops-state")) as started:
        yield started


def run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return filegate(stack.state_dir, *args)


def put_and_wait(stack: Stack, key: str) -> dict[str, Any]:
    stack.s3.put_object(
        Bucket=stack.bucket, Key=key, Body=b"partner data\n", ContentType="text/csv"
    )
    return dict(wait_for(lambda: stack.item(key), timeout=60))


def test_verify_passes_on_a_healthy_stack(ops_stack: Stack) -> None:
    result = run(ops_stack, "verify", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert all(c["passed"] for c in report["checks"]), report["checks"]
    assert re.fullmatch(r"smoke/test-\d+\.txt", report["key"])
    item = ops_stack.item(report["key"])
    assert item is not None
    assert item["processing_status"] == {"S": "RECEIVED"}


def test_verify_prints_a_pass_fail_table(ops_stack: Stack) -> None:
    result = run(ops_stack, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "│" in line and "PASS" in line]
    assert len(rows) == len(CHECKS)
    assert "FAIL" not in result.stdout


def test_logs_by_key_show_that_keys_invocation_only(ops_stack: Stack) -> None:
    put_and_wait(ops_stack, "partner-a/first.csv")
    put_and_wait(ops_stack, "partner-a/second.csv")
    wait_for(lambda: "partner-a/second.csv" in "".join(ops_stack.log_messages()), timeout=30)
    result = run(ops_stack, "logs", "--key", "partner-a/first.csv", "--since", "15m")
    assert result.returncode == 0, result.stderr
    assert "START RequestId:" in result.stdout
    assert "REPORT RequestId:" in result.stdout
    assert "key=partner-a/first.csv" in result.stdout
    assert "partner-a/second.csv" not in result.stdout
    as_json = run(ops_stack, "logs", "--key", "partner-a/first.csv", "--output", "json")
    events = json.loads(as_json.stdout)
    keyed = [json.loads(e["message"]) for e in events if '"s3_key"' in e["message"]]
    assert {document["s3_key"] for document in keyed} == {"partner-a/first.csv"}


def test_logs_follow_prints_new_events_and_stops_cleanly_on_ctrl_c(ops_stack: Stack) -> None:
    follower = subprocess.Popen(
        [str(BIN / "filegate"), "logs", "--follow", "--since", "1m", "--key", "partner-b/live.csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(ops_stack.state_dir),
    )
    try:
        put_and_wait(ops_stack, "partner-b/live.csv")
        assert follower.stdout is not None
        line = follower.stdout.readline()  # blocks until the follower prints the invocation
        assert "START RequestId:" in line
    finally:
        follower.send_signal(signal.SIGINT)
        _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 0, stderr
    assert "Traceback" not in stderr


def tiny_test_run(directory: Path, name: str) -> tuple[Path, Path]:
    """Run a one-test pytest suite: its console output and JUnit XML, as CI would save them."""
    test_file = directory / f"test_{name}.py"
    test_file.write_text("def test_it_adds_up():\n    assert 1 + 1 == 2\n")
    junit = directory / f"{name}-junit.xml"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "--rootdir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    text = directory / f"{name}.txt"
    text.write_text(finished.stdout)
    return text, junit


def test_evidence_writes_the_whole_set_and_a_true_checklist(
    ops_stack: Stack, tmp_path: Path
) -> None:
    unit_text, unit_junit = tiny_test_run(tmp_path, "unit")
    integration_text, integration_junit = tiny_test_run(tmp_path, "integration")
    out = tmp_path / "artifacts"
    result = run(
        ops_stack,
        "evidence",
        "--out",
        str(out),
        "--output",
        "json",
        "--unit-results",
        str(unit_text),
        "--unit-junit",
        str(unit_junit),
        "--integration-results",
        str(integration_text),
        "--integration-junit",
        str(integration_junit),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    key = json.loads(result.stdout)["verify"]["key"]
    safe = key.replace("/", "_")
    names = {path.name for path in out.iterdir()}
    assert names == EVIDENCE_FILES | TEST_FILES | {
        f"dynamodb_item_{safe}.json",
        f"lambda_logs_{safe}.json",
    }
    item = json.loads((out / f"dynamodb_item_{safe}.json").read_text())["Item"]
    assert {"s3_key", "s3_bucket", "processing_status", "size", "content_type"} <= item.keys()
    assert item["s3_key"] == {"S": key}
    events = json.loads((out / f"lambda_logs_{safe}.json").read_text())["events"]
    assert any(f'"s3_key":"{key}"' in e["message"] for e in events)
    assert events[0]["message"].startswith("START RequestId:")
    report = (out / "run-report.md").read_text()
    assert re.search(r"<[A-Z][A-Z_]*>", report) is None
    checklist = re.findall(r"^- \[([x ])\] (.*)$", report, re.MULTILINE)
    assert len(checklist) == 6
    assert all(mark == "x" for mark, _ in checklist), checklist
    assert f"- S3 bucket: {ops_stack.bucket}" in report
    stack = json.loads((out / "stack-describe.json").read_text())["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_evidence_for_a_given_key_collects_that_object(ops_stack: Stack, tmp_path: Path) -> None:
    put_and_wait(ops_stack, "partner-c/given.csv")
    out = tmp_path / "ev"
    result = run(ops_stack, "evidence", "--out", str(out), "--key", "partner-c/given.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    item = json.loads((out / "dynamodb_item_partner-c_given.csv.json").read_text())["Item"]
    assert item["content_type"] == {"S": "text/csv"}
    assert not any(name.startswith("dynamodb_item_smoke") for name in map(str, out.iterdir()))
    report = (out / "run-report.md").read_text()
    assert "- [ ] Unit tests passing" in report
    assert "no unit test results given" in report


def test_an_unreachable_stack_exits_2_with_a_sentence(ops_stack: Stack) -> None:
    result = run(ops_stack, "verify", "--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot describe stack" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_message_in_the_dead_letter_queue_fails_verify(ops_stack: Stack) -> None:
    # Last in the module: it leaves a message behind until it purges the queue.
    dlq = ops_stack.env["DeadLetterQueueUrl"]
    ops_stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"poison": true}')
    try:
        result = run(ops_stack, "verify", "--output", "json")
        assert result.returncode == 1, result.stdout + result.stderr
        failed = {
            c["name"]: c["detail"] for c in json.loads(result.stdout)["checks"] if not c["passed"]
        }
        assert "dead-letter queue" in failed
        assert failed["dead-letter queue"].startswith("1 messages")
        table = run(ops_stack, "verify")
        assert table.returncode == 1
        assert re.search(r"dead-letter queue\s*│\s*FAIL", table.stdout)
    finally:
        ops_stack.sqs.purge_queue(QueueUrl=dlq)
        wait_for(lambda: ops_stack.queue_depth(dlq) == 0, timeout=10)
