"""Each Lambda entry point's import contract, checked in a fresh interpreter.

Importing a handler must not import boto3 (its builder does, on the first invocation) nor any
filegate module the Lambda zip does not ship (nothing from cli/, local/, stackref, aws). What
the zip ships is read from the package builder, so the two cannot drift.

The ingestion function imports only what its invocation uses: every module is compiled at each
cold start on Lambda (its code directory is read-only, and no bytecode ships), so the init
phase plus the first invocation, tracing on, stays free of Powertools' batch utility and of its
data_classes package (one class per event source of every AWS service), see
docs/benchmarks.md, "Cold start at its floor". (asyncio still comes, with wrapt 2, which the
X-Ray SDK imports.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import load_event

from filegate import package

IMPORT_ONLY = """
import json, sys
import {module}
print(json.dumps({{
    "boto3": "boto3" in sys.modules,
    "filegate": sorted(m for m in sys.modules if m.split(".")[0] == "filegate"),
}}))
"""
# The handler imported and invoked once with S3's test event through SQS, tracing on as the
# template sets it (a sampled trace header, as the runtime sets it for the invocation).
FIRST_INVOCATION = """
import json, os, sys
import filegate.ingest.handler as handler

class Context:
    function_name = "filegate-ingest"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest"
    aws_request_id = "first-invocation"

os.environ["_X_AMZN_TRACE_ID"] = sys.argv[2]
result = handler.lambda_handler(json.loads(sys.argv[1]), Context())
print(json.dumps({"result": result, "modules": sorted(sys.modules)}))
"""
TRACE_HEADER = "Root=1-67a0b1c2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
# What the ingestion function's first invocation does not use, and must not import.
UNUSED_BY_INGESTION = (
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.event_handler",
)


def shipped_modules() -> set[str]:
    names = set()
    for archive_name, _ in package.iter_package_files():
        if archive_name.startswith("filegate/") and archive_name.endswith(".py"):
            module = archive_name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            names.add(module)
    return names


def run_fresh(code: str, *arguments: str, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    environment.update(env)
    completed = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).parent,
        timeout=120,
        check=True,
    )
    found: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    "module", ["filegate.ingest.handler", "filegate.uploads.api", "filegate.publish.handler"]
)
def test_importing_a_handler_imports_no_boto3_and_only_shipped_modules(module: str) -> None:
    found = run_fresh(IMPORT_ONLY.format(module=module), POWERTOOLS_TRACE_DISABLED="true")

    assert found["boto3"] is False
    assert isinstance(found["filegate"], list)
    assert module in found["filegate"]
    assert set(found["filegate"]) <= shipped_modules()


def test_the_first_ingestion_invocation_traced_imports_only_what_it_uses() -> None:
    # GIVEN the function's environment with tracing on (no daemon: X-Ray's UDP sends go nowhere)
    env = {
        "LAMBDA_TASK_ROOT": str(Path.cwd()),
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DDB_TABLE": "ledger",
        "UPLOAD_BUCKET": "filegate-uploads-test",
    }

    # WHEN the handler is imported and handles S3's test event through SQS
    event = json.dumps(load_event("sqs_test_event.json"))
    found = run_fresh(FIRST_INVOCATION, event, TRACE_HEADER, **env)

    # THEN the message is acknowledged, botocore is patched for X-Ray, and nothing unused loaded
    assert found["result"] == {"batchItemFailures": []}
    modules = found["modules"]
    assert isinstance(modules, list)
    assert "aws_xray_sdk.ext.botocore.patch" in modules
    imported_unused = [m for m in modules if m.startswith(UNUSED_BY_INGESTION)]
    assert imported_unused == []
