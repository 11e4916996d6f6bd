"""docs/runbook.md's rollback procedure, as an operator runs it, on a local stack of its own.

pause -> (a bad release is live; a partner uploads meanwhile) -> releases -> rollback ->
resume -> verify -> reconcile --repair: the upload made while paused ends in the ledger, the
function runs the previous version, and verify passes. One scenario, one test: the steps
depend on each other as they do in an incident.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Stack, own_stack, wait_for
from tests.e2e.ops_stack import marker_recorded, notify_by_hand, run, run_json
from tests.e2e.test_deploy import second_package

KEY = "partner-runbook/uploaded-while-paused.csv"
MARKER = "partner-runbook/marker-notified-by-hand.txt"


def test_rollback_procedure_from_the_runbook(tmp_path: Path) -> None:
    with own_stack(tmp_path / "state") as stack:
        # A second release goes live (the one we will roll back).
        package = second_package(stack.state_dir, tmp_path)
        deployed = run(stack, "deploy", "--package", str(package), timeout=300)
        assert deployed.returncode == 0, deployed.stderr
        assert _live(stack) == "2"

        # 1. Stop traffic.
        run_json(stack, "pause")
        assert (
            stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket).get(
                "QueueConfigurations", []
            )
            == []
        )
        stack.s3.put_object(Bucket=stack.bucket, Key=KEY, Body=b"a,b\n", ContentType="text/csv")
        # A marker uploaded after it, notified by hand, is recorded and leaves the queue empty:
        # the pipeline runs, and S3 sent nothing for KEY (it would have been queued first).
        stack.s3.put_object(Bucket=stack.bucket, Key=MARKER, Body=b"m", ContentType="text/plain")
        notify_by_hand(stack, MARKER)
        wait_for(lambda: marker_recorded(stack, MARKER), timeout=30)
        assert stack.item(KEY) is None

        # 2. Roll back to the previous version.
        rolled = run(stack, "rollback", "--output", "json", timeout=300)
        assert rolled.returncode == 0, rolled.stderr
        assert _live(stack) == "1"

        # 3. Resume, verify, and drive what arrived while paused through the pipeline.
        run_json(stack, "resume")
        assert stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket)[
            "QueueConfigurations"
        ]
        verified = run(stack, "verify", "--output", "json", timeout=300)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        gaps = run(stack, "reconcile", "--output", "json")
        assert gaps.returncode == 1, gaps.stdout
        assert KEY in gaps.stdout
        repaired = run(stack, "reconcile", "--repair", "--output", "json", timeout=300)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr

        item = wait_for(lambda: stack.item(KEY), timeout=30)
        assert item["processing_status"]["S"] == "RECEIVED"
        assert item["size"]["N"] == "4"
        # The invocation that recorded it ran the rolled-back version.
        logged = run(stack, "logs", "--key", KEY, "--since", "1h", "--output", "json")
        assert logged.returncode == 0, logged.stderr
        starts = [line for line in logged.stdout.splitlines() if "START RequestId" in line]
        assert starts
        assert all("Version: 1" in line for line in starts), starts


def _live(stack: Stack) -> str:
    found = stack.target.client("lambda").get_alias(
        FunctionName=stack.env["FunctionName"], Name="live"
    )
    return str(found["FunctionVersion"])
