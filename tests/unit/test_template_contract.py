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

from filegate import template as cfn
from filegate.ops.releases import function_fingerprint
from filegate.uploads import stale_metric
from filegate.uploads.expiry import DEFAULT_OLDER_THAN
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
    "IngestFunctionVersion": "AWS::Lambda::Version",
    "IngestFunctionAlias": "AWS::Lambda::Alias",
    "IngestEventSourceMapping": "AWS::Lambda::EventSourceMapping",
    "LedgerTable": "AWS::DynamoDB::Table",
    "AlertsTopic": "AWS::SNS::Topic",
    "AlertsEmailSubscription": "AWS::SNS::Subscription",
    "IngestErrorsAlarm": "AWS::CloudWatch::Alarm",
    "IngestThrottlesAlarm": "AWS::CloudWatch::Alarm",
    "DeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
    "QueueAgeAlarm": "AWS::CloudWatch::Alarm",
    "PartnersTable": "AWS::DynamoDB::Table",
    "UploadApiFunctionLogGroup": "AWS::Logs::LogGroup",
    "UploadApiFunctionRole": "AWS::IAM::Role",
    "UploadApiFunction": "AWS::Lambda::Function",
    "UploadApiUrl": "AWS::Lambda::Url",
    "UploadApiUrlPermission": "AWS::Lambda::Permission",
    "UploadApiInvokePermission": "AWS::Lambda::Permission",
    "UploadApiErrorsAlarm": "AWS::CloudWatch::Alarm",
    "StaleUploadsFunctionLogGroup": "AWS::Logs::LogGroup",
    "StaleUploadsFunctionRole": "AWS::IAM::Role",
    "StaleUploadsFunction": "AWS::Lambda::Function",
    "StaleUploadsSchedule": "AWS::Events::Rule",
    "StaleUploadsSchedulePermission": "AWS::Lambda::Permission",
    "StaleUploadsAlarm": "AWS::CloudWatch::Alarm",
    "ReceiptKey": "AWS::KMS::Key",
    "ReceiptKeyAlias": "AWS::KMS::Alias",
    "UploadApiReceiptSigningPolicy": "AWS::IAM::Policy",
    # issue 12: verdict events
    "EventBus": "AWS::Events::EventBus",
    "EventArchive": "AWS::Events::Archive",
    "PublisherDeadLetterQueue": "AWS::SQS::Queue",
    "PublisherFunctionLogGroup": "AWS::Logs::LogGroup",
    "PublisherFunctionRole": "AWS::IAM::Role",
    "PublisherFunction": "AWS::Lambda::Function",
    "PublisherEventSourceMapping": "AWS::Lambda::EventSourceMapping",
    "PublisherErrorsAlarm": "AWS::CloudWatch::Alarm",
    "PublisherDeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
    # issue 12: partner webhooks
    "WebhookDeadLetterQueue": "AWS::SQS::Queue",
    "WebhookDeadLetterQueuePolicy": "AWS::SQS::QueuePolicy",
    "WebhookRole": "AWS::IAM::Role",
    "WebhookDeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
}
ENV_VARS = {
    "DDB_TABLE",
    "UPLOAD_BUCKET",
    "PARTNERS_TABLE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}
UPLOAD_API_ENV_VARS = {
    "DDB_TABLE",
    "PARTNERS_TABLE",
    "UPLOAD_BUCKET",
    "MULTIPART_THRESHOLD_BYTES",
    "PRESIGN_EXPIRY_SECONDS",
    "RECEIPT_KEY_ID",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}
ROLES = (
    "IngestFunctionRole",
    "UploadApiFunctionRole",
    "StaleUploadsFunctionRole",
    "PublisherFunctionRole",
)
OBJECTS_ARN = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"}
BUCKET_ARN = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
# Lambda keeps this much of an account's concurrency quota unreserved; new accounts start
# with a quota of 10 or 50 (Lambda Developer Guide, "Lambda quotas" / reserved concurrency).
UNRESERVED_MINIMUM = 100
NEW_ACCOUNT_QUOTAS = (10, 50)
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


def role_statements(
    template: dict[str, Any], role_id: str = "IngestFunctionRole"
) -> list[dict[str, Any]]:
    role = props(template, role_id)
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def grants(template: dict[str, Any], role_id: str) -> dict[str, list[Any]]:
    """Each granted action -> the resources it is granted on."""
    granted: dict[str, list[Any]] = {}
    for statement in role_statements(template, role_id):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    return granted


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
    for name in ("BucketName", "LambdaName", "DynamoTableName", "CodeBucket", "UploadPageOrigin"):
        assert parameters[name]["AllowedPattern"], name
    assert parameters["IngestReservedConcurrency"]["Default"] == ""
    assert parameters["UploadApiReservedConcurrency"]["Default"] == ""
    assert parameters["FunctionFingerprint"]["Default"] == ""


def test_memory_size_parameter_spans_lambdas_range(template: dict[str, Any]) -> None:
    memory = template["Parameters"]["IngestMemorySize"]
    assert (memory["Type"], memory["Default"]) == ("Number", 256)
    assert (memory["MinValue"], memory["MaxValue"]) == (128, 10240)  # Lambda's limits, MB
    assert props(template, "IngestFunction")["MemorySize"] == {"Ref": "IngestMemorySize"}


def test_upload_parameters(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    multipart = parameters["MultipartThresholdBytes"]
    assert (multipart["Type"], multipart["Default"]) == ("Number", 67108864)
    assert multipart["MinValue"] == 5 * 1024 * 1024  # S3's minimum part size
    expiry = parameters["PresignExpirySeconds"]
    assert (expiry["Type"], expiry["Default"]) == ("Number", 900)
    # Not SigV4's 7 days: a URL dies with the execution role's credentials; the same bound
    # as settings.MAX_PRESIGN_EXPIRY (tests/unit/test_upload_settings.py).
    assert (expiry["MinValue"], expiry["MaxValue"]) == (60, 3600)
    origin = parameters["UploadPageOrigin"]
    assert (origin["Type"], origin["Default"]) == ("String", "*")


def test_derived_names_stay_within_service_limits(template: dict[str, Any]) -> None:
    """LambdaName + "-upload-api" is a function name (64), DynamoTableName + "-partners" a
    table name (255)."""
    parameters = template["Parameters"]
    assert parameters["LambdaName"]["MaxLength"] + len("-upload-api") <= 64
    assert parameters["DynamoTableName"]["MaxLength"] + len("-partners") <= 255
    # the verdict-events publisher (64) and its dead-letter queue (80)
    assert parameters["LambdaName"]["MaxLength"] + len("-events") <= 64
    assert parameters["LambdaName"]["MaxLength"] + len("-events-dlq") <= 80


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("BucketName", "lambdandynam-static-01-01123581321", "Upper.case"),
        ("LambdaName", "lambda-static-01", "has space"),
        ("DynamoTableName", "dynamotable-static-01", "no/slash"),
        ("AlertEmail", "", "not-an-email"),
        ("AlertEmail", "ops@example.com", "a@b"),
        ("UploadPageOrigin", "*", "https://upload.example.com/"),
        ("UploadPageOrigin", "https://upload.example.com", "upload.example.com"),
        ("UploadPageOrigin", "http://localhost:8080", "https://example.com/page"),
    ],
)
def test_parameter_patterns_accept_the_runbooks_names(
    template: dict[str, Any], name: str, good: str, bad: str
) -> None:
    pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
    assert pattern.fullmatch(good)
    assert not pattern.fullmatch(bad)


