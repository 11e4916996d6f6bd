"""Every SQS call the operations commands and the local provisioning make, behind
``MessageQueue``.

Receive (with a chosen visibility timeout), send, delete, release (visible again at once),
depth, attributes, policy and purge of one queue, and a queue's URL from its ARN:
`filegate dlq` moves messages with them, `filegate reconcile --repair` sends its re-driven
events to the ingest queue, `filegate verify` reads the queue policy and the dead-letter
queue's depth, `filegate alarms` peeks at the alerts topic's queues, and the local stack sets
the queue policy the emulator skips and creates the alerts topic's outbox queue. botocore
errors become ``QueueError`` here and nowhere else. The ingestion Lambda does not use this
module: the event source mapping talks to SQS for it (the local one, ``filegate.local.esm``,
polls through its own ``QueueAccess``, as Lambda's poller would).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import QueueError, error_code

MAX_BATCH = 10  # SQS's limit for ReceiveMessage and the *Batch calls
T = TypeVar("T")
_PERMISSION = {
    "ReceiveMessage": "sqs:ReceiveMessage",
    "SendMessage": "sqs:SendMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "SetQueueAttributes": "sqs:SetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
    "CreateQueue": "sqs:CreateQueue",
    "PurgeQueue": "sqs:PurgeQueue",
}
# The parts of a received message attribute that SendMessage accepts back.
_ATTRIBUTE_VALUE_FIELDS = ("DataType", "StringValue", "BinaryValue")


@dataclass(frozen=True)
class Message:
    """One received message: body, system attributes and message attributes as SQS sent them."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)
    message_attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def receive_count(self) -> int:
        return int(self.attributes.get("ApproximateReceiveCount", "0"))

    @property
    def sent_at(self) -> str | None:
        """When the message was first sent (SQS keeps it across a dead-letter move), ISO UTC."""
        millis = self.attributes.get("SentTimestamp")
        if millis is None:
            return None
        return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat(timespec="milliseconds")


