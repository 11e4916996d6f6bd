"""The function's CloudWatch log events: reading, following, and keeping one key's invocations.

Events come from ``filter_log_events`` on ``/aws/lambda/<function>`` over a time window
(``--since 15m``). No filter pattern is sent: the emulator answers a JSON pattern with every
event, and a key's invocation is more than the lines that name it. ``InvocationFilter`` keeps,
for a key, every event of the invocations that handled it: the START, END and REPORT lines
Lambda frames them with, the function's JSON lines (Powertools puts ``s3_key`` and
``function_request_id`` in them) and the lines without a request id in between (EMF metrics),
but not the lines of other keys that shared the batch. Within one log stream invocations never
overlap (one execution environment runs one at a time), which is what attributes a line
without a request id to the invocation around it.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import ConfigError, StackError
from filegate.outputs import FUNCTION_NAME
from filegate.stackref import StackRef

DEFAULT_SINCE = "15m"
POLL_SECONDS = 1.0
# A following reader looks back this far on each poll: an invocation's START line is stamped
# when it began but shipped when it ended (up to the function's 30 s timeout later).
FOLLOW_LOOKBACK_MS = 60_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_FRAME = re.compile(r"^(START|END|REPORT) RequestId: (\S+)")

LogEvent = dict[str, Any]


def parse_duration(text: str, option: str = "--since") -> timedelta:
    """``30s``, ``15m``, ``2h``, ``1d`` -> a timedelta; anything else is a ConfigError naming
    ``option``."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"{option} {text!r} is not a duration: give a positive number and a unit s, m, h"
            " or d, e.g. 15m"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


@dataclass(frozen=True)
class LogLine:
    """One log event as a reader sees it."""

    timestamp_ms: int
    stream: str
    message: str
    request_id: str | None
    level: str
    text: str
    key: str | None
    outcome: str | None = None

    def readable(self) -> str:
        when = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rid = (self.request_id or "-")[:8]
        key = f"  key={self.key}" if self.key else ""
        return f"{stamp}  {rid:8}  {self.level or '-':7}  {self.text}{key}"


def parse_event(event: LogEvent, current_request_id: str | None = None) -> LogLine:
    """What one raw event says: its request id, level, text and key (JSON lines parsed)."""
    message = str(event.get("message", "")).rstrip("\n")
    frame = _FRAME.match(message)
    document = _json_object(message)
    request_id = frame.group(2) if frame else current_request_id
    level, text, key, outcome = "", message.replace("\t", "  ").strip(), None, None
    if document is not None:
        request_id = str(document.get("function_request_id") or request_id or "") or None
        level = str(document.get("level", ""))
        text = str(document.get("message", text)) if "message" in document else _emf_text(document)
        key = str(document["s3_key"]) if document.get("s3_key") else None
        outcome = str(document["outcome"]) if document.get("outcome") else None
        if document.get("exception"):
            text += " | " + str(document["exception"]).strip().splitlines()[-1]
    return LogLine(
        timestamp_ms=int(event.get("timestamp", 0)),
        stream=str(event.get("logStreamName", "")),
        message=message,
        request_id=request_id,
        level=level,
        text=text,
        key=key,
        outcome=outcome,
    )


