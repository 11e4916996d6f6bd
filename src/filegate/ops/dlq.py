"""The dead-letter queue: look at its messages, move them back to the ingest queue, empty it.

``DeadLetters`` owns the operations; SQS itself is reached through ``filegate.queues``.
- list peeks: it receives with a short visibility timeout and makes every message visible again.
- replay moves a message by receive -> send (same body and message attributes) to the ingest
  queue -> delete from the dead-letter queue, in that order: a crash between send and delete
  leaves a duplicate, never a loss, and the ledger's conditional writes absorb duplicates.
  SQS's own redrive API (StartMessageMoveTask) is not used: the emulator lacks it, and this
  way ``--max``, ``--id`` and skipping unparseable messages work the same everywhere.
- Messages whose body is no S3 notification (poison) stay unless asked for: the function
  would fail on them again and they would come straight back after five receives.
- purge is PurgeQueue; the count reported is the queue's depth just before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from filegate.errors import EventError, QueueError
from filegate.events import parse_sqs_body
from filegate.outputs import DLQ_URL, QUEUE_URL
from filegate.progress import NO_PROGRESS, Progress
from filegate.queues import MAX_BATCH, Message, MessageQueue
from filegate.stackref import StackRef

PEEK_VISIBILITY_SECONDS = 30  # long enough to read a batch; released at once afterwards
MOVE_VISIBILITY_SECONDS = 60  # long enough to send and delete a batch
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, with what its body says (or why it says nothing)."""

    message_id: str
    sent_at: str | None
    receive_count: int
    body: str
    keys: tuple[str, ...] = ()
    event_names: tuple[str, ...] = ()
    problem: str | None = None  # why the body is no S3 notification: the message is poison
    attributes: dict[str, str] = field(default_factory=dict)
    message_attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def parseable(self) -> bool:
        return self.problem is None

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "sent_at": self.sent_at,
            "receive_count": self.receive_count,
            "keys": list(self.keys),
            "event_names": list(self.event_names),
            "problem": self.problem,
        }

    def whole(self) -> dict[str, Any]:
        """Everything about the message; the body as JSON when it is JSON."""
        return {
            **self.summary(),
            "body": _json_or_text(self.body),
            "attributes": self.attributes,
            "message_attributes": _printable(self.message_attributes),
        }


def describe(message: Message) -> DeadLetter:
    """A received message as a ``DeadLetter``: the keys and event names its body carries."""
    letter = DeadLetter(
        message_id=message.message_id,
        sent_at=message.sent_at,
        receive_count=message.receive_count,
        body=message.body,
        attributes=message.attributes,
        message_attributes=message.message_attributes,
    )
    try:
        events = parse_sqs_body(message.body)
    except EventError as exc:
        return replace(letter, problem=str(exc))
    keys = tuple(dict.fromkeys(e.key for e in events))
    names = tuple(dict.fromkeys(e.event_name for e in events))
    return replace(letter, keys=keys, event_names=names)


@dataclass(frozen=True)
class ReplayReport:
    """What a replay moved (or, with ``dry_run``, would move) and what it left in place."""

    source: str
    destination: str
    dry_run: bool
    moved: list[DeadLetter]
    left: list[DeadLetter]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.destination,
            "dry_run": self.dry_run,
            "moved": [m.summary() for m in self.moved],
            "left": [m.summary() for m in self.left],
        }


@dataclass(frozen=True)
class PurgeReport:
    queue: str
    purged: int

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "purged": self.purged}


# A visit decides, for one received message, whether it counts towards the limit.
Visit = Callable[[Message], bool]


