"""The pipeline's resources in in-process moto, built as the template builds them, for ops tests.

A versioned, encrypted bucket whose ObjectCreated:* and ObjectRemoved:* events go to an ingest
queue with a dead-letter queue (maxReceiveCount 5), the ledger table, and an artifact bucket.
The emulator's S3 patches are applied, so events carry sequencers and version ids as on AWS
(``patches.apply``; the functional conftest undoes them when the test ends).
``pump`` plays the event source mapping: it runs the real handler on the queue's messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from builders import BUCKET, REGION
from conftest import FakeContext

from filegate.aws import Target
from filegate.ingest import handler
from filegate.local import patches
from filegate.local.esm import sqs_event
from filegate.stackref import StackRef

# BUCKET is the functional tests' upload bucket: conftest names it in UPLOAD_BUCKET, the one
# bucket whose events the handler records.
CODE_BUCKET = "filegate-ops-code"
STACK = "filegate-ops-test"
NOTIFICATION_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")


@dataclass
class Pipeline:
    s3: Any
    sqs: Any
    ddb: Any
    table: str
    queue_url: str
    queue_arn: str
    dlq_url: str

    @property
    def ref(self) -> StackRef:
        outputs = {
            "BucketName": BUCKET,
            "TableName": self.table,
            "QueueUrl": self.queue_url,
            "DeadLetterQueueUrl": self.dlq_url,
        }
        return StackRef(Target(region=REGION), STACK, outputs)

    def notification(self) -> dict[str, Any]:
        """The configuration the template attaches (the local stack's Id naming)."""
        return {
            "QueueConfigurations": [
                {"Id": f"filegate-{n}", "QueueArn": self.queue_arn, "Events": [event]}
                for n, event in enumerate(NOTIFICATION_EVENTS)
            ]
        }

    def live_notification(self) -> dict[str, Any]:
        response = self.s3.get_bucket_notification_configuration(Bucket=BUCKET)
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def depth(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return sum(int(v) for v in attributes["Attributes"].values())

    def bodies(self, url: str) -> list[str]:
        """Every message body in the queue, left visible."""
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [m["Body"] for m in messages]

    def drain(self, url: str) -> int:
        """Delete every message in the queue (PurgeQueue is allowed once a minute); how many."""
        drained = 0
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            drained += len(messages)
        return drained

    def item(self, key: str) -> dict[str, Any] | None:
        found = self.ddb.get_item(
            TableName=self.table, Key={"s3_key": {"S": key}}, ConsistentRead=True
        )
        return found.get("Item")

    def pump(self, _seconds: float = 0.0) -> None:
        """Run the handler on every visible message of the ingest queue; delete the successes."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not messages:
                return
            result = handler.lambda_handler(
                sqs_event(messages, self.queue_arn, REGION), FakeContext()
            )
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )


def build_pipeline(table: str) -> Pipeline:
    """The resources, inside an active ``mock_aws`` (the functional ``aws`` fixture)."""
    patches.apply()
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    location = {"LocationConstraint": REGION}
    for bucket in (BUCKET, CODE_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dlq_url = sqs.create_queue(QueueName="ops-dlq")["QueueUrl"]
    redrive = {"deadLetterTargetArn": _arn(sqs, dlq_url), "maxReceiveCount": "5"}
    queue_url = sqs.create_queue(
        QueueName="ops-queue", Attributes={"RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    pipeline = Pipeline(
        s3,
        sqs,
        boto3.client("dynamodb", region_name=REGION),
        table,
        queue_url,
        _arn(sqs, queue_url),
        dlq_url,
    )
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=pipeline.notification()
    )
    pipeline.drain(queue_url)  # the s3:TestEvent
    return pipeline


def _arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])
