"""A deployed filegate stack as the ops commands see it, built piece by piece in moto.

moto runs no Lambda code and skips the template's queue policy and alarms, so the pieces are
made through the service APIs instead, the way the template would leave them. The function
"ran" for ``KEY``: its ledger item is written through ``Ledger`` (as the function writes it)
and its invocation's log lines are in the function's log group, framed as Lambda frames them.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import boto3
from builders import REGION
from upload_builders import create_upload_ledger

from filegate.aws import Target
from filegate.ledger import Ledger, LedgerEntry, Status
from filegate.stackref import StackRef

STACK = "ops-stack"
FUNCTION = "fg-ingest"
EVENTS_FUNCTION = f"{FUNCTION}-events"
BUCKET = "fg-ops-uploads"
TABLE = "fg-ops-ledger"
KEY = "partner-a/report.csv"
REQUEST_ID = "7f0c2f6e-1111-4c4e-9f3b-0123456789ab"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def build_stack() -> StackRef:
    """Every resource the checks read; returns the stack's reference with its outputs."""
    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{FUNCTION}-dlq")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=f"{FUNCTION}-queue")["QueueUrl"]
    queue_arn = _arn(queue_url)
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": queue_policy(BUCKET, queue_arn)}
    )
    _bucket(queue_arn)
    create_upload_ledger(client("dynamodb"), TABLE)
    topic = client("sns").create_topic(Name=f"{FUNCTION}-alerts")["TopicArn"]
    function_arn = _function()
    # After the bucket notification: moto's own mapping would try to run the s3:TestEvent.
    client("lambda").create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=FUNCTION, Enabled=True, BatchSize=10
    )
    events = _events()  # after the item writes' table exists, before the alarms
    for name in ("errors", "dlq-not-empty"):
        put_alarm(f"{FUNCTION}-{name}", topic)
    client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
        ),
    )
    outputs = {
        "BucketName": BUCKET,
        "TableName": TABLE,
        "QueueUrl": queue_url,
        "QueueArn": queue_arn,
        "DeadLetterQueueUrl": dlq_url,
        "DeadLetterQueueArn": _arn(dlq_url),
        "FunctionName": FUNCTION,
        "FunctionArn": function_arn,
        "AlertsTopicArn": topic,
        **events,
    }
    return StackRef(Target(region=REGION), STACK, outputs)


def queue_policy(bucket: str, queue_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
                }
            ],
        }
    )


def put_alarm(name: str, topic: str) -> None:
    client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[topic],
        Dimensions=[{"Name": "FunctionName", "Value": FUNCTION}],
    )


def record_processed(
    key: str = KEY, request_id: str = REQUEST_ID, outcome: str = "written"
) -> None:
    """What one invocation of the function leaves behind for ``key``: item and log lines."""
    now = time.time()
    event_time = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    Ledger(TABLE, client("dynamodb")).record(
        LedgerEntry(
            key=key,
            bucket=BUCKET,
            status=Status.RECEIVED,
            event_name="ObjectCreated:Put",
            event_time=event_time,
            size=13,
            content_type="text/csv",
            etag="abc",
        )
    )
    level = "INFO" if outcome == "written" else "ERROR"
    text = (
        "object event written"
        if outcome == "written"
        else "ObjectCreated:Put could not be recorded"
    )
    app = {"level": level, "message": text, "function_request_id": request_id, "s3_key": key}
    if outcome == "written":
        app["outcome"] = outcome
    put_invocation(request_id, [json.dumps(app)], int(now * 1000))


def put_invocation(request_id: str, lines: list[str], at_ms: int) -> None:
    logs = client("logs")
    group, stream = f"/aws/lambda/{FUNCTION}", f"2025/09/28/[$LATEST]{request_id[:8]}"
    found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    if group not in [g["logGroupName"] for g in found]:  # not /aws/lambda/<name>-events
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    messages = [
        f"START RequestId: {request_id} Version: $LATEST",
        *lines,
        f"END RequestId: {request_id}",
        f"REPORT RequestId: {request_id}\tDuration: 12.00 ms\tBilled Duration: 12 ms\t",
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": at_ms + i, "message": m} for i, m in enumerate(messages)],
    )


def _arn(queue_url: str) -> str:
    attributes = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _bucket(queue_arn: str) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )


def _events() -> dict[str, str]:
    """The verdict events' path as the template leaves it: the ledger's stream (old and new
    images), the publisher and its mapping on that stream with its on-failure queue, the bus
    and its archive. moto tries to run the publisher (in docker) on each ledger write once the
    mapping exists; it fails to, logs it and leaves the write alone."""
    ddb = client("dynamodb")
    ddb.update_table(
        TableName=TABLE,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    stream_arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    dlq_url = client("sqs").create_queue(QueueName=f"{EVENTS_FUNCTION}-dlq")["QueueUrl"]
    _function(EVENTS_FUNCTION)
    client("lambda").create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=EVENTS_FUNCTION,
        Enabled=True,
        StartingPosition="TRIM_HORIZON",
        DestinationConfig={"OnFailure": {"Destination": _arn(dlq_url)}},
    )
    events = client("events")
    bus_arn = events.create_event_bus(Name=EVENTS_FUNCTION)["EventBusArn"]
    events.create_archive(ArchiveName=f"{EVENTS_FUNCTION}-archive", EventSourceArn=bus_arn)
    return {
        "EventBusName": EVENTS_FUNCTION,
        "EventsFunctionName": EVENTS_FUNCTION,
        "EventsDeadLetterQueueUrl": dlq_url,
    }


def _function(name: str = FUNCTION) -> str:
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {}\n")
    created = client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )
    return str(created["FunctionArn"])
