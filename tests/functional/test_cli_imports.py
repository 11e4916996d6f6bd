"""`filegate upload` imports only what it uses; `filegate --help` still shows every command.

The CLI's start is part of `filegate upload`'s time against `aws s3 cp`
(docs/benchmarks-uploads.md, "The CLI's start"): importing every command group brought boto3,
the operations and the local twin's modules into an upload that uses none of them. The
commands are imported when they run (``filegate.cli.lazy``); these tests run the real entry
point in a fresh interpreter and read which modules it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from filegate.cli import app

# Runs one command line through the real entry point; prints the modules then imported.
DRIVER = """
import json, sys
sys.argv = ["filegate", *sys.argv[1:]]
from filegate.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("RESULT " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
# What an upload does not use: the AWS SDK (the client talks HTTP to the upload API and to
# presigned URLs), the operations, the local twin and its emulator.
NOT_FOR_UPLOADS = ("boto3", "botocore", "s3transfer", "moto", "flask", "werkzeug")
NOT_FOR_UPLOADS_FILEGATE = ("filegate.ops", "filegate.local", "filegate.aws", "filegate.stackref")
# The CLI modules an upload needs: the entry point, the command and how it renders.
UPLOAD_CLI = {"filegate.cli", "filegate.cli.lazy", "filegate.cli.render", "filegate.cli.upload"}
# Every command `filegate --help` lists, in its order.
COMMANDS = [
    "demo",
    "package",
    "upload",
    "verify",
    "logs",
    "evidence",
    "reconcile",
    "pause",
    "resume",
    "intake",
    "deploy",
    "releases",
    "rollback",
    "alarms",
    "local",
    "partner",
    "uploads",
    "receipt",
    "dlq",
    "events",
]


def run_filegate(*args: str) -> tuple[subprocess.CompletedProcess[str], int, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert "RESULT " in completed.stdout, completed.stderr
    result = json.loads(completed.stdout.split("RESULT ")[-1])
    return completed, result["code"], result["modules"]


def unused_by_upload(modules: list[str]) -> list[str]:
    return [
        module
        for module in modules
        if module.split(".")[0] in NOT_FOR_UPLOADS
        or module.startswith(NOT_FOR_UPLOADS_FILEGATE)
        or (module.startswith("filegate.cli.") and module not in UPLOAD_CLI)
    ]


def test_upload_help_imports_no_other_command_nor_the_sdk_nor_the_twin() -> None:
    completed, code, modules = run_filegate("upload", "--help")

    assert code == 0, completed.stderr
    assert "Usage: filegate upload" in completed.stdout
    assert "filegate.cli.upload" in modules
    assert unused_by_upload(modules) == []


def test_an_upload_run_imports_no_other_command_nor_the_sdk_nor_the_twin(tmp_path: Path) -> None:
    # WHEN the command runs its body (the file is missing: it stops before any request)
    missing = tmp_path / "missing.bin"
    completed, code, modules = run_filegate("upload", str(missing), "--api", "http://127.0.0.1:9")

    # THEN it said why, and had imported the upload client but nothing it does not use
    assert code == 2
    assert f"not a readable file: {missing}" in " ".join(completed.stderr.split())
    assert "filegate.uploads.client" in modules
    assert unused_by_upload(modules) == []


def test_filegate_help_lists_every_command_with_its_help() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})

    assert result.exit_code == 0, result.output
    listed = {}
    for line in result.output.splitlines():
        words = line.strip("│ ").split(maxsplit=1)
        if len(words) == 2 and words[0] in COMMANDS:
            listed[words[0]] = words[1]
    assert list(listed) == COMMANDS
    assert listed["upload"].startswith("Upload files: hash, declare, upload")
    assert listed["alarms"].startswith("The stack's CloudWatch alarms")


def test_a_mistyped_command_is_told_the_commands_it_may_mean() -> None:
    result = CliRunner().invoke(app, ["uplod"], env={"COLUMNS": "200", "NO_COLOR": "1"})

    assert result.exit_code == 2
    assert "No such command 'uplod'. Did you mean 'upload', 'uploads'?" in result.output
