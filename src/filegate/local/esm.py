"""The local event source mapping: long-polls the queue and invokes the deployed function.

It does what Lambda's SQS poller does, with the mapping's batch size, batching window and
``ReportBatchItemFailures``: one poller per warm worker (up to the mapping's maximum
concurrency); successes are deleted; failed records, or the whole batch when the invocation
failed, timed out or crashed, become visible again. Locally they come back after a short retry
delay (FILEGATE_LOCAL_RETRY_DELAY, 2 s by default) instead of the queue's visibility timeout,
so a poison message reaches the dead-letter queue in seconds rather than in
``maxReceiveCount`` x 180 s; the queue's redrive policy is what moves it, as on AWS. With AWS's
timing (``filegate local up --aws-timing``, FILEGATE_LOCAL_AWS_TIMING=1: a retry delay of
None) a failed message is left alone, invisible until the visibility timeout it was received
with (the queue's) runs out, as Lambda leaves it.
``swap`` hands the mapping to new workers (another version, after a deploy or a rollback):
the old pollers deliver the batch they hold, then stop.

Each poller reaches the queue through a :class:`QueueAccess`: the SQS API by default
(:class:`SqsApiQueue`), or, in the local stack, the emulator's direct line
(``queue_channel.ChannelQueue``), which spares the machine two API round trips per batch.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.local.provision import MappingConfig
from filegate.local.runtime import Invocation, Worker

logger = logging.getLogger(__name__)

_RECEIVE_WAIT_SECONDS = 1  # short long-poll so that stop() is prompt
_SQS_MAX_BATCH = 10

InvocationObserver = Callable[[Worker, Invocation], None]


class QueueAccess(Protocol):
    """What a poller does to its queue. Errors are botocore's (ClientError, BotoCoreError)."""

    def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """Up to ``max_messages`` messages, as ReceiveMessage returns them, every attribute."""

    def delete(self, entries: list[dict[str, str]]) -> None:
        """Delete up to ten messages: entries of Id and ReceiptHandle."""

    def release(self, entries: list[dict[str, str]], delay_seconds: int) -> None:
        """Make up to ten messages visible again after ``delay_seconds``."""

    def close(self) -> None: ...


class SqsApiQueue:
    """A queue through the SQS API."""

    def __init__(self, target: Target, queue_url: str) -> None:
        self._sqs = target.client("sqs")
        self._queue_url = queue_url

    def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def delete(self, entries: list[dict[str, str]]) -> None:
        self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)

    def release(self, entries: list[dict[str, str]], delay_seconds: int) -> None:
        self._sqs.change_message_visibility_batch(
            QueueUrl=self._queue_url,
            Entries=[{**e, "VisibilityTimeout": delay_seconds} for e in entries],
        )

    def close(self) -> None:
        self._sqs.close()


QueueConnector = Callable[[], QueueAccess]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from a batch of SQS messages."""
    return {"Records": [_record(m, queue_arn, region) for m in messages]}


def _record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": message.get("Attributes", {}),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Message attributes as Lambda writes them into an SQS event: camelCase names, binary
    values base64-encoded, both list fields present (ReceiveMessage gives PascalCase, bytes)."""

    def text(value: Any) -> str:
        return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)

    converted = {}
    for name, attribute in attributes.items():
        entry: dict[str, Any] = {}
        if "StringValue" in attribute:
            entry["stringValue"] = attribute["StringValue"]
        if "BinaryValue" in attribute:
            entry["binaryValue"] = text(attribute["BinaryValue"])
        entry["stringListValues"] = list(attribute.get("StringListValues", []))
        entry["binaryListValues"] = [text(v) for v in attribute.get("BinaryListValues", [])]
        entry["dataType"] = attribute["DataType"]
        converted[name] = entry
    return converted


def failed_message_ids(
    messages: list[dict[str, Any]], invocation: Invocation, partial: bool
) -> set[str]:
    """Which messages of a batch failed, by Lambda's rules for SQS mappings."""
    everything = {m["MessageId"] for m in messages}
    if not invocation.ok:
        return everything
    if not partial or not isinstance(invocation.result, dict):
        return set()
    failures = invocation.result.get("batchItemFailures") or []
    try:
        failed = {str(f["itemIdentifier"]) for f in failures}
    except (KeyError, TypeError):
        return everything  # a malformed response fails the whole batch
    return failed if failed <= everything else everything


