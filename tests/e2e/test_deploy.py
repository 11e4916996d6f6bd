"""Deploy twice, list releases, roll back: on a local stack of this module's own.

The scenario mutates its stack (new versions, the live alias moving), so it runs on a stack
no other module shares, started and stopped here like the session one. The scenario runs
once per module (``scenario``) in the order an operator would; each test checks one part of
what it recorded, so the tests hold whichever order (or xdist worker) they run in.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, filegate, own_stack, wait_for

KEY = "partner-deploy/after-rollback.csv"
PAGE = "filegate/uploads/page.html"
MARKER = "release-2"


@dataclass
class Scenario:
    """What each step of the scenario returned (commands) or left behind (stack state)."""

    stack: Stack
    steps: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)
    start_lines: list[str] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)
    notification_during_pause: dict[str, Any] = field(default_factory=dict)

    def json(self, step: str) -> dict[str, Any]:
        result = self.steps[step]
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def run(self, step: str, *args: str) -> subprocess.CompletedProcess[str]:
        self.steps[step] = filegate(self.stack.state_dir, *args)
        return self.steps[step]


def second_package(state_dir: Path, work: Path) -> Path:
    """`filegate package` with the upload page retitled: new code, so a new version."""
    built = filegate(state_dir, "package", "--out", str(work / "lambda.zip"), "--output", "json")
    assert built.returncode == 0, built.stderr
    second = work / "lambda-2.zip"
    with zipfile.ZipFile(work / "lambda.zip") as source, zipfile.ZipFile(second, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == PAGE:
                data = data.replace(b"<title>", f"<title>{MARKER} ".encode())
            target.writestr(entry, data)
    return second


@contextmanager
def paused_intake(stack: Stack) -> Iterator[Callable[[], dict[str, Any]]]:
    """The bucket's notification detached (as `filegate pause` does) for the block."""
    saved = stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    saved.pop("ResponseMetadata", None)
    assert saved["QueueConfigurations"]
    stack.s3.put_bucket_notification_configuration(
        Bucket=stack.bucket, NotificationConfiguration={}
    )

    def current() -> dict[str, Any]:
        found = stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket)
        return {k: v for k, v in found.items() if k != "ResponseMetadata"}

    try:
        yield current
    finally:
        stack.s3.put_bucket_notification_configuration(
            Bucket=stack.bucket, NotificationConfiguration=saved
        )


def upload_page(stack: Stack) -> str:
    with urllib.request.urlopen(stack.env["upload_api_url"], timeout=10) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def deploy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-deploy-state")) as started:
        yield started


