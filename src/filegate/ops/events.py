"""The verdict events a stack published: `filegate events tail`.

The publisher function logs each event it put on the bus as one JSON line (message ``event
published``, the event under ``event``: ``filegate.publish.handler``), after EventBridge took
it. Reading those lines from the publisher's log group (``ops.logs.LogReader``, as `filegate
logs` reads a function's) shows what the bus received, on AWS as on the local stack, without
creating a rule, a queue or any other resource to listen with. What it cannot show is what a
rule delivered to its targets: that is the target's own business (docs/events.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from filegate.ops.logs import LogEvent, LogReader
from filegate.outputs import EVENTS_FUNCTION_NAME
from filegate.publish.mapping import PUBLISHED_MESSAGE
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
