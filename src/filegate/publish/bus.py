"""Every EventBridge call of the publisher: PutEvents on the stack's bus, with retries.

PutEvents takes at most 10 entries per request and answers each entry on its own: a request
can succeed while some of its entries failed (``FailedEntryCount``, an ``ErrorCode`` per
failed entry; EventBridge API Reference, PutEvents: "check the FailedEntryCount ... and
resend the failed entries"). ``EventBus.publish`` resends just the failed entries, up to
``attempts`` times with a growing pause, and raises ``PublishError`` when any is still refused
(or the call itself fails): the invocation fails, and the event source mapping retries the
batch. Nothing is ever dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.publish.exceptions import PublishError
from filegate.publish.mapping import VerdictEvent

logger = logging.getLogger(__name__)

MAX_ENTRIES = 10  # PutEvents' limit per request
ATTEMPTS = 4
FIRST_PAUSE_SECONDS = 0.1


class EventBus:
    """One EventBridge bus, through an injected ``events`` client (and sleep, for tests)."""

    def __init__(
        self,
        name: str,
        events_client: Any,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._events = events_client
        self._attempts = attempts
        self._sleep = sleep

    def publish(self, events: Sequence[VerdictEvent]) -> list[str]:
        """Put every event on the bus; EventBridge's id of each, in order."""
        ids: list[str] = []
        for start in range(0, len(events), MAX_ENTRIES):
            ids.extend(self._publish_chunk(events[start : start + MAX_ENTRIES]))
        return ids

    def _publish_chunk(self, events: Sequence[VerdictEvent]) -> list[str]:
        ids: dict[int, str] = {}
        pending = list(range(len(events)))
        errors: dict[int, str] = {}
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(FIRST_PAUSE_SECONDS * 2 ** (attempt - 1))
            answers = self._put([events[i] for i in pending])
            errors = {}
            for index, answer in zip(pending, answers, strict=True):
                if answer.get("EventId") and not answer.get("ErrorCode"):
                    ids[index] = str(answer["EventId"])
                else:
                    errors[index] = f"{answer.get('ErrorCode')}: {answer.get('ErrorMessage')}"
            pending = sorted(errors)
            if not pending:
                return [ids[i] for i in range(len(events))]
            logger.warning("EventBridge refused %d of %d entries", len(pending), len(answers))
        refused = "; ".join(f"{events[i].event_id} ({why})" for i, why in errors.items())
        raise PublishError(
            f"EventBridge bus {self.name} refused {len(errors)} event(s) after"
            f" {self._attempts} attempts: {refused}. The batch fails and is retried"
        )

    def _put(self, events: Sequence[VerdictEvent]) -> list[dict[str, Any]]:
        try:
            response = self._events.put_events(Entries=[e.entry(self.name) for e in events])
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else ""
            # A refused request (throttling, a service error) counts as every entry refused.
            return [{"ErrorCode": code or type(exc).__name__, "ErrorMessage": str(exc)}] * len(
                events
            )
        entries: list[dict[str, Any]] = response.get("Entries", [])
        if len(entries) != len(events):
            raise PublishError(
                f"PutEvents on bus {self.name} answered {len(entries)} entries for"
                f" {len(events)} events"
            )
        return entries
