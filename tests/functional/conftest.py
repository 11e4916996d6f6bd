"""Functional fixtures: moto in-process, a versioned bucket, the ledger table, a Lambda context.

The handler runs whole against this emulated state; tests assert on the ledger item.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from builders import BUCKET, REGION
from moto import mock_aws
from upload_builders import create_upload_ledger

from filegate.ingest import handler
from filegate.ledger import Ledger
from filegate.local import patches

TABLE = "filegate-ledger-test"


@dataclass
class FakeContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str = "filegate-ingest"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:filegate-ingest"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/filegate-ingest"
    log_stream_name: str = "2025/09/28/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "DDB_TABLE": TABLE,
        "UPLOAD_BUCKET": BUCKET,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def moto_as_it_was() -> Iterator[None]:
    """Whatever a test installed in moto for the process (``patches.apply``, as the emulator
    does; ops_pipeline.build_pipeline calls it) is undone when the test ends, so the next test
    in this worker runs on moto as it was."""
    yield
    patches.undo()


@pytest.fixture
def dynamodb_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB's per-item atomicity, which moto lacks, for in-process moto: the handler
    records a batch's events in threads, and two events of one key must not both pass their
    conditions. The emulator does it as middleware (local/dynamodb_atomic.py); in-process moto
    has no WSGI app, so moto's DynamoDB handler takes the lock, until the test ends."""
    from moto.dynamodb.responses import DynamoHandler

    call_action, lock = DynamoHandler.call_action, threading.RLock()

    @functools.wraps(call_action)
    def one_at_a_time(self: DynamoHandler) -> object:
        with lock:
            return call_action(self)

    monkeypatch.setattr(DynamoHandler, "call_action", one_at_a_time)


@pytest.fixture
def aws(aws_env: None, dynamodb_atomic: None) -> Iterator[None]:
    with mock_aws():
        boto3.setup_default_session()  # a fresh default session: the handler's clients use it
        handler.build_ingestor.cache_clear()  # the handler's clients must be built inside moto
        yield
        handler.build_ingestor.cache_clear()


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def table(aws: None) -> str:
    """The ledger table with the template's key schema and both GSIs."""
    return create_upload_ledger(boto3.client("dynamodb", region_name=REGION), TABLE)


@pytest.fixture
def ledger(table: str) -> Ledger:
    """A second view of the ledger table, for reading back what the handler wrote."""
    return Ledger(table, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def invoke(s3: Any, table: str) -> Any:
    """Runs the whole Lambda handler on an event, with a fresh context per call."""

    def run(event: dict[str, Any]) -> Any:
        return handler.lambda_handler(event, FakeContext())

    return run
