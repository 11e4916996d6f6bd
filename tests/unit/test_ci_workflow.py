"""The CI workflow users get: tests on every pull request, AWS only on manual dispatch via OIDC.

`make lint` validates the file against GitHub's workflow schema (check-jsonschema); these tests
hold the promises the schema cannot: no step masks a failure, no long-lived keys, and the AWS
job runs only when dispatched by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from filegate.cli import app

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"
PR_TEMPLATE = WORKFLOW.parents[1] / "PULL_REQUEST_TEMPLATE.md"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    # YAML 1.1 reads the bare key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_tests_run_on_every_pull_request_through_the_ci_script(workflow: dict[str, Any]) -> None:
    assert "pull_request" in workflow["on"]
    runs = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert "bash .ci/run" in runs


def test_aws_job_runs_only_on_manual_dispatch_with_oidc(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["integration"]
    assert job["if"] == "github.event_name == 'workflow_dispatch'"
    assert job["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}
    credentials = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert len(credentials) == 1
    assert set(credentials[0]["with"]) >= {"role-to-assume", "aws-region"}


def test_no_long_lived_keys_anywhere(workflow: dict[str, Any]) -> None:
    text = WORKFLOW.read_text("utf-8")
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text


def test_no_step_masks_a_failure(workflow: dict[str, Any]) -> None:
    for step in _steps(workflow):
        assert "continue-on-error" not in step, step
        assert "|| true" not in step.get("run", ""), step
    for job in workflow["jobs"].values():
        assert "continue-on-error" not in job


def test_evidence_is_uploaded_even_when_a_step_failed(workflow: dict[str, Any]) -> None:
    uploads = [
        s
        for s in workflow["jobs"]["integration"]["steps"]
        if "upload-artifact" in s.get("uses", "")
    ]
    assert uploads
    assert all(step["if"] == "always()" for step in uploads)


def test_pull_request_template_carries_the_acceptance_checklist() -> None:
    text = PR_TEMPLATE.read_text("utf-8")
    for item in (
        "Stack deployed successfully",
        "Lambda code deployed and permission to be invoked",
        "S3 object upload triggers Lambda and Lambda writes to DynamoDB",
        "CloudWatch logs show successful processing message",
        "Unit tests passing",
        "Integration test passing",
    ):
        assert f"- [ ] {item}" in text


def test_the_filegate_commands_it_runs_exist_with_their_options(workflow: dict[str, Any]) -> None:
    commands = [
        " ".join(step["run"].split())
        for step in _steps(workflow)
        if step.get("run", "").startswith(".venv/bin/filegate ")
    ]
    assert len(commands) >= 3
    for command in commands:
        words = command.split()[1:]
        name = words[0]
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        for option in (w for w in words if w.startswith("--")):
            assert option in result.output, f"{command}: no {option}"