def test_output_names(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == OUTPUTS


def test_upload_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["UploadApiUrl"]["Value"] == {"Fn::GetAtt": ["UploadApiUrl", "FunctionUrl"]}
    assert outputs["PartnersTableName"]["Value"] == {"Ref": "PartnersTable"}
    assert outputs["UploadApiFunctionName"]["Value"] == {"Ref": "UploadApiFunction"}


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
    assert esm["FunctionName"] == {"Ref": "IngestFunctionAlias"}  # the live alias
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BatchSize"] == 10
    assert esm["MaximumBatchingWindowInSeconds"] == 0
    assert 2 <= esm["ScalingConfig"]["MaximumConcurrency"] <= 1000  # Lambda's bounds


# ------------------------------------------------------------------ concurrency


def resolved(template: dict[str, Any], logical_id: str, **parameters: str) -> dict[str, Any]:
    """A resource's properties as CloudFormation would create them from ``parameters``."""
    refs = {n: str(s["Default"]) for n, s in template["Parameters"].items() if "Default" in s}
    refs.update({**STACK_VALUES, **parameters})
    resources = {name: name for name in template["Resources"]}
    resolver = cfn.Resolver(template, {**refs, **resources}, lambda r, a: f"{r}.{a}")
    resolved_properties: dict[str, Any] = resolver.resolve(
        template["Resources"][logical_id]["Properties"]
    )
    return resolved_properties


@pytest.mark.parametrize("function", ["IngestFunction", "UploadApiFunction"])
def test_nothing_is_reserved_by_default(template: dict[str, Any], function: str) -> None:
    """A new account (quota 10 or 50) cannot reserve any concurrency: Lambda keeps 100
    unreserved. The defaults must create there."""
    assert "ReservedConcurrentExecutions" not in resolved(template, function)
    for quota in NEW_ACCOUNT_QUOTAS:
        assert quota - UNRESERVED_MINIMUM < 0  # not even one execution could be reserved


def test_reservations_come_from_their_parameters(template: dict[str, Any]) -> None:
    ingest = resolved(template, "IngestFunction", IngestReservedConcurrency="20")
    api = resolved(template, "UploadApiFunction", UploadApiReservedConcurrency="10")
    assert ingest["ReservedConcurrentExecutions"] == "20"
    assert api["ReservedConcurrentExecutions"] == "10"


@pytest.mark.parametrize("parameter", ["IngestReservedConcurrency", "UploadApiReservedConcurrency"])
def test_a_reservation_is_empty_or_a_whole_number(template: dict[str, Any], parameter: str) -> None:
    pattern = re.compile(template["Parameters"][parameter]["AllowedPattern"])
    for good in ("", "5", "10", "20", "9999"):
        assert pattern.fullmatch(good), good
    for bad in ("0", "-1", "05", "1.5", "ten", "10000", " 10"):
        assert not pattern.fullmatch(bad), bad


def test_an_ingest_reservation_never_undercuts_the_mappings_concurrency(
    template: dict[str, Any],
) -> None:
    """Set below MaximumConcurrency, the reservation would throttle the mapping's invocations
    (throttled batches count as receives and end in the DLQ): the pattern refuses it."""
    maximum = props(template, "IngestEventSourceMapping")["ScalingConfig"]["MaximumConcurrency"]
    pattern = re.compile(template["Parameters"]["IngestReservedConcurrency"]["AllowedPattern"])
    accepted = [n for n in range(1, 10001) if pattern.fullmatch(str(n))]
    assert min(accepted) == maximum
    assert accepted == list(range(maximum, 10000))


def test_each_new_code_publishes_a_version_that_is_kept(template: dict[str, Any]) -> None:
    resource = template["Resources"]["IngestFunctionVersion"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert resource["Properties"]["FunctionName"] == {"Ref": "IngestFunction"}
    # A new CodeKey or FunctionFingerprint changes the Description: CloudFormation replaces
    # the version (publishes).
    description = resource["Properties"]["Description"]["Fn::Sub"]
    assert "${CodeKey}" in description
    assert "${FunctionFingerprint}" in description
    code_key = template["Parameters"]["CodeKey"]["MaxLength"]
    digest = template["Parameters"]["FunctionFingerprint"]["AllowedPattern"]
    assert digest == "^[0-9a-f]{0,16}$"
    described = description.replace("${CodeKey}", "").replace("${FunctionFingerprint}", "")
    assert len(described) + code_key + 16 <= 256  # Lambda's limit for a version's description
    names = list(template["Resources"])
    assert names.index("IngestFunction") < names.index("IngestFunctionVersion")


def test_live_alias_follows_the_published_version(template: dict[str, Any]) -> None:
    alias = props(template, "IngestFunctionAlias")
    assert alias["Name"] == "live"
    assert alias["FunctionName"] == {"Ref": "IngestFunction"}
    assert alias["FunctionVersion"] == {"Fn::GetAtt": ["IngestFunctionVersion", "Version"]}


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
    assert variables["UPLOAD_BUCKET"] == {"Ref": "UploadBucket"}  # the one bucket it records
    # where an upload leaving PENDING gives its partner's pending count back (docs/quotas.md)
    assert variables["PARTNERS_TABLE"] == {"Ref": "PartnersTable"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "filegate-ingest"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "filegate"


def test_log_group_is_the_functions_own(template: dict[str, Any]) -> None:
    log_group = props(template, "IngestFunctionLogGroup")
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${LambdaName}"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


# ------------------------------------------------------------------ upload API


def test_upload_api_function_configuration(template: dict[str, Any]) -> None:
    function = props(template, "UploadApiFunction")
    assert function["FunctionName"] == {"Fn::Sub": "${LambdaName}-upload-api"}
    assert function["Handler"] == "filegate.uploads.api.lambda_handler"
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    # The same zip as the ingestion function.
    assert function["Code"] == props(template, "IngestFunction")["Code"]
    assert function["Role"] == {"Fn::GetAtt": ["UploadApiFunctionRole", "Arn"]}
    assert (function["Timeout"], function["MemorySize"]) == (60, 256)
    # The API's throttle, when the account can afford a reservation.
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasUploadApiReservation",
            {"Ref": "UploadApiReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Resources"]["UploadApiFunction"]["DependsOn"] == "UploadApiFunctionLogGroup"


def test_upload_api_function_environment(template: dict[str, Any]) -> None:
    variables = props(template, "UploadApiFunction")["Environment"]["Variables"]
    assert variables == {
        "DDB_TABLE": {"Ref": "LedgerTable"},
        "PARTNERS_TABLE": {"Ref": "PartnersTable"},
        "UPLOAD_BUCKET": {"Ref": "UploadBucket"},
        "MULTIPART_THRESHOLD_BYTES": {"Ref": "MultipartThresholdBytes"},
        "PRESIGN_EXPIRY_SECONDS": {"Ref": "PresignExpirySeconds"},
        "RECEIPT_KEY_ID": {"Fn::GetAtt": ["ReceiptKey", "Arn"]},
        "POWERTOOLS_SERVICE_NAME": "filegate-upload-api",
        "POWERTOOLS_METRICS_NAMESPACE": "filegate",
        "LOG_LEVEL": "INFO",
    }
    assert set(variables) == UPLOAD_API_ENV_VARS


def test_upload_api_log_group_is_the_functions_own(template: dict[str, Any]) -> None:
    log_group = props(template, "UploadApiFunctionLogGroup")
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${LambdaName}-upload-api"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


def test_upload_api_url_is_public_with_cors_for_the_upload_page(template: dict[str, Any]) -> None:
    url = props(template, "UploadApiUrl")
    assert url["TargetFunctionArn"] == {"Fn::GetAtt": ["UploadApiFunction", "Arn"]}
    # NONE: the function authenticates partners by API key itself.
    assert url["AuthType"] == "NONE"
    assert url["Cors"] == {
        "AllowOrigins": [{"Ref": "UploadPageOrigin"}],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["content-type", "x-api-key"],
        "MaxAge": 300,
    }


def test_upload_api_url_permissions(template: dict[str, Any]) -> None:
    url_permission = props(template, "UploadApiUrlPermission")
    assert url_permission == {
        "FunctionName": {"Ref": "UploadApiFunction"},
        "Action": "lambda:InvokeFunctionUrl",
        "Principal": "*",
        "FunctionUrlAuthType": "NONE",
    }
    # Required for function URLs since October 2025; valid only through the function URL.
    invoke_permission = props(template, "UploadApiInvokePermission")
    assert invoke_permission == {
        "FunctionName": {"Ref": "UploadApiFunction"},
        "Action": "lambda:InvokeFunction",
        "Principal": "*",
        "InvokedViaFunctionUrl": True,
    }


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


def test_bucket_cors_lets_the_upload_page_put_parts_and_read_etags(
    template: dict[str, Any],
) -> None:
    (rule,) = props(template, "UploadBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [{"Ref": "UploadPageOrigin"}]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "PUT"]
    assert set(rule["AllowedHeaders"]) == {
        "content-type",
        "content-length",
        "content-md5",
        "x-amz-checksum-sha256",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-server-side-encryption",
        "x-amz-date",
        "x-amz-content-sha256",
        "authorization",
    }
    assert rule["ExposedHeaders"] == ["ETag"]  # the client needs each part's ETag to complete
    assert rule["MaxAge"] == 3000


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
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"prefix-event_time-index", "upload_id-index"}
    assert indexes["prefix-event_time-index"]["KeySchema"] == [
        {"AttributeName": "prefix", "KeyType": "HASH"},
        {"AttributeName": "event_time", "KeyType": "RANGE"},
    ]
    # Sparse: only partner uploads carry upload_id.
    assert indexes["upload_id-index"]["KeySchema"] == [
        {"AttributeName": "upload_id", "KeyType": "HASH"}
    ]
    for index in indexes.values():
        assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"s3_key": "S", "prefix": "S", "event_time": "S", "upload_id": "S"}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    # the publisher needs both images to tell a verdict from a bookkeeping write
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_partners_table(template: dict[str, Any]) -> None:
    table = props(template, "PartnersTable")
    assert table["TableName"] == {"Fn::Sub": "${DynamoTableName}-partners"}
    assert table["KeySchema"] == [{"AttributeName": "partner_id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "partner_id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


@pytest.mark.parametrize("logical_id", ["UploadBucket", "LedgerTable", "PartnersTable"])
def test_data_is_retained_on_stack_deletion(template: dict[str, Any], logical_id: str) -> None:
    """Kept when the stack is deleted or replaces them, but not when the first create rolls
    back: what that create made goes, so a retry with the same names can succeed."""
    resource = template["Resources"][logical_id]
    assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_bucket_expires_noncurrent_versions_and_lone_delete_markers(
    template: dict[str, Any],
) -> None:
    rules = props(template, "UploadBucket")["LifecycleConfiguration"]["Rules"]
    by_id = {rule["Id"]: rule for rule in rules}
    expiry = by_id["ExpireNoncurrentVersions"]
    assert expiry["Status"] == "Enabled"
    assert expiry["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionExpirationDays"}
    }
    assert expiry["ExpiredObjectDeleteMarker"] is True
    # Current versions are never expired: the ledger and reconcile describe them.
    for rule in rules:
        assert not {"ExpirationInDays", "ExpirationDate", "Transitions"} & set(rule), rule["Id"]
    days = template["Parameters"]["NoncurrentVersionExpirationDays"]
    assert (days["Type"], days["Default"], days["MinValue"]) == ("Number", 30, 1)
    # A message can wait in the DLQ for 14 days before a replay heads its version.
    retention = props(template, "IngestDeadLetterQueue")["MessageRetentionPeriod"]
    assert days["Default"] * 86400 > retention


# ------------------------------------------------------------------ IAM


def test_wildcard_detector_flags_allow_but_not_deny() -> None:
    assert wildcard_actions({"Effect": "Allow", "Action": ["s3:Get*", "s3:PutObject"]}) == [
        "s3:Get*"
    ]
    assert wildcard_actions({"Effect": "Allow", "Action": "*"}) == ["*"]
    assert wildcard_actions({"Effect": "Deny", "Action": "s3:*"}) == []


@pytest.mark.parametrize("role_id", ROLES)
def test_function_role_has_no_wildcard_actions(template: dict[str, Any], role_id: str) -> None:
    statements = role_statements(template, role_id)
    assert statements
    assert [a for s in statements for a in wildcard_actions(s)] == []


@pytest.mark.parametrize("role_id", ROLES)
def test_function_role_uses_star_resource_only_for_xray(
    template: dict[str, Any], role_id: str
) -> None:
    for statement in role_statements(template, role_id):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= RESOURCE_STAR_ALLOWED


def test_function_role_may_list_the_bucket_so_a_missing_key_is_404(
    template: dict[str, Any],
) -> None:
    """S3 API Reference, HeadObject, Permissions: without s3:ListBucket on the bucket a missing
    key answers 403, not 404, and delete-before-create would fail instead of being recorded."""
    granted = grants(template, "IngestFunctionRole")
    assert granted["s3:ListBucket"] == [BUCKET_ARN]  # the bucket, not its objects
    assert granted["s3:GetObjectVersion"] == [OBJECTS_ARN]  # HeadObject with a VersionId
    assert "s3:ListBucketVersions" not in granted  # HeadObject's page does not ask for it


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


def test_function_role_may_give_a_pending_quota_back_and_nothing_more_on_partners(
    template: dict[str, Any],
) -> None:
    partners = {"Fn::GetAtt": ["PartnersTable", "Arn"]}
    granted = grants(template, "IngestFunctionRole")
    assert [action for action, arns in granted.items() if partners in arns] == [
        "dynamodb:UpdateItem"
    ]


def test_upload_api_role_grants_exactly(template: dict[str, Any]) -> None:
    ledger = [
        {"Fn::GetAtt": ["LedgerTable", "Arn"]},
        {"Fn::Sub": "${LedgerTable.Arn}/index/*"},
    ]
    partners = {"Fn::GetAtt": ["PartnersTable", "Arn"]}
    assert grants(template, "UploadApiFunctionRole") == {
        "dynamodb:GetItem": [partners, *ledger],
        "dynamodb:PutItem": ledger,
        # on the partners table: a key stored as scrypt is rewritten as HMAC on its next use
        "dynamodb:UpdateItem": [partners, *ledger],
        "dynamodb:Query": ledger,
        # Presigned URLs carry these: s3:PutObject also authorises the multipart calls
        # (CreateMultipartUpload, UploadPart, CompleteMultipartUpload).
        "s3:PutObject": [OBJECTS_ARN],
        "s3:AbortMultipartUpload": [OBJECTS_ARN],
        "s3:ListMultipartUploadParts": [OBJECTS_ARN],
        "logs:CreateLogStream": [{"Fn::GetAtt": ["UploadApiFunctionLogGroup", "Arn"]}],
        "logs:PutLogEvents": [{"Fn::GetAtt": ["UploadApiFunctionLogGroup", "Arn"]}],
        "xray:PutTraceSegments": ["*"],
        "xray:PutTelemetryRecords": ["*"],
    }


def test_upload_api_role_is_assumed_only_by_lambda(template: dict[str, Any]) -> None:
    (statement,) = props(template, "UploadApiFunctionRole")["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"


def test_resource_policies_allow_no_wildcard_actions(template: dict[str, Any]) -> None:
    """Only the key's account-root statement (the AWS default key policy) may say kms:*."""
    documents = [
        props(template, "UploadBucketPolicy")["PolicyDocument"],
        props(template, "IngestQueuePolicy")["PolicyDocument"],
        props(template, "QueueKey")["KeyPolicy"],
        props(template, "ReceiptKey")["KeyPolicy"],
    ]
    for document in documents:
        for statement in document["Statement"]:
            if statement.get("Sid") == "AccountRootAdministers":
                principal = statement["Principal"]["AWS"]["Fn::Sub"]
                assert principal.endswith(":root")
                continue
            assert wildcard_actions(statement) == [], statement.get("Sid")


def test_key_lets_s3_encrypt_as_aws_documents_it(template: dict[str, Any]) -> None:
    """S3 User Guide, "Granting permissions to publish event notification messages to a
    destination" (AWS KMS key policy): the statement has no condition, and no page documents
    aws:SourceArn/aws:SourceAccount on S3's calls to the key. A condition on them could make
    S3's test message fail and the bucket's create with it. The queue policy decides which
    bucket may send."""
    statements = props(template, "QueueKey")["KeyPolicy"]["Statement"]
    (s3,) = [s for s in statements if s["Principal"] == {"Service": "s3.amazonaws.com"}]
    assert set(s3["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert s3["Resource"] == "*"
    assert "Condition" not in s3


def test_receipt_key_is_an_asymmetric_signing_key(template: dict[str, Any]) -> None:
    """Issue 12: receipts are signed with ECDSA on P-256 (ECDSA_SHA_256); KMS cannot rotate an
    asymmetric key, so rotation is off (AWS KMS Developer Guide, "Rotate AWS KMS keys")."""
    key = props(template, "ReceiptKey")
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert key["EnableKeyRotation"] is False
    alias = props(template, "ReceiptKeyAlias")
    assert alias["TargetKeyId"] == {"Ref": "ReceiptKey"}
    assert alias["AliasName"] == {"Fn::Sub": "alias/filegate/${LambdaName}-receipts"}


def test_receipt_key_lets_the_upload_api_sign_and_read_the_public_key_only(
    template: dict[str, Any],
) -> None:
    role = {"AWS": {"Fn::GetAtt": ["UploadApiFunctionRole", "Arn"]}}
    statements = props(template, "ReceiptKey")["KeyPolicy"]["Statement"]
    granted = {
        action: statement.get("Condition")
        for statement in statements
        if statement["Principal"] == role
        for action in as_list(statement["Action"])
    }
    assert granted == {
        "kms:Sign": {
            "StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}
        },
        "kms:GetPublicKey": None,
    }
    others = [s for s in statements if s["Principal"] != role]
    assert [s["Sid"] for s in others] == ["AccountRootAdministers"]
    policy = props(template, "UploadApiReceiptSigningPolicy")
    assert policy["Roles"] == [{"Ref": "UploadApiFunctionRole"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert set(statement["Action"]) == {"kms:Sign", "kms:GetPublicKey"}
    assert statement["Resource"] == {"Fn::GetAtt": ["ReceiptKey", "Arn"]}


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
    "UploadApiErrorsAlarm": (
        "AWS/Lambda",
        "Errors",
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1,
        300,
    ),
    "PublisherErrorsAlarm": (
        "AWS/Lambda",
        "Errors",
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1,
        300,
    ),
    "PublisherDeadLetterQueueAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        "GreaterThanThreshold",
        0,
        60,
    ),
    "WebhookDeadLetterQueueAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        "GreaterThanThreshold",
        0,
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
    assert dimension("UploadApiErrorsAlarm") == {
        "Name": "FunctionName",
        "Value": {"Ref": "UploadApiFunction"},
    }


# ------------------------------------------------------------------ verdict events


def test_the_publisher_reads_the_ledger_stream_with_bounded_retries(
    template: dict[str, Any],
) -> None:
    mapping = props(template, "PublisherEventSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    assert mapping["FunctionName"] == {"Ref": "PublisherFunction"}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 100
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["PublisherDeadLetterQueue", "Arn"]}}
    }
    assert props(template, "PublisherDeadLetterQueue")["KmsMasterKeyId"] == {"Ref": "QueueKey"}


def test_the_publisher_puts_on_the_stacks_bus_which_is_archived(template: dict[str, Any]) -> None:
    function = props(template, "PublisherFunction")
    assert function["Handler"] == "filegate.publish.handler.lambda_handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Code"] == props(template, "IngestFunction")["Code"]
    assert function["Environment"]["Variables"]["EVENT_BUS_NAME"] == {
        "Fn::GetAtt": ["EventBus", "Name"]
    }
    assert props(template, "EventArchive")["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert template["Outputs"]["EventBusName"]["Value"] == {"Fn::GetAtt": ["EventBus", "Name"]}


def test_publisher_role_grants_exactly(template: dict[str, Any]) -> None:
    granted = grants(template, "PublisherFunctionRole")
    stream = [{"Fn::Sub": "${LedgerTable.Arn}/stream/*"}]
    assert granted == {
        "dynamodb:DescribeStream": stream,
        "dynamodb:GetRecords": stream,
        "dynamodb:GetShardIterator": stream,
        "dynamodb:ListStreams": stream,
        "events:PutEvents": [{"Fn::GetAtt": ["EventBus", "Arn"]}],
        "secretsmanager:GetSecretValue": [
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}"
                ":${AWS::AccountId}:secret:${LambdaName}/webhooks/*"
            }
        ],
        "sqs:SendMessage": [{"Fn::GetAtt": ["PublisherDeadLetterQueue", "Arn"]}],
        "kms:GenerateDataKey": [{"Fn::GetAtt": ["QueueKey", "Arn"]}],
        "kms:Decrypt": [{"Fn::GetAtt": ["QueueKey", "Arn"]}],
        "logs:CreateLogStream": [{"Fn::GetAtt": ["PublisherFunctionLogGroup", "Arn"]}],
        "logs:PutLogEvents": [{"Fn::GetAtt": ["PublisherFunctionLogGroup", "Arn"]}],
        "xray:PutTraceSegments": ["*"],
        "xray:PutTelemetryRecords": ["*"],
    }


# ------------------------------------------------------------------ checkov skips


EXPECTED_SKIPS = {
    ("UploadBucket", "CKV_AWS_18"),
    ("LedgerTable", "CKV_AWS_119"),
    ("PartnersTable", "CKV_AWS_119"),
    ("IngestFunctionLogGroup", "CKV_AWS_158"),
    ("IngestFunction", "CKV_AWS_116"),
    ("IngestFunction", "CKV_AWS_117"),
    ("IngestFunction", "CKV_AWS_173"),
    ("UploadApiFunctionLogGroup", "CKV_AWS_158"),
    ("UploadApiFunction", "CKV_AWS_116"),
    ("UploadApiFunction", "CKV_AWS_117"),
    ("UploadApiFunction", "CKV_AWS_173"),
    # AuthType NONE: the function authenticates partners by API key.
    ("UploadApiUrl", "CKV_AWS_258"),
    # issue 11: the hourly stale-uploads counter, argued like the other functions'.
    ("StaleUploadsFunctionLogGroup", "CKV_AWS_158"),
    ("StaleUploadsFunction", "CKV_AWS_115"),
    ("StaleUploadsFunction", "CKV_AWS_116"),
    ("StaleUploadsFunction", "CKV_AWS_117"),
    ("StaleUploadsFunction", "CKV_AWS_173"),
    # issue 12: the verdict-events publisher, argued like the other functions'.
    ("PublisherFunctionLogGroup", "CKV_AWS_158"),
    ("PublisherFunction", "CKV_AWS_115"),
    ("PublisherFunction", "CKV_AWS_116"),
    ("PublisherFunction", "CKV_AWS_117"),
    ("PublisherFunction", "CKV_AWS_173"),
    # issue 12: EventBridge cannot send to a dead-letter queue under a customer managed key
    # without a key-policy grant; SSE-SQS encrypts it.
    ("WebhookDeadLetterQueue", "CKV_AWS_27"),
}


def test_checkov_skips_are_the_documented_ones(template: dict[str, Any]) -> None:
    """A new skip must be argued in docs/template.md, not slipped in."""
    assert {(logical_id, skip["id"]) for logical_id, skip in checkov_skips(template)} == (
        EXPECTED_SKIPS
    )


def test_every_checkov_skip_has_a_reason(template: dict[str, Any]) -> None:
    skips = checkov_skips(template)
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(skip.get("comment", "").strip()) >= 20, (logical_id, skip["id"])


# ------------------------------------------------------------------ configuration fingerprint


STACK_VALUES = {
    "BucketName": "uploads",
    "LambdaName": "ingest",
    "DynamoTableName": "ledger",
    "CodeBucket": "artifacts",
    "CodeKey": "lambda/0123.zip",
}


def fingerprint(document: dict[str, Any] | None = None, **values: str) -> str:
    return function_fingerprint(document or cfn.load(), {**STACK_VALUES, **values}, cfn.Resolver)


def edited(change: Any) -> dict[str, Any]:
    document = cfn.load()
    change(document["Resources"])
    return document


def test_fingerprint_is_stable_and_short() -> None:
    assert fingerprint() == fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint())


@pytest.mark.parametrize(
    "values",
    [
        {"IngestMemorySize": "512"},
        {"CodeKey": "lambda/4567.zip"},
        {"DynamoTableName": "other-ledger"},  # DDB_TABLE changes
        {"LambdaName": "renamed"},
    ],
)
def test_a_change_to_the_versioned_configuration_changes_the_fingerprint(
    values: dict[str, str],
) -> None:
    assert fingerprint(**values) != fingerprint()


@pytest.mark.parametrize(
    "values",
    [
        # The function's, not a version's: publishing on them alone would fail on AWS ("A
        # version for this Lambda function exists").
        {"IngestReservedConcurrency": "20"},
        {"UploadApiReservedConcurrency": "10"},
        {"LogRetentionInDays": "7"},
        {"AlertEmail": "ops@example.com"},
        {"NoncurrentVersionExpirationDays": "90"},
        {"FunctionFingerprint": "abc"},
        {"IngestMemorySize": "256"},  # the default, spelled out
    ],
)
def test_a_change_elsewhere_keeps_the_fingerprint(values: dict[str, str]) -> None:
    assert fingerprint(**values) == fingerprint()


def test_a_template_change_to_the_functions_environment_or_role_counts() -> None:
    def add_variable(resources: dict[str, Any]) -> None:
        variables = resources["IngestFunction"]["Properties"]["Environment"]["Variables"]
        variables["FILEGATE_EXTRA"] = {"Ref": "UploadBucket"}

    def other_role(resources: dict[str, Any]) -> None:
        resources["IngestFunction"]["Properties"]["Role"] = {"Fn::GetAtt": ["OtherRole", "Arn"]}
        resources["OtherRole"] = resources["IngestFunctionRole"]

    def rename_role(resources: dict[str, Any]) -> None:  # a new role: a new ARN
        resources["IngestFunctionRole"]["Properties"]["RoleName"] = "ingest-role"

    def timeout(resources: dict[str, Any]) -> None:
        resources["IngestFunction"]["Properties"]["Timeout"] = 60

    for change in (add_variable, other_role, rename_role, timeout):
        assert fingerprint(edited(change)) != fingerprint(), change.__name__


def test_a_literal_and_a_parameter_of_the_same_value_are_one_configuration() -> None:
    """CloudFormation passes 256, "256" and a parameter resolving to "256" alike: moving a
    literal into a parameter with that default must not publish (Lambda would refuse)."""

    def literal_memory(resources: dict[str, Any]) -> None:
        resources["IngestFunction"]["Properties"]["MemorySize"] = 256

    def quoted_timeout(resources: dict[str, Any]) -> None:
        resources["IngestFunction"]["Properties"]["Timeout"] = "30"

    for change in (literal_memory, quoted_timeout):
        assert fingerprint(edited(change)) == fingerprint(), change.__name__


def test_a_role_policy_change_keeps_the_fingerprint() -> None:
    """A role's policies apply to every version at once; the version itself is unchanged."""

    def narrower(resources: dict[str, Any]) -> None:
        resources["IngestFunctionRole"]["Properties"]["Policies"][0]["PolicyName"] = "other"

    assert fingerprint(edited(narrower)) == fingerprint()


def test_incomplete_multipart_uploads_are_aborted_after_the_expire_threshold(
    template: dict[str, Any],
) -> None:
    """The lifecycle rule is the safety net behind `filegate uploads expire` and the stale
    alarm: it aborts later than both, and long after any declaration's URLs have died."""
    rules = props(template, "UploadBucket")["LifecycleConfiguration"]["Rules"]
    (abort,) = [rule for rule in rules if "AbortIncompleteMultipartUpload" in rule]
    assert abort["Status"] == "Enabled"
    days = abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    stale = int(
        props(template, "StaleUploadsFunction")["Environment"]["Variables"]["STALE_UPLOAD_SECONDS"]
    )
    presign_max = template["Parameters"]["PresignExpirySeconds"]["MaxValue"]
    assert stale == DEFAULT_OLDER_THAN.total_seconds()
    assert presign_max < stale < days * 86_400


def test_the_stale_uploads_alarm_watches_what_the_scheduled_function_publishes(
    template: dict[str, Any],
) -> None:
    function = props(template, "StaleUploadsFunction")
    assert function["Handler"] == "filegate.uploads.stale_metric.lambda_handler"
    assert function["Environment"]["Variables"]["UPLOAD_BUCKET"] == {"Ref": "UploadBucket"}
    schedule = props(template, "StaleUploadsSchedule")
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["StaleUploadsFunction", "Arn"]}
    permission = props(template, "StaleUploadsSchedulePermission")
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["StaleUploadsSchedule", "Arn"]}
    alarm = props(template, "StaleUploadsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        stale_metric.NAMESPACE,
        stale_metric.STALE_METRIC,
    )
    assert alarm["Dimensions"] == [
        {"Name": stale_metric.DIMENSION, "Value": {"Ref": "UploadBucket"}}
    ]
    assert alarm["Period"] == 3600  # the schedule's rate
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    # the role may list the bucket's open uploads and write its logs, nothing else
    assert grants(template, "StaleUploadsFunctionRole") == {
        "s3:ListBucketMultipartUploads": [BUCKET_ARN],
        "logs:CreateLogStream": [{"Fn::GetAtt": ["StaleUploadsFunctionLogGroup", "Arn"]}],
        "logs:PutLogEvents": [{"Fn::GetAtt": ["StaleUploadsFunctionLogGroup", "Arn"]}],
    }


