"""The emulator's calls into moto's SQS backend, apart from the code around them.

Two callers, both in the emulator process: the event source mapping's line to the queues
(``queue_channel``: receive, delete and release as one call each into the backend, with moto's
visibility timeouts, receive counts and redrive) and the AWS/SQS metrics (``sqs_metrics``: the
age of the oldest message is not available through the SQS API, so the queues are read in
memory). What they get back are plain values: messages shaped as ``ReceiveMessage`` returns
them, and each message's timestamps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# ReceiveMessage's system attributes (MessageSystemAttributeNames=["All"]), in moto's order.
_MESSAGE_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "SequenceNumber",
)

# (sent, visible at, delayed until), in ms since the epoch, of one message.
MessageTimes = tuple[float, float, float]


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """One channel request against moto's SQS backend: {"op", "account", "region", "queue", ...}."""
    from moto.core.exceptions import ServiceException
    from moto.sqs.models import sqs_backends

    try:
        backend = sqs_backends[request["account"]][request["region"]]
        queue = request["queue"]
        operation = request["op"]
        if operation == "receive":
            return {"messages": _receive(backend, queue, request["max"], request["wait"])}
        if operation == "delete":
            _, failed = backend.delete_message_batch(queue, request["entries"])
            return {"failed": failed}
        if operation == "release":
            entries = [{**e, "VisibilityTimeout": request["delay"]} for e in request["entries"]]
            _, failed = backend.change_message_visibility_batch(queue, entries)
            return {"failed": failed}
        return {"error": {"Code": "InvalidAction", "Message": f"unknown operation {operation!r}"}}
    except ServiceException as exc:
        return {"error": {"Code": exc.code, "Message": exc.message}}


def queue_times() -> Iterator[tuple[str, str, list[MessageTimes]]]:
    """(region, queue name, its messages' times) for every queue the emulator holds."""
    from moto.sqs.models import sqs_backends

    for _, region, backend in sqs_backends.iter_backends():
        for queue in list(getattr(backend, "queues", {}).values()):
            times = [(m.sent_timestamp, m.visible_at, m.delayed_until) for m in queue._messages]
            yield region, queue.name, times


def _receive(backend: Any, queue_name: str, count: int, wait: int) -> list[dict[str, Any]]:
    """ReceiveMessage with every attribute, as moto's SQS API answers it."""
    queue = backend.get_queue(queue_name)
    received = backend.receive_message(queue_name, count, wait, queue.visibility_timeout, ["All"])
    return [_message(message) for message in received]


def _message(message: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        rendered["MessageAttributes"] = message.message_attributes
        rendered["MD5OfMessageAttributes"] = message.attribute_md5
    values = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "AWSTraceHeader": (message.system_attributes or {})
        .get("AWSTraceHeader", {})
        .get("StringValue"),
        "SequenceNumber": message.sequence_number,
    }
    rendered["Attributes"] = {
        name: values[name] for name in _MESSAGE_SYSTEM_ATTRIBUTES if values[name] is not None
    }
    return rendered
