"""The main emulator's DynamoDB forwarding (local/dynamodb_process.py), over HTTP to moto."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from werkzeug.test import Client

from filegate.local.dynamodb_process import Forwarder, is_forwarded
from filegate.local.processes import free_port

REGION = "eu-central-1"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20261125/eu-central-1/dynamodb/aws4_request,"
    " SignedHeaders=host;x-amz-target, Signature=0"
)


@pytest.fixture
def dynamodb_url(aws_env: None) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _call(forwarder: Forwarder, operation: str, body: dict) -> tuple[int, dict]:
    response = Client(forwarder).post(
        "/",
        data=json.dumps(body),
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": AUTH,
        },
    )
    return response.status_code, json.loads(response.data)


def test_a_forwarded_request_reaches_the_dynamodb_server_and_its_answer_comes_back(
    dynamodb_url: str,
) -> None:
    forwarder = Forwarder(dynamodb_url)
    status, created = _call(
        forwarder,
        "CreateTable",
        {
            "TableName": "forwarded",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    assert status == 200
    assert created["TableDescription"]["TableName"] == "forwarded"
    direct = boto3.client("dynamodb", region_name=REGION, endpoint_url=dynamodb_url)
    try:
        assert "forwarded" in direct.list_tables()["TableNames"]
        status, error = _call(forwarder, "DescribeTable", {"TableName": "missing"})
        assert status == 400
        assert error["__type"].endswith("ResourceNotFoundException")
    finally:
        direct.delete_table(TableName="forwarded")  # the server shares this process's backends


def test_a_dynamodb_server_that_does_not_answer_gives_a_json_500_that_says_so() -> None:
    status, error = _call(Forwarder(f"http://127.0.0.1:{free_port()}"), "ListTables", {})
    assert status == 500
    assert error["__type"].endswith("InternalServerError")
    assert "did not answer" in error["message"]


def test_only_dynamodb_and_its_streams_are_forwarded() -> None:
    assert is_forwarded({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"})
    assert is_forwarded({"HTTP_X_AMZ_TARGET": "DynamoDBStreams_20120810.GetRecords"})
    assert not is_forwarded({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"})
    assert not is_forwarded({})