class MessageQueue:
    """One SQS queue, by URL, through an injected client."""

    def __init__(self, url: str, sqs_client: Any) -> None:
        self.url = url
        self._sqs = sqs_client

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def receive(self, count: int, visibility_seconds: int, wait_seconds: int = 1) -> list[Message]:
        """Up to ``count`` (at most 10) messages, hidden from others for ``visibility_seconds``."""
        with self._translated("ReceiveMessage"):
            response = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(count, MAX_BATCH)),
                VisibilityTimeout=visibility_seconds,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return [_message(m) for m in response.get("Messages", [])]

    def send(self, body: str, message_attributes: Mapping[str, Any]) -> str:
        """SendMessage with this body and these message attributes; the new message id."""
        request: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": body}
        if message_attributes:
            request["MessageAttributes"] = sendable_attributes(message_attributes)
        with self._translated("SendMessage"):
            return str(self._sqs.send_message(**request)["MessageId"])

    def work_off(
        self, limit: int, visibility_seconds: int, handle: Callable[[Message], tuple[T, bool]]
    ) -> list[T]:
        """Receive up to ``limit`` messages and hand each to ``handle`` once, which answers
        what to report and whether the message is done: done ones are deleted; the others
        are made visible again at the end (also when ``handle`` fails half-way), not received
        again by this call."""
        results: list[T] = []
        held: dict[str, Message] = {}  # received, not done: released at the end
        try:
            while len(results) < limit:
                wanted = min(MAX_BATCH, limit - len(results))
                received = self.receive(wanted, visibility_seconds, wait_seconds=0)
                batch = [m for m in received if m.message_id not in held]
                if not batch:
                    break  # empty, or only messages already handled
                for message in batch:
                    held[message.message_id] = message
                    result, done = handle(message)
                    if done:
                        self.delete(message)
                        del held[message.message_id]
                    results.append(result)
        finally:
            self.release(list(held.values()))
        return results

    def delete(self, message: Message) -> None:
        with self._translated("DeleteMessage"):
            self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)

    def release(self, messages: Sequence[Message]) -> None:
        """Make received messages visible again at once (visibility timeout 0)."""
        for start in range(0, len(messages), MAX_BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for n, m in enumerate(messages[start : start + MAX_BATCH])
            ]
            with self._translated("ChangeMessageVisibilityBatch"):
                self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def depth(self) -> int:
        """Messages in the queue: visible plus in flight (both approximate, as SQS says)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        with self._translated("GetQueueAttributes"):
            attributes = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)
        return sum(int(attributes["Attributes"].get(name, "0")) for name in names)

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) messages, both approximate as SQS says."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.attributes(names)
        return int(found.get(names[0], "0")), int(found.get(names[1], "0"))

    def attributes(self, names: Sequence[str] = ("All",)) -> dict[str, str]:
        """GetQueueAttributes: the named attributes (``All`` by default)."""
        with self._translated("GetQueueAttributes"):
            response = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names))
        return dict(response.get("Attributes", {}))

    def arn(self) -> str:
        """The queue's ARN (GetQueueAttributes QueueArn)."""
        return self.attributes(["QueueArn"])["QueueArn"]

    def policy(self) -> dict[str, Any]:
        """The queue's access policy (empty when it has none)."""
        return dict(json.loads(self.attributes(["Policy"]).get("Policy") or "{}"))

    def set_policy(self, policy: Mapping[str, Any]) -> None:
        """SetQueueAttributes: replace the queue's access policy."""
        with self._translated("SetQueueAttributes"):
            self._sqs.set_queue_attributes(
                QueueUrl=self.url, Attributes={"Policy": json.dumps(policy)}
            )

    def purge(self) -> None:
        """PurgeQueue: every message is deleted (SQS allows one purge a minute per queue)."""
        with self._translated("PurgeQueue"):
            self._sqs.purge_queue(QueueUrl=self.url)

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = error_code(exc)
            raise QueueError(self._failure(operation, code, _hint(code))) from exc
        except BotoCoreError as exc:
            raise QueueError(self._failure(operation, type(exc).__name__, "")) from exc

    def _failure(self, operation: str, code: str, hint: str) -> str:
        return f"{operation} on queue {self.name} ({self.url}) failed ({code}): " + (
            hint or f"check that the queue exists and the caller may {_PERMISSION[operation]}"
        )


def create_queue(sqs_client: Any, name: str) -> MessageQueue:
    """CreateQueue with SQS's defaults (the same name again returns the same queue)."""
    try:
        url = str(sqs_client.create_queue(QueueName=name)["QueueUrl"])
    except (ClientError, BotoCoreError) as exc:
        raise QueueError(
            f"CreateQueue {name} failed ({error_code(exc)}): check that the caller may"
            f" {_PERMISSION['CreateQueue']}"
        ) from exc
    return MessageQueue(url, sqs_client)


def queue_url(sqs_client: Any, queue_arn: str) -> str:
    """The URL of the queue ``queue_arn`` names (GetQueueUrl with its name and owner)."""
    _, _, _, _, account, name = queue_arn.split(":", 5)
    try:
        response = sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        raise QueueError(
            f"GetQueueUrl for queue {queue_arn} failed ({code}): check that the queue exists"
            f" and the caller may {_PERMISSION['GetQueueUrl']}"
        ) from exc
    return str(response["QueueUrl"])


def sendable_attributes(received: Mapping[str, Any]) -> dict[str, Any]:
    """Received message attributes in the shape SendMessage takes (same names, types, values)."""
    return {
        name: {k: value[k] for k in _ATTRIBUTE_VALUE_FIELDS if value.get(k) is not None}
        for name, value in received.items()
    }


def _message(raw: Mapping[str, Any]) -> Message:
    return Message(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        attributes=dict(raw.get("Attributes", {})),
        message_attributes=dict(raw.get("MessageAttributes", {})),
    )


def _hint(code: str) -> str:
    if code.endswith("PurgeQueueInProgress"):
        return "SQS allows one purge a minute per queue: wait a minute and purge again"
    return ""