# ------------------------------------------------------------------ partner webhooks


def test_webhook_role_may_only_invoke_the_stacks_webhook_destinations(
    template: dict[str, Any],
) -> None:
    trust = props(template, "WebhookRole")["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
    destinations = (
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
        ":api-destination/${LambdaName}-wh-*"
    )
    assert grants(template, "WebhookRole") == {
        "events:InvokeApiDestination": [{"Fn::Sub": destinations}]
    }


def test_webhook_dead_letter_queue_takes_messages_from_the_stacks_rules_only(
    template: dict[str, Any],
) -> None:
    policy = props(template, "WebhookDeadLetterQueuePolicy")
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert policy["Queues"] == [{"Ref": "WebhookDeadLetterQueue"}]
    assert (statement["Principal"], statement["Action"]) == (
        {"Service": "events.amazonaws.com"},
        "sqs:SendMessage",
    )
    rules = (
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${LambdaName}-events/*"
    )
    assert statement["Condition"] == {"ArnLike": {"aws:SourceArn": {"Fn::Sub": rules}}}
    assert props(template, "EventBus")["Name"] == {"Fn::Sub": "${LambdaName}-events"}
    env = props(template, "PublisherFunction")["Environment"]["Variables"]
    assert env["WEBHOOK_SECRET_PREFIX"] == {"Fn::Sub": "${LambdaName}/webhooks/"}
