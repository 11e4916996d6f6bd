"""The ingestion handler works with X-Ray tracing on (aws_xray_sdk importable, no
POWERTOOLS_TRACE_DISABLED), checked in a fresh interpreter. The import contract of every
Lambda entry point is in test_lambda_imports.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import BUCKET

TRACED_RUN = """
import json, sys
import boto3
from moto import mock_aws
from builders import BUCKET, REGION, load_event

class Context:
    function_name = "filegate-ingest"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest"
    aws_request_id = "traced-request"

with mock_aws():
    from filegate.ingest import handler
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="traced", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "s3_key", "AttributeType": "S"}])
    s3.put_object(Bucket=BUCKET, Key="test-file.txt", Body=b"traced")
    result = handler.lambda_handler(load_event("s3_put_direct.json"), Context())
    print(json.dumps({"tracing": not handler.tracer._is_tracer_disabled(), "result": result}))
"""


def run_python(code: str, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    environment.update(env)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).parent,
        timeout=120,
        check=True,
    )
    last_line = completed.stdout.strip().splitlines()[-1]
    result: dict[str, object] = json.loads(last_line)
    return result


def test_the_handler_runs_with_tracing_on() -> None:
    found = run_python(
        TRACED_RUN, LAMBDA_TASK_ROOT=str(Path.cwd()), DDB_TABLE="traced", UPLOAD_BUCKET=BUCKET
    )

    assert found == {
        "tracing": True,
        "result": {"processed": 1, "duplicate": 0, "stale": 0, "ignored": 0},
    }
