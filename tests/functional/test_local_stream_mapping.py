"""The local DynamoDB stream mapping does what Lambda's does with a failing batch.

AWS Lambda Developer Guide, "Retaining discarded records for a DynamoDB event source": a
failed batch is retried; with BisectBatchOnFunctionError it is split in two first (splitting
does not count against the retries); past MaximumRetryAttempts the batch's description goes to
the on-failure destination and the shard moves on. Stream and queue: in-process moto;
worker: a real process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from builders import REGION
from esm_builders import NO_AWS, handler_spec

from filegate.aws import Target
from filegate.local.invoke import LocalFunctions
from filegate.local.provision import StreamMappingConfig
from filegate.local.runtime import Worker
from filegate.local.streams import StreamMapping

TABLE = "stream-mapping-test"
# in-process moto routes DynamoDB Streams by this host (botocore's default for a stream ARN
# is an account-based endpoint moto does not know)
STREAMS = Target(
    region=REGION, dynamodb_endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
)

HANDLER = """
import json, os
def record(event, context):
    keys = [r["dynamodb"]["Keys"]["k"]["S"] for r in event["Records"]]
    with open(os.path.join(os.environ["OUT"], "batches.jsonl"), "a") as out:
        out.write(json.dumps(keys) + "\\n")
    if "poison" in keys:
        raise ValueError("poison")
    return {}
"""


@pytest.fixture
def stream(aws: None) -> str:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"])


@pytest.fixture
def dead_letters(aws: None) -> tuple[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stream-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[LocalFunctions]:
    spec = handler_spec(tmp_path, HANDLER, "$LATEST")
    worker = Worker(spec, NO_AWS)
    worker.start()
    registered = LocalFunctions()
    registered.register(spec, [worker])
    yield registered
    worker.stop()


def put(*keys: str) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    for key in keys:
        ddb.put_item(TableName=TABLE, Item={"k": {"S": key}})


def batches(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "batches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition: Any, stop: threading.Event) -> None:
    for _ in range(600):
        if condition():
            return
        stop.wait(0.05)
    raise AssertionError("the condition was not met")


def dead_letter_bodies(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_failing_record_is_isolated_retried_then_described_in_the_destination(
    stream: str, dead_letters: tuple[str, str], functions: LocalFunctions, tmp_path: Path
) -> None:
    dlq_url, dlq_arn = dead_letters
    config = StreamMappingConfig(
        logical_id="Mapping",
        stream_arn=stream,
        function_name="fn",
        batch_size=10,
        bisect_on_error=True,
        maximum_retry_attempts=2,
        on_failure_arn=dlq_arn,
    )
    quick = threading.Event()
    mapping = StreamMapping(STREAMS, config, functions, pause=lambda s: quick.wait(0.01))
    put("a", "b", "poison", "c")
    mapping.start()
    try:
        # the shard moves on past the discarded record: a later write is delivered
        wait_until(lambda: dead_letter_bodies(dlq_url), quick)
        put("d")
        wait_until(lambda: ["d"] in batches(tmp_path), quick)
    finally:
        mapping.stop()

    assert batches(tmp_path) == [
        ["a", "b", "poison", "c"],  # fails: halved
        ["a", "b"],  # succeeds
        ["poison", "c"],  # fails: halved
        ["poison"],  # fails, then its two retries fail too
        ["poison"],
        ["poison"],
        ["c"],
        ["d"],
    ]


def test_the_destination_gets_the_batch_description_lambda_sends(
    stream: str, dead_letters: tuple[str, str], functions: LocalFunctions
) -> None:
    dlq_url, dlq_arn = dead_letters
    config = StreamMappingConfig(
        logical_id="Mapping",
        stream_arn=stream,
        function_name="fn",
        maximum_retry_attempts=0,
        on_failure_arn=dlq_arn,
    )
    quick, received = threading.Event(), []
    mapping = StreamMapping(STREAMS, config, functions, pause=lambda s: quick.wait(0.01))
    put("poison")
    mapping.start()
    try:
        wait_until(lambda: received.extend(dead_letter_bodies(dlq_url)) or received, quick)
    finally:
        mapping.stop()

    (body,) = received
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 1
    assert body["requestContext"]["functionArn"].endswith(":function:fn:$LATEST")
    assert body["responseContext"]["functionError"] == "Unhandled"
    info = body["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["shardId"].startswith("shardId-")
