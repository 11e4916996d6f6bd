"""DynamoDB in its own emulator process: the stack's tables live there, the endpoint forwards.

Every other e2e test reads the ledger through the main endpoint, so they all go through the
forwarding too; these check what the split itself promises.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from filegate.aws import Target
from tests.e2e.conftest import Stack, wait_for


def _direct(stack: Stack) -> object:
    return Target(
        region=stack.env["region"], endpoint_url=stack.env["dynamodb_endpoint_url"]
    ).client("dynamodb")


def test_local_env_names_dynamodb_s_own_endpoint(stack: Stack) -> None:
    main, dynamodb = (
        urlsplit(stack.env["endpoint_url"]),
        urlsplit(stack.env["dynamodb_endpoint_url"]),
    )
    assert dynamodb.hostname == "127.0.0.1"
    assert dynamodb.port != main.port


def test_cloudformation_s_tables_live_in_the_dynamodb_process(stack: Stack) -> None:
    direct = _direct(stack)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in stack.target.client("cloudformation").list_stack_resources(
            StackName=stack.env["stack_name"]
        )["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::DynamoDB::Table"
    }
    assert set(physical) == {"LedgerTable", "PartnersTable"}
    for table in physical.values():
        there = direct.describe_table(TableName=table)["Table"]  # type: ignore[attr-defined]
        forwarded = stack.ddb.describe_table(TableName=table)["Table"]
        assert forwarded["TableArn"] == there["TableArn"]
        assert there["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert there["SSEDescription"]["Status"] == "ENABLED"
    ledger = direct.describe_table(TableName=physical["LedgerTable"])["Table"]  # type: ignore[attr-defined]
    assert ledger["KeySchema"] == [{"AttributeName": "s3_key", "KeyType": "HASH"}]
    assert {i["IndexName"] for i in ledger["GlobalSecondaryIndexes"]} == {
        "prefix-event_time-index",
        "upload_id-index",
    }
    backups = stack.ddb.describe_continuous_backups(TableName=physical["LedgerTable"])
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_function_s_item_is_the_same_through_either_endpoint(stack: Stack) -> None:
    key = f"partner-split/{uuid.uuid4().hex}.txt"
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"split", ContentType="text/plain")
    forwarded = wait_for(lambda: stack.item(key), timeout=10)
    there = _direct(stack).get_item(  # type: ignore[attr-defined]
        TableName=stack.table, Key={"s3_key": {"S": key}}, ConsistentRead=True
    )["Item"]
    assert there == forwarded
    assert there["size"]["N"] == "5"


def test_a_table_made_through_the_main_endpoint_is_made_in_the_dynamodb_process(
    stack: Stack,
) -> None:
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    stack.ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        assert name in _direct(stack).list_tables()["TableNames"]  # type: ignore[attr-defined]
    finally:
        stack.ddb.delete_table(TableName=name)
    assert name not in _direct(stack).list_tables()["TableNames"]  # type: ignore[attr-defined]
