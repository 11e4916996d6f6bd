"""Unit tests for the local stack's pure rules: partial batches, EMF, log framing, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.errors import ConfigError
from filegate.local.cloudwatch import emf_metrics, lambda_log_lines
from filegate.local.esm import failed_message_ids, sqs_event
from filegate.local.runtime import FunctionSpec, Invocation
from filegate.settings import IngestSettings, LocalSettings, resolve_region

MESSAGES = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": "{}"} for i in range(3)]


def test_a_failed_invocation_fails_the_whole_batch() -> None:
    invocation = Invocation(request_id="x", ok=False)
    assert failed_message_ids(MESSAGES, invocation, partial=True) == {"m0", "m1", "m2"}


def test_batch_item_failures_fail_only_those_records() -> None:
    result = {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    invocation = Invocation(request_id="x", ok=True, result=result)
    assert failed_message_ids(MESSAGES, invocation, partial=True) == {"m1"}


def test_without_report_batch_item_failures_a_success_deletes_everything() -> None:
    result = {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    invocation = Invocation(request_id="x", ok=True, result=result)
    assert failed_message_ids(MESSAGES, invocation, partial=False) == set()


@pytest.mark.parametrize(
    "result",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": [{"wrong": "m1"}]},
        {"batchItemFailures": ["m1"]},
    ],
)
def test_a_malformed_partial_response_fails_the_whole_batch(result: dict) -> None:
    invocation = Invocation(request_id="x", ok=True, result=result)
    assert failed_message_ids(MESSAGES, invocation, partial=True) == {"m0", "m1", "m2"}


def test_sqs_event_has_lambdas_record_shape() -> None:
    event = sqs_event(MESSAGES[:1], "arn:aws:sqs:eu-central-1:123456789012:q", "eu-central-1")
    record = event["Records"][0]
    assert record["messageId"] == "m0"
    assert record["receiptHandle"] == "r0"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":q")
    assert record["md5OfBody"] == "99914b932bd37a50b983c5e7c90ae93b"  # md5("{}")


def test_emf_lines_become_metric_data() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1795554299697,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "filegate",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": "Processed", "Unit": "Count"}],
                    }
                ],
            },
            "service": "filegate-ingest",
            "Processed": [1.0, 2.0],
        }
    )
    found = emf_metrics(line)
    assert [(ns, d["MetricName"], d["Value"]) for ns, d in found] == [
        ("filegate", "Processed", 1.0),
        ("filegate", "Processed", 2.0),
    ]
    assert found[0][1]["Dimensions"] == [{"Name": "service", "Value": "filegate-ingest"}]


@given(st.text())
def test_emf_parsing_never_raises_on_arbitrary_lines(line: str) -> None:
    assert isinstance(emf_metrics(line), list)


def test_log_framing_matches_lambda() -> None:
    spec = FunctionSpec("fn", "arn", "h.h", 30, 256, {}, Path("/c"), Path("/r"))
    invocation = Invocation(
        request_id="req-1",
        ok=True,
        duration_ms=12.345,
        max_memory_mb=80,
        init_ms=300.0,
        lines=[(1000, "hello")],
    )
    messages = [e["message"] for e in lambda_log_lines(spec, invocation, now_ms=2000)]
    assert messages[0] == "START RequestId: req-1 Version: $LATEST"
    assert messages[1] == "hello"
    assert messages[2] == "END RequestId: req-1"
    assert messages[3].startswith("REPORT RequestId: req-1\tDuration: 12.35 ms\t")
    assert "Billed Duration: 13 ms" in messages[3]
    assert "Max Memory Used: 80 MB" in messages[3]
    assert "Init Duration: 300.00 ms" in messages[3]


def test_ingest_settings_name_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="DDB_TABLE"):
        IngestSettings.from_env({"UPLOAD_BUCKET": "b"})
    with pytest.raises(ConfigError, match="UPLOAD_BUCKET"):
        IngestSettings.from_env({"DDB_TABLE": "t"})
    settings = IngestSettings.from_env({"DDB_TABLE": "t", "UPLOAD_BUCKET": "b"})
    assert (settings.table_name, settings.bucket) == ("t", "b")


def test_local_settings_reject_bad_values_by_name() -> None:
    with pytest.raises(ConfigError, match="FILEGATE_LOCAL_WORKERS"):
        LocalSettings.resolve(env={"FILEGATE_LOCAL_WORKERS": "many"})
    with pytest.raises(ConfigError, match="FILEGATE_LOCAL_PORT"):
        LocalSettings.resolve(env={"FILEGATE_LOCAL_PORT": "0"})
    assert LocalSettings.resolve(port=4600, env={}).endpoint_url == "http://127.0.0.1:4600"


def test_region_precedence_follows_the_aws_cli() -> None:
    env = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-west-2"}
    assert resolve_region("eu-west-1", env) == "eu-west-1"
    assert resolve_region(None, env) == "us-east-1"
    assert resolve_region(None, {"AWS_DEFAULT_REGION": "us-west-2"}) == "us-west-2"
    assert resolve_region(None, {}) == "eu-central-1"


def test_log_framing_names_the_version_an_alias_invoked() -> None:
    spec = FunctionSpec("fn", "arn:fn:3", "h.h", 30, 256, {}, Path("/c"), Path("/r"), version="3")
    invocation = Invocation(request_id="req-2", ok=True, duration_ms=1.0)
    messages = [e["message"] for e in lambda_log_lines(spec, invocation, now_ms=2000)]
    assert messages[0] == "START RequestId: req-2 Version: 3"


def test_a_cloudformation_table_becomes_the_matching_create_table_request() -> None:
    from filegate.local.stack_tables import create_table_request

    index = {
        "IndexName": "by-prefix",
        "KeySchema": [{"AttributeName": "prefix", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
        "ContributorInsightsSpecification": {"Enabled": True},  # not CreateTable's
    }
    properties = {
        "TableName": "ignored: the physical name is given",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "s3_key", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "s3_key", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [index],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": "true"},
        "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
        "DeletionProtectionEnabled": "false",
    }
    assert create_table_request("ledger", properties) == {
        "TableName": "ledger",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "GlobalSecondaryIndexes": [{k: index[k] for k in ("IndexName", "KeySchema", "Projection")}],
        "SSESpecification": {"Enabled": True},
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "DeletionProtectionEnabled": False,
    }


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("FILEGATE_LOCAL_DYNAMODB_PROCESS", "dynamodb_process"),
        ("FILEGATE_LOCAL_QUEUE_CHANNEL", "queue_channel"),
    ],
)
def test_the_local_stack_switches_are_on_by_default_and_named_when_bad(
    variable: str, field: str
) -> None:
    assert getattr(LocalSettings.resolve(env={}), field) is True
    assert getattr(LocalSettings.resolve(env={variable: "0"}), field) is False
    with pytest.raises(ConfigError, match=variable):
        LocalSettings.resolve(env={variable: "maybe"})


def test_a_target_with_a_dynamodb_endpoint_sends_dynamodb_there_and_says_so() -> None:
    from filegate.aws import Target

    target = Target(
        region="eu-central-1",
        endpoint_url="http://127.0.0.1:4566",
        dynamodb_endpoint_url="http://127.0.0.1:4999",
    )
    assert target.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4999"
    assert target.client("s3").meta.endpoint_url == "http://127.0.0.1:4566"
    env = target.local_env()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:4999"
