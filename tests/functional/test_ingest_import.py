"""The ingestion handler works with X-Ray tracing on (aws_xray_sdk importable, no
POWERTOOLS_TRACE_DISABLED), checked in a fresh interpreter, and what its trace shows: the
subsegments the X-Ray SDK sends, as one UDP datagram each, to the daemon Lambda runs beside
the function (AWS_XRAY_DAEMON_ADDRESS), here a socket of the test. The import contract of
every Lambda entry point is in test_lambda_imports.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builders import BUCKET

TRACE_ID = "1-67a0b1c2-0123456789abcdef01234567"
TRACE_HEADER = f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1"
TRACED_RUN = (
    f"TRACE_HEADER = {TRACE_HEADER!r}\n"
    + """
import json, os, sys
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
    os.environ["_X_AMZN_TRACE_ID"] = TRACE_HEADER  # as the runtime sets it per invocation
    result = handler.lambda_handler(load_event("s3_put_direct.json"), Context())
    print(json.dumps({"tracing": not handler.tracer._is_tracer_disabled(), "result": result}))
"""
)


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


def test_the_handler_runs_with_tracing_on_and_its_trace_shows_each_aws_call() -> None:
    # GIVEN a stand-in for the X-Ray daemon: a UDP socket on loopback
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{daemon.getsockname()[1]}"

        # WHEN the handler records one created object with tracing on, as on Lambda
        found = run_python(
            TRACED_RUN,
            LAMBDA_TASK_ROOT=str(Path.cwd()),
            AWS_XRAY_DAEMON_ADDRESS=address,
            DDB_TABLE="traced",
            UPLOAD_BUCKET=BUCKET,
        )
        documents = list(received_documents(daemon))

    # THEN the object is recorded
    assert found == {
        "tracing": True,
        "result": {"processed": 1, "duplicate": 0, "stale": 0, "ignored": 0},
    }
    # AND the trace, under the invocation's trace id, shows the handler, the record, and each
    # AWS call the record made with its service and operation
    assert {document["trace_id"] for document in documents} == {TRACE_ID}
    shown = {(e["name"], e.get("namespace"), operation(e)) for e in walk(documents)}
    assert shown == {
        ("## lambda_handler", "local", None),
        ("## filegate.ingest.handler._recorded", "local", None),
        ("s3", "aws", "HeadObject"),
        ("dynamodb", "aws", "UpdateItem"),
    }


def received_documents(daemon: socket.socket) -> Iterator[dict[str, Any]]:
    """The segment documents sent so far: each datagram is a JSON header line, then one."""
    daemon.setblocking(False)
    while True:
        try:
            datagram = daemon.recv(65536)
        except BlockingIOError:
            return
        header, document = datagram.decode("utf-8").split("\n", 1)
        assert json.loads(header) == {"format": "json", "version": 1}
        yield json.loads(document)


def operation(entry: dict[str, Any]) -> str | None:
    aws: dict[str, Any] = entry.get("aws", {})
    found: str | None = aws.get("operation")
    return found


def walk(entries: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for entry in entries:
        yield entry
        yield from walk(entry.get("subsegments", []))
