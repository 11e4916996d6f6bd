"""The template deploys into moto (in-process) and its outputs name real emulated resources.

moto skips some resource types silently (queue, bucket and topic policies, the email
subscription, the alarms) and ignores some properties (among them the bucket's CORS rules);
the local mode applies those itself. These tests check only what moto does create.

moto 5.2.5 has no CloudFormation support for ``AWS::Lambda::Url``, and unlike the types above
it cannot skip it: the ``UploadApiUrl`` output's ``!GetAtt UploadApiUrl.FunctionUrl`` makes
``create_stack`` fail. ``FunctionUrlSupport`` below gives moto that type for the duration of
a test, through moto's own ``create_function_url_config``; the local emulator needs the same.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.cloudformation import parsing

from filegate.local.cfn_models import MODELS
from tests.contract import OUTPUTS

REGION = "eu-central-1"
TEMPLATE = Path(str(files("filegate") / "templates" / "s3-lambda-dynamo.yml"))
CODE_BUCKET = "filegate-code-test"
CODE_KEY = "ingest/ingest.zip"
PARAMETERS = {
    "BucketName": "lambdandynam-static-01-01123581321",
    "LambdaName": "lambda-static-01",
    "DynamoTableName": "dynamotable-static-01",
    "CodeBucket": CODE_BUCKET,
    "CodeKey": CODE_KEY,
    "AlertEmail": "ops@example.com",
}

UPLOAD_API_NAME = f"{PARAMETERS['LambdaName']}-upload-api"
PARTNERS_TABLE = f"{PARAMETERS['DynamoTableName']}-partners"

# moto warns once per resource type it does not emulate; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


@pytest.fixture
def url_support(monkeypatch: pytest.MonkeyPatch) -> None:
    models = {**parsing.get_model_map(), **MODELS}
    monkeypatch.setattr(parsing, "get_model_map", lambda: models)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, url_support: None) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("filegate/ingest/handler.py", "def lambda_handler(event, context):\n")
    return buffer.getvalue()


def deploy(stack_name: str = "filegate", **overrides: str) -> dict[str, str]:
    """Upload the code zip, create the stack, return its outputs."""
    s3 = client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=lambda_zip())
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in {**PARAMETERS, **overrides}.items()
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture
def outputs(aws: None) -> dict[str, str]:
    return deploy()


def test_plain_moto_cannot_create_the_stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """What moto 5.2.5 really does without FunctionUrlSupport: it skips AWS::Lambda::Url, then
    fails on the output that reads its FunctionUrl (an AttributeError; a 500 over HTTP)."""
    models = {k: v for k, v in parsing.get_model_map().items() if k != "AWS::Lambda::Url"}
    monkeypatch.setattr(parsing, "get_model_map", lambda: models)
    with pytest.raises(AttributeError, match="has_cfn_attr"):
        deploy()


def test_template_validates(aws: None) -> None:
    # moto's validate_template runs cfn-lint but returns no Parameters (real AWS does).
    cloudformation = client("cloudformation")
    result = cloudformation.validate_template(TemplateBody=TEMPLATE.read_text())
    assert result["Description"].startswith("filegate ingestion pipeline")


def test_validation_rejects_a_broken_template(aws: None) -> None:
    broken = TEMPLATE.read_text().replace("Type: AWS::SQS::Queue", "Type: AWS::SQS::Queueue")
    with pytest.raises(ClientError, match="ValidationError"):
        client("cloudformation").validate_template(TemplateBody=broken)


def test_stack_creates_with_every_output(outputs: dict[str, str]) -> None:
    assert set(outputs) == OUTPUTS
    assert outputs["BucketName"] == PARAMETERS["BucketName"]
    assert outputs["TableName"] == PARAMETERS["DynamoTableName"]
    assert outputs["FunctionName"] == PARAMETERS["LambdaName"]
    assert outputs["PartnersTableName"] == PARTNERS_TABLE
    assert outputs["UploadApiFunctionName"] == UPLOAD_API_NAME
    assert outputs["UploadApiUrl"].startswith("https://")
    assert outputs["UploadApiUrl"].endswith(f".lambda-url.{REGION}.on.aws/")


def test_stack_creates_without_alert_email(aws: None) -> None:
    outputs = deploy(AlertEmail="")
    assert set(outputs) == OUTPUTS


def test_ledger_table_has_key_and_index(outputs: dict[str, str]) -> None:
    table = client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "s3_key", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"prefix-event_time-index", "upload_id-index"}
    assert indexes["prefix-event_time-index"]["KeySchema"] == [
        {"AttributeName": "prefix", "KeyType": "HASH"},
        {"AttributeName": "event_time", "KeyType": "RANGE"},
    ]
    assert indexes["upload_id-index"]["KeySchema"] == [
        {"AttributeName": "upload_id", "KeyType": "HASH"}
    ]
    for index in indexes.values():
        assert index["Projection"] == {"ProjectionType": "ALL"}


def test_upload_id_index_is_sparse(outputs: dict[str, str]) -> None:
    dynamodb = client("dynamodb")
    table = outputs["TableName"]
    dynamodb.put_item(TableName=table, Item={"s3_key": {"S": "acme/ingested.csv"}})
    dynamodb.put_item(
        TableName=table,
        Item={"s3_key": {"S": "acme/uploaded.csv"}, "upload_id": {"S": "u-1"}},
    )
    found = dynamodb.query(
        TableName=table,
        IndexName="upload_id-index",
        KeyConditionExpression="upload_id = :id",
        ExpressionAttributeValues={":id": {"S": "u-1"}},
    )
    assert [item["s3_key"]["S"] for item in found["Items"]] == ["acme/uploaded.csv"]
    everything = dynamodb.scan(TableName=table, IndexName="upload_id-index")
    assert everything["Count"] == 1


def test_partners_table(outputs: dict[str, str]) -> None:
    table = client("dynamodb").describe_table(TableName=outputs["PartnersTableName"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "partner_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_queue_redrives_to_the_dead_letter_queue(outputs: dict[str, str]) -> None:
    sqs = client("sqs")
    queue = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])
    attributes = queue["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] >= 5
    assert redrive["deadLetterTargetArn"] == outputs["DeadLetterQueueArn"]
    assert attributes["QueueArn"] == outputs["QueueArn"]
    assert int(attributes["VisibilityTimeout"]) == 180
    dlq = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["All"])
    assert dlq["Attributes"]["QueueArn"] == outputs["DeadLetterQueueArn"]
    assert int(dlq["Attributes"]["MessageRetentionPeriod"]) == 1209600


def test_queues_are_encrypted_with_the_stack_key(outputs: dict[str, str]) -> None:
    # Not describe_key: moto keeps a template's KeyPolicy as a dict and describe_key then
    # fails with a TypeError (get_key_policy answers NotFound) on a key made by CloudFormation.
    resource = client("cloudformation").describe_stack_resource(
        StackName="filegate", LogicalResourceId="QueueKey"
    )
    key_id = resource["StackResourceDetail"]["PhysicalResourceId"]
    sqs = client("sqs")
    for url in (outputs["QueueUrl"], outputs["DeadLetterQueueUrl"]):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])
        assert attributes["Attributes"]["KmsMasterKeyId"] == key_id
    assert client("kms").get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    topic = client("sns").get_topic_attributes(TopicArn=outputs["AlertsTopicArn"])
    assert topic["Attributes"]["KmsMasterKeyId"] == key_id


def test_function_configuration(outputs: dict[str, str]) -> None:
    lambda_ = client("lambda")
    function = lambda_.get_function(FunctionName=outputs["FunctionName"])["Configuration"]
    assert function["FunctionArn"] == outputs["FunctionArn"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "filegate.ingest.handler.lambda_handler"
    assert (function["Timeout"], function["MemorySize"]) == (30, 256)
    assert function["Environment"]["Variables"]["DDB_TABLE"] == outputs["TableName"]


def test_nothing_is_reserved_by_default(outputs: dict[str, str]) -> None:
    """A new account's quota (10 or 50) leaves nothing to reserve: Lambda keeps 100."""
    lambda_ = client("lambda")
    for name in (outputs["FunctionName"], outputs["UploadApiFunctionName"]):
        concurrency = lambda_.get_function_concurrency(FunctionName=name)
        assert "ReservedConcurrentExecutions" not in concurrency, name


