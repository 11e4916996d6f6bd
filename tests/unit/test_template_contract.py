"""The CloudFormation template's contract: what the rest of filegate relies on.

Pure file reads, no network. The template is parsed with cfn-lint's loader, which turns the
short-form intrinsics (!Ref, !GetAtt, !Sub) into their long form ({"Ref": ...}).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load

from tests.contract import OUTPUTS, PARAMETERS

TEMPLATE = Path(str(files("filegate") / "templates" / "s3-lambda-dynamo.yml"))
ROOT_LINK = Path(__file__).resolve().parents[2] / "templates" / "s3-lambda-dynamo.yml"

RESOURCES = {
    "UploadBucket": "AWS::S3::Bucket",
    "UploadBucketPolicy": "AWS::S3::BucketPolicy",
    "IngestQueue": "AWS::SQS::Queue",
    "IngestDeadLetterQueue": "AWS::SQS::Queue",
    "QueueKey": "AWS::KMS::Key",
    "IngestQueuePolicy": "AWS::SQS::QueuePolicy",
    "IngestFunctionRole": "AWS::IAM::Role",
    "IngestFunctionLogGroup": "AWS::Logs::LogGroup",
    "IngestFunction": "AWS::Lambda::Function",
    "IngestEventSourceMapping": "AWS::Lambda::EventSourceMapping",
    "LedgerTable": "AWS::DynamoDB::Table",
    "AlertsTopic": "AWS::SNS::Topic",
    "AlertsEmailSubscription": "AWS::SNS::Subscription",
    "IngestErrorsAlarm": "AWS::CloudWatch::Alarm",
    "IngestThrottlesAlarm": "AWS::CloudWatch::Alarm",
    "DeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
    "QueueAgeAlarm": "AWS::CloudWatch::Alarm",
}
ENV_VARS = {"DDB_TABLE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}
# X-Ray trace writes have no resource-level permissions: "*" is their only valid resource.
RESOURCE_STAR_ALLOWED = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(str(TEMPLATE))


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_actions(statement: dict[str, Any]) -> list[str]:
    """Actions of an Allow statement that contain '*' (Deny statements may be broad)."""
    if statement.get("Effect") != "Allow":
        return []
    return [action for action in as_list(statement.get("Action", [])) if "*" in action]


def role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = props(template, "IngestFunctionRole")
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def checkov_skips(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


# ------------------------------------------------------------------ shape


def test_root_templates_path_is_a_symlink_to_the_packaged_template() -> None:
    assert ROOT_LINK.is_symlink()
    assert ROOT_LINK.resolve() == TEMPLATE.resolve()


def test_logical_ids_and_types(template: dict[str, Any]) -> None:
    actual = {lid: r["Type"] for lid, r in template["Resources"].items() if lid in RESOURCES}
    assert actual == RESOURCES


def test_parameter_names_and_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert set(parameters) == PARAMETERS
    assert parameters["AlertEmail"]["Default"] == ""
    assert parameters["LogRetentionInDays"]["Default"] == 30
    assert 30 in parameters["LogRetentionInDays"]["AllowedValues"]
    for name in ("BucketName", "LambdaName", "DynamoTableName", "CodeBucket"):
        assert parameters[name]["AllowedPattern"], name


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("BucketName", "lambdandynam-static-01-01123581321", "Upper.case"),
        ("LambdaName", "lambda-static-01", "has space"),
        ("DynamoTableName", "dynamotable-static-01", "no/slash"),
        ("AlertEmail", "", "not-an-email"),
        ("AlertEmail", "ops@example.com", "a@b"),
    ],
)
def test_parameter_patterns_accept_seed_names(
    template: dict[str, Any], name: str, good: str, bad: str
) -> None:
    pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
    assert pattern.fullmatch(good)
    assert not pattern.fullmatch(bad)


def test_output_names(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == OUTPUTS


def test_email_subscription_is_conditional(template: dict[str, Any]) -> None:
    assert template["Resources"]["AlertsEmailSubscription"]["Condition"] == "HasAlertEmail"
    assert "HasAlertEmail" in template["Conditions"]


# ------------------------------------------------------------------ queue and function


def test_visibility_timeout_is_at_least_six_function_timeouts(template: dict[str, Any]) -> None:
    timeout = props(template, "IngestFunction")["Timeout"]
    assert timeout == 30
    assert props(template, "IngestQueue")["VisibilityTimeout"] >= 6 * timeout


def test_queue_redrives_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    redrive = props(template, "IngestQueue")["RedrivePolicy"]
    assert redrive["maxReceiveCount"] >= 5
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}


def test_dead_letter_queue_keeps_messages_fourteen_days(template: dict[str, Any]) -> None:
    assert props(template, "IngestDeadLetterQueue")["MessageRetentionPeriod"] == 1209600


def test_both_queues_use_the_queue_key(template: dict[str, Any]) -> None:
    for queue in ("IngestQueue", "IngestDeadLetterQueue"):
        assert props(template, queue)["KmsMasterKeyId"] == {"Ref": "QueueKey"}
    assert props(template, "QueueKey")["EnableKeyRotation"] is True


def test_event_source_mapping(template: dict[str, Any]) -> None:
    esm = props(template, "IngestEventSourceMapping")
    assert esm["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert esm["FunctionName"] == {"Ref": "IngestFunction"}
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BatchSize"] == 10
    assert esm["MaximumBatchingWindowInSeconds"] == 0
    reserved = props(template, "IngestFunction")["ReservedConcurrentExecutions"]
    assert 2 <= esm["ScalingConfig"]["MaximumConcurrency"] <= reserved


def test_function_configuration(template: dict[str, Any]) -> None:
    function = props(template, "IngestFunction")
    assert function["FunctionName"] == {"Ref": "LambdaName"}
    assert function["Handler"] == "filegate.ingest.handler.lambda_handler"
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    assert function["Role"] == {"Fn::GetAtt": ["IngestFunctionRole", "Arn"]}
    assert template["Resources"]["IngestFunction"]["DependsOn"] == "IngestFunctionLogGroup"


def test_function_environment(template: dict[str, Any]) -> None:
    variables = props(template, "IngestFunction")["Environment"]["Variables"]
    assert set(variables) == ENV_VARS
    assert variables["DDB_TABLE"] == {"Ref": "LedgerTable"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "filegate-ingest"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "filegate"


def test_log_group_is_the_functions_own(template: dict[str, Any]) -> None:
    log_group = props(template, "IngestFunctionLogGroup")
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${LambdaName}"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


# ------------------------------------------------------------------ bucket


def test_bucket_notifies_the_queue_of_creates_and_removes(template: dict[str, Any]) -> None:
    notification = props(template, "UploadBucket")["NotificationConfiguration"]
    assert set(notification) == {"QueueConfigurations"}
    configurations = notification["QueueConfigurations"]
    assert sorted(c["Event"] for c in configurations) == [
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    ]
    for configuration in configurations:
        assert configuration["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert template["Resources"]["UploadBucket"]["DependsOn"] == "IngestQueuePolicy"


def test_bucket_is_private_versioned_and_encrypted(template: dict[str, Any]) -> None:
    bucket = props(template, "UploadBucket")
    assert bucket["BucketName"] == {"Ref": "BucketName"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]


def test_bucket_policy_denies_insecure_transport(template: dict[str, Any]) -> None:
    (statement,) = props(template, "UploadBucketPolicy")["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_queue_policy_admits_only_this_bucket(template: dict[str, Any]) -> None:
    (statement,) = props(template, "IngestQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    condition = statement["Condition"]
    bucket_arn = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
    assert condition["ArnLike"]["aws:SourceArn"] == bucket_arn
    assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# ------------------------------------------------------------------ ledger


def test_ledger_table_keys_and_index(template: dict[str, Any]) -> None:
    table = props(template, "LedgerTable")
    assert table["TableName"] == {"Ref": "DynamoTableName"}
    assert table["KeySchema"] == [{"AttributeName": "s3_key", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "prefix-event_time-index"
    assert index["KeySchema"] == [
        {"AttributeName": "prefix", "KeyType": "HASH"},
        {"AttributeName": "event_time", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"s3_key": "S", "prefix": "S", "event_time": "S"}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


# ------------------------------------------------------------------ IAM


def test_wildcard_detector_flags_allow_but_not_deny() -> None:
    assert wildcard_actions({"Effect": "Allow", "Action": ["s3:Get*", "s3:PutObject"]}) == [
        "s3:Get*"
    ]
    assert wildcard_actions({"Effect": "Allow", "Action": "*"}) == ["*"]
    assert wildcard_actions({"Effect": "Deny", "Action": "s3:*"}) == []


def test_function_role_has_no_wildcard_actions(template: dict[str, Any]) -> None:
    statements = role_statements(template)
    assert statements
    assert [a for s in statements for a in wildcard_actions(s)] == []


def test_function_role_uses_star_resource_only_for_xray(template: dict[str, Any]) -> None:
    for statement in role_statements(template):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= RESOURCE_STAR_ALLOWED


def test_function_role_grants(template: dict[str, Any]) -> None:
    granted = {a for s in role_statements(template) for a in as_list(s["Action"])}
    assert {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    } <= granted
    assert "cloudwatch:PutMetricData" not in granted


def test_resource_policies_allow_no_wildcard_actions(template: dict[str, Any]) -> None:
    """Only the key's account-root statement (the AWS default key policy) may say kms:*."""
    documents = [
        props(template, "UploadBucketPolicy")["PolicyDocument"],
        props(template, "IngestQueuePolicy")["PolicyDocument"],
        props(template, "QueueKey")["KeyPolicy"],
    ]
    for document in documents:
        for statement in document["Statement"]:
            if statement.get("Sid") == "AccountRootAdministers":
                principal = statement["Principal"]["AWS"]["Fn::Sub"]
                assert principal.endswith(":root")
                continue
            assert wildcard_actions(statement) == [], statement.get("Sid")