@pytest.fixture(scope="module")
def scenario(deploy_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    run = Scenario(deploy_stack)
    package = second_package(deploy_stack.state_dir, tmp_path_factory.mktemp("packages"))
    run.pages["before"] = upload_page(deploy_stack)
    run.run("same", "deploy", "--output", "json")
    run.run("dry-run", "deploy", "--package", str(package), "--dry-run", "--output", "json")
    run.run("releases-1", "releases", "--output", "json")
    with paused_intake(deploy_stack) as paused:
        run.run("second", "deploy", "--package", str(package), "--output", "json")
        run.notification_during_pause = paused()
    run.run("releases-2", "releases", "--output", "json")
    run.pages["after"] = wait_for(lambda: marked_page(deploy_stack), timeout=15)
    run.run("table", "releases")
    run.run("rollback", "rollback")
    run.run("rollback-again", "rollback")
    run.run("rollback-99", "rollback", "--to", "99")
    run.run("releases-3", "releases", "--output", "json")
    deploy_stack.s3.put_object(
        Bucket=deploy_stack.bucket, Key=KEY, Body=b"a,b\n1,2\n", ContentType="text/csv"
    )
    run.item = wait_for(lambda: deploy_stack.item(KEY), timeout=10)
    run.start_lines = wait_for(lambda: start_lines_for(deploy_stack, KEY), timeout=10)
    return run


def start_lines_for(stack: Stack, key: str) -> list[str]:
    """The START lines of the invocations that logged ``key``."""
    messages = stack.log_messages()
    documents = [json.loads(m) for m in messages if m.startswith("{")]
    request_ids = {d["function_request_id"] for d in documents if d.get("s3_key") == key}
    return [m for m in messages if m.startswith("START") and any(r in m for r in request_ids)]


def marked_page(stack: Stack) -> str | None:
    page = upload_page(stack)
    return page if MARKER in page else None


def test_deploying_what_runs_is_no_change(scenario: Scenario) -> None:
    result = scenario.json("same")
    assert (result["outcome"], result["changes"], result["live_version"]) == ("no-changes", [], "1")
    assert "no changes" in scenario.steps["same"].stderr


def test_dry_run_shows_a_new_version_and_changes_nothing(scenario: Scenario) -> None:
    planned = scenario.json("dry-run")
    assert planned["outcome"] == "dry-run"
    replaced = {c["logical_id"] for c in planned["changes"] if c["replacement"] == "True"}
    assert replaced == {"IngestFunctionVersion"}
    before = scenario.json("releases-1")
    assert [v["version"] for v in before["versions"]] == ["1"]
    assert before["live_version"] == "1"


def test_second_deploy_publishes_version_two_live(scenario: Scenario) -> None:
    second = scenario.json("second")
    assert (second["outcome"], second["stack_status"], second["live_version"]) == (
        "deployed",
        "UPDATE_COMPLETE",
        "2",
    )
    assert second["outputs"]["TableName"] == scenario.stack.table
    streamed = {(e["logical_id"], e["status"]) for e in second["events"]}
    assert ("IngestFunctionVersion", "UPDATE_COMPLETE") in streamed
    after = scenario.json("releases-2")
    assert [(v["version"], v["live"]) for v in after["versions"]] == [("1", False), ("2", True)]
    assert after["versions"][1]["description"].endswith(second["artifact"]["key"])


def test_a_code_deploy_leaves_a_paused_intake_paused(scenario: Scenario) -> None:
    # The bucket did not change, so the deploy does not touch its notification (as on AWS).
    assert scenario.json("second")["outcome"] == "deployed"
    assert not scenario.notification_during_pause.get("QueueConfigurations")


def test_the_upload_api_serves_the_new_code_after_the_deploy(scenario: Scenario) -> None:
    # The upload API has no alias: a deploy updates its code, and the local gateway's
    # workers switch to it, as the function URL on AWS runs the updated $LATEST.
    assert MARKER not in scenario.pages["before"]
    assert f"<title>{MARKER} filegate" in scenario.pages["after"]


def test_releases_table_marks_the_live_version(scenario: Scenario) -> None:
    table = scenario.steps["table"]
    assert table.returncode == 0, table.stderr
    assert "alias live -> 2" in table.stdout
    live_rows = [line for line in table.stdout.splitlines() if "*" in line]
    assert len(live_rows) == 1
    assert " 2 " in live_rows[0]


def test_rollback_moves_live_back_to_one(scenario: Scenario) -> None:
    rollback = scenario.steps["rollback"]
    assert rollback.returncode == 0, rollback.stderr
    assert "moved from version 2 to 1" in rollback.stdout
    assert scenario.json("releases-3")["live_version"] == "1"


def test_upload_after_rollback_is_processed_by_version_one(scenario: Scenario) -> None:
    assert scenario.item["processing_status"]["S"] == "RECEIVED"
    assert scenario.item["size"]["N"] == "8"
    assert scenario.start_lines
    assert all(line.endswith("Version: 1") for line in scenario.start_lines)


def test_rollback_with_nowhere_to_go_is_a_clear_error(scenario: Scenario) -> None:
    again, missing = scenario.steps["rollback-again"], scenario.steps["rollback-99"]
    assert again.returncode == 2
    assert "older than the live one (1)" in again.stderr
    assert missing.returncode == 2
    assert "has no version '99' (published: 1, 2)" in missing.stderr
    assert scenario.json("releases-3")["live_version"] == "1"  # neither moved it