def test_reservations_and_memory_when_asked(aws: None) -> None:
    outputs = deploy(
        IngestReservedConcurrency="20", UploadApiReservedConcurrency="10", IngestMemorySize="512"
    )
    lambda_ = client("lambda")
    ingest = lambda_.get_function_concurrency(FunctionName=outputs["FunctionName"])
    api = lambda_.get_function_concurrency(FunctionName=outputs["UploadApiFunctionName"])
    assert (ingest["ReservedConcurrentExecutions"], api["ReservedConcurrentExecutions"]) == (20, 10)
    function = lambda_.get_function_configuration(FunctionName=outputs["FunctionName"])
    assert function["MemorySize"] == 512


def test_upload_api_function_configuration(outputs: dict[str, str]) -> None:
    lambda_ = client("lambda")
    name = outputs["UploadApiFunctionName"]
    function = lambda_.get_function(FunctionName=name)["Configuration"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "filegate.uploads.api.lambda_handler"
    assert (function["Timeout"], function["MemorySize"]) == (60, 256)
    assert function["Environment"]["Variables"] == {
        "DDB_TABLE": outputs["TableName"],
        "PARTNERS_TABLE": outputs["PartnersTableName"],
        "UPLOAD_BUCKET": outputs["BucketName"],
        # moto keeps a Number parameter's type: AWS Lambda would hold the strings "67108864"
        # and "900". The local runtime must turn values into strings before using them.
        "MULTIPART_THRESHOLD_BYTES": 67108864,
        "PRESIGN_EXPIRY_SECONDS": 900,
        "RECEIPT_KEY_ID": outputs["ReceiptKeyArn"],
        "POWERTOOLS_SERVICE_NAME": "filegate-upload-api",
        "POWERTOOLS_METRICS_NAMESPACE": "filegate",
        "LOG_LEVEL": "INFO",
    }


def test_upload_api_url_and_its_permissions(outputs: dict[str, str]) -> None:
    lambda_ = client("lambda")
    name = outputs["UploadApiFunctionName"]
    url = lambda_.get_function_url_config(FunctionName=name)
    assert url["FunctionUrl"] + "/" == outputs["UploadApiUrl"]
    assert url["AuthType"] == "NONE"
    assert url["Cors"] == {
        "AllowOrigins": ["*"],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["content-type", "x-api-key"],
        "MaxAge": 300,
    }
    # moto records AWS::Lambda::Permission properties as they are, without turning
    # FunctionUrlAuthType / InvokedViaFunctionUrl into conditions, and never enforces them.
    policy = json.loads(lambda_.get_policy(FunctionName=name)["Policy"])
    statements = {s["Action"]: s for s in policy["Statement"]}
    assert set(statements) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert statements["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert statements["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    assert {s["Principal"] for s in statements.values()} == {"*"}


def test_moto_ignores_the_bucket_cors_rules(outputs: dict[str, str]) -> None:
    """The local mode must apply CorsConfiguration itself (put_bucket_cors)."""
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        client("s3").get_bucket_cors(Bucket=outputs["BucketName"])


def test_event_source_mapping(outputs: dict[str, str]) -> None:
    mappings = client("lambda").list_event_source_mappings(EventSourceArn=outputs["QueueArn"])
    (mapping,) = mappings["EventSourceMappings"]
    # It invokes the live alias; moto records the version the alias named at creation.
    assert mapping["FunctionArn"] == f"{outputs['FunctionArn']}:1"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 0
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_the_first_version_is_published_and_live(outputs: dict[str, str]) -> None:
    lambda_ = client("lambda")
    versions = lambda_.list_versions_by_function(FunctionName=outputs["FunctionName"])
    published = {v["Version"]: v for v in versions["Versions"]}
    assert set(published) == {"$LATEST", "1"}
    # Deployed by hand (not `filegate deploy`): FunctionFingerprint keeps its empty default.
    assert published["1"]["Description"] == f"filegate ingestion, configuration , code {CODE_KEY}"
    alias = lambda_.get_alias(FunctionName=outputs["FunctionName"], Name="live")
    assert alias["FunctionVersion"] == "1"


def test_bucket_log_group_and_topic_exist(outputs: dict[str, str]) -> None:
    client("s3").head_bucket(Bucket=outputs["BucketName"])
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
    assert retention[f"/aws/lambda/{outputs['FunctionName']}"] == 30
    assert retention[f"/aws/lambda/{outputs['UploadApiFunctionName']}"] == 30
    client("sns").get_topic_attributes(TopicArn=outputs["AlertsTopicArn"])


def test_the_receipt_key_is_the_asymmetric_key_the_template_declares(
    outputs: dict[str, str],
) -> None:
    """Issue 12: ECC_NIST_P256 / SIGN_VERIFY, signing with ECDSA_SHA_256 (local/cfn_models.py
    creates it as declared; moto's own model makes every key symmetric)."""
    kms = client("kms")
    arn = outputs["ReceiptKeyArn"]

    key = kms.describe_key(KeyId=arn)["KeyMetadata"]
    alias = kms.describe_key(KeyId=f"alias/filegate/{PARAMETERS['LambdaName']}-receipts")
    signed = kms.sign(KeyId=arn, Message=b"m", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    verified = kms.verify(
        KeyId=arn,
        Message=b"m",
        MessageType="RAW",
        Signature=signed["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )

    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert key["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    assert alias["KeyMetadata"]["Arn"] == arn
    assert verified["SignatureValid"] is True
    function = client("lambda").get_function_configuration(FunctionName=UPLOAD_API_NAME)
    assert function["Environment"]["Variables"]["RECEIPT_KEY_ID"] == arn


def test_the_upload_api_role_may_sign_with_the_receipt_key(outputs: dict[str, str]) -> None:
    iam = client("iam")
    role = client("lambda").get_function_configuration(FunctionName=UPLOAD_API_NAME)["Role"]
    name = role.rsplit("/", 1)[-1]

    document = iam.get_role_policy(RoleName=name, PolicyName="sign-receipts")["PolicyDocument"]

    if isinstance(document, str):
        document = json.loads(document)
    (statement,) = document["Statement"]
    assert set(statement["Action"]) == {"kms:Sign", "kms:GetPublicKey"}
    assert statement["Resource"] == outputs["ReceiptKeyArn"]


def test_plain_moto_makes_the_receipt_key_symmetric(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why local/cfn_models.py has a KMS key model: moto 5.2.5's ignores KeySpec/KeyUsage."""
    from moto.kms.models import Key, kms_backends

    models = {**parsing.get_model_map(), "AWS::KMS::Key": Key}
    monkeypatch.setattr(parsing, "get_model_map", lambda: models)

    arn = deploy()["ReceiptKeyArn"]

    # Read from moto's backend: moto's model also keeps the key policy as a dict, on which
    # every KMS call naming the key fails (a TypeError in its policy check).
    account = arn.split(":")[4]
    key = kms_backends[account][REGION].keys[arn.rsplit("/", 1)[-1]]
    assert (key.key_spec, key.key_usage) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
