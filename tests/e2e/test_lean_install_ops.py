"""The operations from a lean install (no moto, Flask or Werkzeug: ``tests/lean.py``) work.

A stack runs in the emulator, started by the full install; a lean install acts on it through
``--endpoint-url``, as it would on AWS through ``--profile`` (the default target, the local
stack, is out of its reach): a partner and an upload, a deploy that publishes a version and a
rollback, verify, the evidence set, the DLQ and reconcile. It shares the stack's state
directory only so that verify knows the local supervisor, not the emulator, runs the mapping.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BIN, Stack, cli_env, own_stack
from tests.lean import lean_environment

pytestmark = pytest.mark.e2e


class LeanCli:
    """`filegate` as a lean install runs it, aimed at the stack's endpoint."""

    def __init__(self, stack: Stack, tmp_path: Path) -> None:
        (tmp_path / "site").mkdir()
        self.env = lean_environment(tmp_path / "site", cli_env(stack.state_dir))
        self.endpoint = ("--endpoint-url", stack.env["endpoint_url"])

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "filegate"), *args],
            capture_output=True,
            text=True,
            env={**self.env, **extra},
            timeout=300,
            check=False,
        )

    def on_stack(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(*args, *self.endpoint)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A stack of its own: this module deploys and rolls back.
    with own_stack(tmp_path_factory.mktemp("lean-ops-state")) as started:
        yield started


@pytest.fixture
def lean(stack: Stack, tmp_path: Path) -> LeanCli:
    return LeanCli(stack, tmp_path)


def _ok(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    return completed.stdout


def test_a_partner_uploads_through_a_lean_install(
    stack: Stack, lean: LeanCli, tmp_path: Path
) -> None:
    added = json.loads(_ok(lean.on_stack("partner", "add", "lean", "--output", "json")))
    invoice = tmp_path / "invoice.csv"
    invoice.write_text("id,amount\n1,10\n")

    uploaded = _ok(
        lean.run(
            *("upload", str(invoice), "--wait", "--output", "json"),
            *("--api", stack.env["upload_api_url"]),
            FILEGATE_API_KEY=added["api_key"],
        )
    )

    result = json.loads(uploaded)[0]
    item: dict[str, Any] | None = stack.item(result["key"])
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"


def test_a_lean_install_deploys_and_rolls_back(stack: Stack, lean: LeanCli) -> None:
    function = stack.env["FunctionName"]
    aws_lambda = stack.target.client("lambda")
    before = aws_lambda.get_alias(FunctionName=function, Name="live")["FunctionVersion"]

    _ok(lean.on_stack("deploy", "--parameter", "IngestMemorySize=384"))
    deployed = aws_lambda.get_alias(FunctionName=function, Name="live")["FunctionVersion"]
    _ok(lean.on_stack("rollback", "--to", before))

    assert int(deployed) > int(before)
    assert aws_lambda.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == before


def test_a_lean_install_checks_and_collects_evidence(lean: LeanCli, tmp_path: Path) -> None:
    _ok(lean.on_stack("verify"))
    _ok(lean.on_stack("evidence", "--out", str(tmp_path / "evidence")))
    _ok(lean.on_stack("dlq", "list"))
    _ok(lean.on_stack("reconcile"))

    assert (tmp_path / "evidence" / "run-report.md").is_file()