class EventSourceMapping:
    """Polls one queue and feeds batches to a set of warm workers."""

    def __init__(
        self,
        target: Target,
        mapping: MappingConfig,
        queue_url: str,
        workers: list[Worker],
        retry_delay_seconds: int | None,
        observer: InvocationObserver | None = None,
        connect: QueueConnector | None = None,
    ) -> None:
        self._target = target
        self._mapping = mapping
        self._connect = connect or (lambda: SqsApiQueue(target, queue_url))
        self._workers = workers
        self._retry_delay = retry_delay_seconds
        self._observer = observer
        self._stop = threading.Event()
        self._retired = threading.Event()  # set when swap() retires the current workers
        self._threads: list[threading.Thread] = []
        self._poller_numbers = itertools.count()

    def start(self) -> None:
        self._threads = self._launch(self._workers, self._retired)

    def _launch(self, workers: list[Worker], retired: threading.Event) -> list[threading.Thread]:
        threads = []
        for worker in workers:
            thread = threading.Thread(
                target=self._poll,
                args=(worker, retired),
                name=f"esm-poller-{next(self._poller_numbers)}",
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        return threads

    def swap(self, workers: list[Worker]) -> list[Worker]:
        """Feed these workers from now on; return the old ones once their batches are done.

        New pollers start first; the old ones finish the batch they hold (deleting or
        releasing its messages as usual) and stop, so no message is lost or run twice.
        """
        old_workers, old_retired, old_threads = self._workers, self._retired, self._threads
        self._workers, self._retired = workers, threading.Event()
        self._threads = self._launch(workers, self._retired)
        old_retired.set()
        for thread in old_threads:
            thread.join(timeout=_RECEIVE_WAIT_SECONDS + 35)
        return old_workers

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=_RECEIVE_WAIT_SECONDS + 35)

    def _poll(self, worker: Worker, retired: threading.Event) -> None:
        queue = self._connect()
        try:
            while not (self._stop.is_set() or retired.is_set()):
                try:
                    messages = self._receive_batch(queue, retired)
                    if messages:
                        self._deliver(queue, worker, messages)
                except (ClientError, BotoCoreError) as exc:
                    if not self._stop.is_set():
                        logger.warning("event source mapping poll failed, retrying: %s", exc)
                        self._stop.wait(1.0)
        finally:
            queue.close()

    def _receive_batch(self, queue: QueueAccess, retired: threading.Event) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        window_end: float | None = None
        while len(batch) < self._mapping.batch_size and not self._stop.is_set():
            if retired.is_set() and not batch:
                break  # swapped out: a batch already begun is still delivered
            wait = 0 if batch else _RECEIVE_WAIT_SECONDS
            received = queue.receive(
                min(_SQS_MAX_BATCH, self._mapping.batch_size - len(batch)), wait
            )
            batch.extend(received)
            if not batch:
                continue
            if window_end is None:
                window_end = time.monotonic() + self._mapping.batching_window_seconds
            if time.monotonic() >= window_end:
                break
            if not received:
                self._stop.wait(0.05)  # the window is open: wait a little for more
        return batch

    def _deliver(self, queue: QueueAccess, worker: Worker, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self._mapping.queue_arn, self._target.region)
        try:
            invocation = worker.invoke(event)
        except Exception:  # a poller must outlive any one batch
            # Whatever went wrong, the batch is released for another try (and, past the
            # queue's maxReceiveCount, the dead-letter queue); never left invisible.
            logger.exception("event source mapping could not deliver a batch; it will be retried")
            failed = {m["MessageId"] for m in messages}
        else:
            if self._observer:
                self._observer(worker, invocation)
            failed = failed_message_ids(
                messages, invocation, self._mapping.report_batch_item_failures
            )
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        for chunk in _chunks(done):
            queue.delete(_entries(chunk))
        if self._retry_delay is None:
            return  # AWS's timing: back when the visibility timeout runs out
        for chunk in _chunks(retry):
            queue.release(_entries(chunk), self._retry_delay)


def _chunks(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [messages[i : i + _SQS_MAX_BATCH] for i in range(0, len(messages), _SQS_MAX_BATCH)]


def _entries(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
