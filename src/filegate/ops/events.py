"""The verdict events a stack published (`filegate events tail`), and the ledger changes
that were not published sent through the publisher again (`filegate events redrive`).

The publisher function logs each event it put on the bus as one JSON line (message ``event
published``, the event under ``event``: ``filegate.publish.handler``), after EventBridge took
it. Reading those lines from the publisher's log group (``ops.logs.LogReader``, as `filegate
logs` reads a function's) shows what the bus received, on AWS as on the local stack, without
creating a rule, a queue or any other resource to listen with. What it cannot show is what a
rule delivered to its targets: that is the target's own business (docs/events.md).

``Redrive`` works the publisher's dead-letter queue: each message there describes a batch of
the ledger's stream the event source mapping gave up on (shard, first and last sequence
number; AWS Lambda Developer Guide, "Retaining discarded records for a DynamoDB event
source"). It reads those records back from the stream (DynamoDB keeps them 24 hours), invokes
the publisher with them as the mapping would, and deletes the message once the publisher
succeeded. A batch whose records the stream no longer holds, or that fails again, stays.
Publishing a change twice is harmless: its ``event_id`` is the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import StackError
from filegate.ledger import lambda_record, stream_records
from filegate.ops.logs import LogEvent, LogReader
from filegate.outputs import EVENTS_DLQ_URL, EVENTS_FUNCTION_NAME
from filegate.publish.mapping import PUBLISHED_MESSAGE
from filegate.queues import Message, MessageQueue
from filegate.stackref import StackRef


@dataclass(frozen=True)
class PublishedEvent:
    """One event as the bus received it: EventBridge's id, detail-type, time and detail."""

    document: dict[str, Any]

    @property
    def detail(self) -> dict[str, Any]:
        detail = self.document.get("detail")
        return detail if isinstance(detail, dict) else {}

    def readable(self) -> str:
        detail = self.detail
        reason = f"  reason={detail['reason']}" if detail.get("reason") else ""
        return (
            f"{self.document.get('time', '-')}  {self.document.get('detail-type', '-'):16}"
            f"  {detail.get('key', '-')}  event_id={detail.get('event_id', '-')}{reason}"
        )


def published(event: LogEvent) -> PublishedEvent | None:
    """The event one log line of the publisher records, or None for any other line."""
    message = str(event.get("message", ""))
    if not message.startswith("{"):
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("message") != PUBLISHED_MESSAGE:
        return None
    body = document.get("event")
    return PublishedEvent(body) if isinstance(body, dict) else None


class EventTail:
    """The stack's published events, from its publisher's log group."""

    def __init__(self, ref: StackRef, logs_client: Any = None) -> None:
        self._reader = LogReader(ref, ref.output(EVENTS_FUNCTION_NAME), logs_client)

    @property
    def group(self) -> str:
        return self._reader.group

    def read(self, since: timedelta) -> list[PublishedEvent]:
        return [found for event, _ in self._reader.read(since) if (found := published(event))]

    def follow(
        self,
        since: timedelta,
        sleep: Callable[[float], None] = time.sleep,
        polls: int | None = None,
    ) -> Iterator[PublishedEvent]:
        for event, _ in self._reader.follow(since, sleep=sleep, polls=polls):
            found = published(event)
            if found is not None:
                yield found


REDRIVE_VISIBILITY_SECONDS = 300  # a batch being redriven is hidden from a second redrive


@dataclass(frozen=True)
class Redriven:
    """What happened to one dead-letter message: its batch, and whether it was published."""

    message_id: str
    stream_arn: str
    first: str
    last: str
    records: int = 0
    published: bool = False
    problem: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "sequence_numbers": f"{self.first}..{self.last}",
            "records": self.records,
            "published": self.published,
            "problem": self.problem,
        }


class Redrive:
    """The publisher's dead-letter queue, worked off through the publisher."""

    def __init__(self, ref: StackRef) -> None:
        self._queue = MessageQueue(ref.output(EVENTS_DLQ_URL), ref.client("sqs"))
        self._function = ref.output(EVENTS_FUNCTION_NAME)
        self._streams = ref.client("dynamodbstreams")
        self._lambda = ref.client("lambda")
        self._region = ref.target.region

    def run(self, limit: int) -> list[Redriven]:
        """Up to ``limit`` dead-letter messages, each redriven once: deleted when published,
        visible again at the end when not."""

        def handle(message: Message) -> tuple[Redriven, bool]:
            result = self._one(message)
            return result, result.published

        return self._queue.work_off(limit, REDRIVE_VISIBILITY_SECONDS, handle)

    def _one(self, message: Message) -> Redriven:
        try:
            info = json.loads(message.body)["DDBStreamBatchInfo"]
            batch = Redriven(
                message.message_id,
                str(info["streamArn"]),
                str(info["startSequenceNumber"]),
                str(info["endSequenceNumber"]),
            )
            shard = str(info["shardId"])
        except (ValueError, KeyError, TypeError):
            return Redriven(message.message_id, "", "", "", problem="not a stream batch record")
        records = stream_records(self._streams, batch.stream_arn, shard, batch.first, batch.last)
        if records is None:
            return _with(batch, problem="the stream no longer holds these records (24 hours)")
        event = {"Records": [lambda_record(r, batch.stream_arn, self._region) for r in records]}
        failure = self._invoke(event)
        return _with(batch, records=len(records), published=failure is None, problem=failure)

    def _invoke(self, event: dict[str, Any]) -> str | None:
        """Run the publisher on the batch; why it failed, or None."""
        try:
            answer = self._lambda.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StackError(
                f"cannot invoke the publisher {self._function}: {exc}; check that it exists and"
                " that you may lambda:InvokeFunction it"
            ) from exc
        if not answer.get("FunctionError"):
            return None
        payload = str(answer["Payload"].read().decode("utf-8", "replace"))
        try:
            return str(json.loads(payload).get("errorMessage") or payload)
        except ValueError:
            return payload


def _with(batch: Redriven, **changes: Any) -> Redriven:
    return replace(batch, **changes)