def _json_object(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _emf_text(document: dict[str, Any]) -> str:
    if "_aws" not in document:
        return json.dumps(document, separators=(",", ":"))
    names = [
        metric["Name"]
        for directive in document["_aws"].get("CloudWatchMetrics", [])
        for metric in directive.get("Metrics", [])
    ]
    return "metrics " + ", ".join(f"{name}={document.get(name)}" for name in names)


@dataclass
class InvocationFilter:
    """Streaming: feed events in order, get back those to show (all, or one key's invocations).

    With a key, an invocation's lines are held until a line names the key (then released,
    and its later lines pass straight through) or its REPORT line ends it (then dropped).
    """

    key: str | None = None
    _current: dict[str, str | None] = field(default_factory=dict)
    _held: dict[str, list[tuple[LogEvent, LogLine]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _matched: set[str] = field(default_factory=set)

    def feed(self, event: LogEvent) -> list[tuple[LogEvent, LogLine]]:
        line = parse_event(event, self._current.get(str(event.get("logStreamName", ""))))
        self._track(line)
        if self.key is None:
            return [(event, line)]
        if line.request_id is None:
            return [(event, line)] if line.key == self.key else []
        return self._keyed(event, line, line.request_id)

    def _track(self, line: LogLine) -> None:
        if line.message.startswith("START RequestId:"):
            self._current[line.stream] = line.request_id
        elif line.message.startswith("REPORT RequestId:"):
            self._current[line.stream] = None

    def _keyed(self, event: LogEvent, line: LogLine, rid: str) -> list[tuple[LogEvent, LogLine]]:
        if line.key is not None and line.key != self.key:
            return []  # another key handled in the same batch
        shown: list[tuple[LogEvent, LogLine]] = []
        if line.key == self.key and rid not in self._matched:
            self._matched.add(rid)
            shown = self._held.pop(rid, [])
        if rid in self._matched:
            shown.append((event, line))
        else:
            self._held[rid].append((event, line))
        if line.message.startswith("REPORT RequestId:"):
            self._held.pop(rid, None)
        return shown

    def run(self, events: Iterable[LogEvent]) -> list[tuple[LogEvent, LogLine]]:
        return [shown for event in events for shown in self.feed(event)]


class LogReader:
    """Reads one function's log group through the stack's Logs client."""

    def __init__(
        self, ref: StackRef, function_name: str | None = None, logs_client: Any = None
    ) -> None:
        self.function_name = function_name or ref.output(FUNCTION_NAME)
        self.group = log_group(self.function_name)
        self._logs = logs_client or ref.client("logs")

    def events(self, start_ms: int, end_ms: int | None = None) -> list[LogEvent]:
        """Every raw event from start_ms (inclusive), oldest first."""
        arguments: dict[str, Any] = {"logGroupName": self.group, "startTime": start_ms}
        if end_ms is not None:
            arguments["endTime"] = end_ms
        try:
            pages = self._logs.get_paginator("filter_log_events").paginate(**arguments)
            found = [event for page in pages for event in page["events"]]
        except (ClientError, BotoCoreError) as exc:
            raise StackError(
                f"cannot read log group {self.group}: {exc}; check that the function"
                f" {self.function_name} exists (--function, --stack) and that you may read its logs"
            ) from exc
        # Stable: events of one stream keep the order the service returned them in.
        return sorted(found, key=lambda event: int(event.get("timestamp", 0)))

    def read(self, since: timedelta, key: str | None = None) -> list[tuple[LogEvent, LogLine]]:
        start = datetime.now(UTC) - since
        return InvocationFilter(key).run(self.events(int(start.timestamp() * 1000)))

    def follow(
        self,
        since: timedelta,
        key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        polls: int | None = None,
    ) -> Iterator[tuple[LogEvent, LogLine]]:
        """Every event from now - since, then new ones as they come (until the caller stops)."""
        flt = InvocationFilter(key)
        seen: dict[tuple[str, str], int] = {}
        start_ms = int((datetime.now(UTC) - since).timestamp() * 1000)
        count = 0
        while polls is None or count < polls:
            for event in self.events(start_ms):
                if _first_sight(seen, event):
                    yield from flt.feed(event)
            start_ms = max(start_ms, _newest(seen) - FOLLOW_LOOKBACK_MS)
            _forget_before(seen, start_ms)
            count += 1
            if polls is None or count < polls:
                sleep(POLL_SECONDS)


def _first_sight(seen: dict[tuple[str, str], int], event: LogEvent) -> bool:
    identity = (str(event.get("logStreamName", "")), str(event.get("eventId", "")))
    if identity in seen:
        return False
    seen[identity] = int(event.get("timestamp", 0))
    return True


def _newest(seen: dict[tuple[str, str], int]) -> int:
    return max(seen.values(), default=0)


def _forget_before(seen: dict[tuple[str, str], int], start_ms: int) -> None:
    for identity in [i for i, ts in seen.items() if ts < start_ms]:
        del seen[identity]