def test_key_lets_s3_encrypt_only_for_this_bucket(template: dict[str, Any]) -> None:
    statements = props(template, "QueueKey")["KeyPolicy"]["Statement"]
    (s3,) = [s for s in statements if s["Principal"] == {"Service": "s3.amazonaws.com"}]
    assert set(s3["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert s3["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"
    }
    assert s3["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# ------------------------------------------------------------------ alarms


ALARMS = {
    # logical id: (namespace, metric, statistic, comparison, threshold, period)
    "IngestErrorsAlarm": ("AWS/Lambda", "Errors", "Sum", "GreaterThanOrEqualToThreshold", 1, 300),
    "IngestThrottlesAlarm": (
        "AWS/Lambda",
        "Throttles",
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1,
        300,
    ),
    "DeadLetterQueueAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        "GreaterThanThreshold",
        0,
        60,
    ),
    "QueueAgeAlarm": (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        300,
        60,
    ),
}


@pytest.mark.parametrize(("logical_id", "expected"), ALARMS.items())
def test_alarm(template: dict[str, Any], logical_id: str, expected: tuple[Any, ...]) -> None:
    alarm = props(template, logical_id)
    assert "Metrics" not in alarm, "the local mode needs plain single-metric alarms"
    keys = ("Namespace", "MetricName", "Statistic", "ComparisonOperator", "Threshold", "Period")
    assert tuple(alarm[key] for key in keys) == expected
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    assert len(alarm["Dimensions"]) == 1


def test_alarm_dimensions_point_at_our_resources(template: dict[str, Any]) -> None:
    def dimension(logical_id: str) -> dict[str, Any]:
        return props(template, logical_id)["Dimensions"][0]

    function = {"Name": "FunctionName", "Value": {"Ref": "IngestFunction"}}
    assert dimension("IngestErrorsAlarm") == function
    assert dimension("IngestThrottlesAlarm") == function
    assert dimension("DeadLetterQueueAlarm") == {
        "Name": "QueueName",
        "Value": {"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]},
    }
    assert dimension("QueueAgeAlarm") == {
        "Name": "QueueName",
        "Value": {"Fn::GetAtt": ["IngestQueue", "QueueName"]},
    }


# ------------------------------------------------------------------ checkov skips


def test_every_checkov_skip_has_a_reason(template: dict[str, Any]) -> None:
    skips = checkov_skips(template)
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(skip.get("comment", "").strip()) >= 20, (logical_id, skip["id"])