class DeadLetters:
    """The stack's dead-letter queue and the ingest queue its messages go back to."""

    def __init__(
        self, dead: MessageQueue, ingest: MessageQueue, progress: Progress = NO_PROGRESS
    ) -> None:
        self.dead = dead
        self.ingest = ingest
        self._progress = progress

    def peek(self, limit: int = DEFAULT_LIMIT) -> list[DeadLetter]:
        """Up to ``limit`` messages, left in the queue and visible again afterwards."""
        found: list[DeadLetter] = []

        def visit(message: Message) -> bool:
            found.append(describe(message))
            return True

        self._progress.start(f"reading {self.dead.name}", min(limit, self.dead.depth()))
        self._sweep(visit, limit, PEEK_VISIBILITY_SECONDS)
        return found

    def show(self, message_id: str) -> DeadLetter:
        """The message with this id, left in the queue."""
        for letter in self.peek(limit=self.dead.depth() + MAX_BATCH):
            if letter.message_id == message_id:
                return letter
        raise QueueError(
            f"no message {message_id} in queue {self.dead.name}: it may have been replayed or"
            " purged, or another reader holds it; `filegate dlq list` shows what is there"
        )

    def replay(
        self,
        limit: int = DEFAULT_LIMIT,
        dry_run: bool = False,
        ids: Collection[str] = (),
        include_unparseable: bool = False,
    ) -> ReplayReport:
        """Move up to ``limit`` selected messages to the ingest queue (``dry_run``: move none)."""
        moved: list[DeadLetter] = []
        left: list[DeadLetter] = []

        def visit(message: Message) -> bool:
            letter = describe(message)
            if not _selected(letter, ids, include_unparseable):
                left.append(letter)
                return False
            if not dry_run:
                self.ingest.send(message.body, message.message_attributes)
                self.dead.delete(message)  # only after the send: a crash duplicates, never loses
            moved.append(letter)
            return True

        visibility = PEEK_VISIBILITY_SECONDS if dry_run else MOVE_VISIBILITY_SECONDS
        verb = "checking" if dry_run else "replaying"
        self._progress.start(f"{verb} {self.dead.name}", min(limit, self.dead.depth()))
        self._sweep(visit, limit, visibility, keep_counted=dry_run)
        return ReplayReport(self.dead.url, self.ingest.url, dry_run, moved, left)

    def purge(self) -> PurgeReport:
        """Delete every message in the dead-letter queue; how many there were."""
        depth = self.dead.depth()
        self.dead.purge()
        return PurgeReport(self.dead.url, depth)

    def _sweep(self, visit: Visit, limit: int, visibility: int, keep_counted: bool = True) -> None:
        """Receive until ``limit`` visits counted or the queue has nothing more to give.

        Messages not consumed (every one when ``keep_counted``, else the ones a visit did not
        count) are made visible again at the end, even when a visit fails half-way.
        """
        held: dict[str, Message] = {}  # received and not deleted: released at the end
        seen: set[str] = set()
        counted = 0
        try:
            while counted < limit:
                batch = [m for m in self.dead.receive(limit - counted, visibility) if _new(m, seen)]
                if not batch:
                    break  # empty, or only messages already seen (their visibility ran out)
                held.update((m.message_id, m) for m in batch)
                for message in batch:
                    counts = visit(message)
                    counted += counts
                    if counts and not keep_counted:
                        del held[message.message_id]  # moved: deleted from this queue
                    self._progress.advance(int(counts))
        finally:
            self.dead.release(list(held.values()))


def for_stack(ref: StackRef, progress: Progress = NO_PROGRESS) -> DeadLetters:
    """The stack's dead-letter queue (DeadLetterQueueUrl) and ingest queue (QueueUrl)."""
    sqs = ref.client("sqs")
    return DeadLetters(
        MessageQueue(ref.output(DLQ_URL), sqs),
        MessageQueue(ref.output(QUEUE_URL), sqs),
        progress,
    )


def _new(message: Message, seen: set[str]) -> bool:
    if message.message_id in seen:
        return False
    seen.add(message.message_id)
    return True


def _selected(letter: DeadLetter, ids: Collection[str], include_unparseable: bool) -> bool:
    if ids:
        return letter.message_id in ids
    return letter.parseable or include_unparseable


def _json_or_text(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def _printable(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Message attributes with binary values as base64 text (JSON has no bytes)."""
    printable: dict[str, Any] = {}
    for name, value in attributes.items():
        shown = dict(value)
        if isinstance(shown.get("BinaryValue"), bytes):
            shown["BinaryValue"] = base64.b64encode(shown["BinaryValue"]).decode()
        printable[name] = shown
    return printable
