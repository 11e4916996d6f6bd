"""An SQS scenario whose every answer is recorded, run with and without the emulator patch.

``run()`` sends to standard and FIFO queues through moto in-process (plain bodies, message
attributes, delays, a queue-level delay, batches, the errors moto gives for a bad delay, a body
too long, a FIFO send without a group id or a deduplication id, content-based deduplication,
an S3 notification), then receives everything visible and reads the queue counts. Answers drop
what moto draws at random (message ids, receipt handles, sequence numbers, timestamps) but keep
whether it was there.

Run as a script it prints ``run()``'s result as JSON, in a process where no emulator patch has
been applied: ``python tests/functional/sqs_patch_scenario.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

REGION = "eu-central-1"
_RANDOM = {"MessageId", "ReceiptHandle", "SequenceNumber", "SentTimestamp",
           "ApproximateFirstReceiveTimestamp", "SenderId"}  # fmt: skip


def _normal(value: Any) -> Any:
    """The answer with moto's random draws replaced by whether they were present."""
    if isinstance(value, dict):
        return {k: ("<present>" if k in _RANDOM else _normal(v)) for k, v in value.items()
                if k != "ResponseMetadata"}  # fmt: skip
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _answer(call: Callable[[], Any]) -> Any:
    from botocore.exceptions import ClientError

    try:
        return _normal(call())
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return {"error": error.get("Code"), "message": error.get("Message")}


def _standard_sends(sqs: Any, url: str) -> list[Any]:
    attributes = {"kind": {"DataType": "String", "StringValue": "x"},
                  "n": {"DataType": "Number", "StringValue": "7"}}  # fmt: skip
    sends: list[Callable[[], Any]] = [
        lambda: sqs.send_message(QueueUrl=url, MessageBody="plain"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="attrs", MessageAttributes=attributes),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=60),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="too late", DelaySeconds=901),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * (256 * 1024 + 1)),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="grouped", MessageGroupId="g"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="dedup", MessageDeduplicationId="d"),
        lambda: sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "a", "MessageBody": "batch a"},
            {"Id": "b", "MessageBody": "batch b", "DelaySeconds": 30},
            {"Id": "c", "MessageBody": "batch c", "MessageAttributes": attributes}]),
    ]  # fmt: skip
    return [_answer(send) for send in sends]


def _fifo_sends(sqs: Any, url: str) -> list[Any]:
    sends: list[Callable[[], Any]] = [
        lambda: sqs.send_message(QueueUrl=url, MessageBody="no group"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="ided", MessageGroupId="g",
                                 MessageDeduplicationId="d1"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="ided again", MessageGroupId="g",
                                 MessageDeduplicationId="d1"),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="delay", MessageGroupId="g",
                                 MessageDeduplicationId="d2", DelaySeconds=5),
    ]  # fmt: skip
    return [_answer(send) for send in sends]


def _received(sqs: Any, url: str) -> dict[str, Any]:
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    MessageSystemAttributeNames=["All"],
                                    MessageAttributeNames=["All"]).get("Messages", [])  # fmt: skip
        if not batch:
            break
        messages.extend(batch)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for stamp in ("CreatedTimestamp", "LastModifiedTimestamp"):
        counts.pop(stamp, None)
    ordered = sorted(_normal(messages), key=lambda message: json.dumps(message, sort_keys=True))
    return {"messages": ordered, "attributes": counts}


def _s3_notification(s3: Any, sqs: Any, url: str) -> dict[str, Any]:
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    s3.create_bucket(Bucket="sqs-patch", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_notification_configuration(Bucket="sqs-patch", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn["Attributes"]["QueueArn"],
                                 "Events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
    s3.put_object(Bucket="sqs-patch", Key="a/b.txt", Body=b"hello")
    received = _received(sqs, url)
    for message in received["messages"]:  # the event's shape is the S3 patch's, not this one's
        message["Body"] = "Records" in json.loads(message["Body"])
        message.pop("MD5OfBody")
    received["messages"].sort(key=lambda message: json.dumps(message, sort_keys=True))
    return received


def run() -> dict[str, Any]:
    """Every answer of the scenario."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        standard = sqs.create_queue(QueueName="standard")["QueueUrl"]
        slow = sqs.create_queue(QueueName="slow", Attributes={"DelaySeconds": "20"})["QueueUrl"]
        fifo = {
            dedup: sqs.create_queue(
                QueueName=f"fifo-{dedup}.fifo",
                Attributes={"FifoQueue": "true", "ContentBasedDeduplication": str(dedup).lower()},
            )["QueueUrl"]
            for dedup in (True, False)
        }
        notified = sqs.create_queue(QueueName="notified")["QueueUrl"]
        answers: dict[str, Any] = {
            "standard/sends": _standard_sends(sqs, standard),
            "standard/received": _received(sqs, standard),
            "slow/sends": _standard_sends(sqs, slow),
            "slow/received": _received(sqs, slow),
            "s3/received": _s3_notification(s3, sqs, notified),
        }
        for dedup, url in fifo.items():
            answers[f"fifo-{dedup}/sends"] = _fifo_sends(sqs, url)
            answers[f"fifo-{dedup}/received"] = _received(sqs, url)
        return answers


def unpatched() -> bool:
    """No emulator SQS patch in this process: moto's own receive."""
    from moto.sqs.models import SQSBackend

    return not hasattr(SQSBackend.receive_message, "__wrapped__")  # functools.wraps sets it


if __name__ == "__main__":
    assert unpatched(), "the baseline must run on moto's own code"
    print(json.dumps(run(), sort_keys=True))
