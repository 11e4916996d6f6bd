"""The stack's alarms: their states, the notifications they sent, and the Errors alarm drill.

- ``stack_alarms``: the one definition of "the stack's alarms", which ``filegate verify``
  uses too: those of its template (found as stack resources) and any alarm that notifies its
  ``AlertsTopicArn``. ``alarm_states``: them with state, reason and metric.
- ``notifications``: what the alerts topic delivered to the SQS queues subscribed to it (the
  local stack subscribes ``<topic>-outbox``; on AWS, any queue you subscribe). Reading is a
  peek: each message is made visible again at once, nothing is deleted.
- ``drill``: the runbook's "fake a failure": invoke the function with a payload it rejects, wait
  for its Errors alarm to turn ALARM and for the notification to arrive. Works the same on the
  local stack (alarms evaluated every few seconds) and on AWS (every minute: wait longer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import FilegateError, QueueError
from filegate.outputs import ALERTS_TOPIC_ARN, FUNCTION_NAME
from filegate.queues import Message, MessageQueue, queue_url
from filegate.stackref import StackRef

Clients = Callable[[str], Any]
DRILL_PAYLOAD = {"filegate_drill": "a payload the function cannot parse: it must fail"}
LOCAL_DRILL_TIMEOUT = 60.0
AWS_DRILL_TIMEOUT = 600.0
_PEEK_VISIBILITY_SECONDS = 30
_RESET_REASON = "filegate alarms drill: reset to OK to watch a new OK -> ALARM transition"

Progress = Callable[[str], None]


class AlarmError(FilegateError):
    """An alarm, its topic or its notifications cannot be read or used as asked."""


@dataclass(frozen=True)
class AlarmStatus:
    """One alarm as `filegate alarms` shows it."""

    name: str
    state: str
    reason: str
    updated: str
    metric: str
    actions: list[str] = field(default_factory=list)

    @classmethod
    def from_alarm(cls, alarm: dict[str, Any]) -> AlarmStatus:
        dimensions = ",".join(f"{d['Name']}={d['Value']}" for d in alarm.get("Dimensions", []))
        metric = f"{alarm.get('Namespace', '')} {alarm.get('MetricName', '')}"
        updated = alarm.get("StateUpdatedTimestamp")
        return cls(
            name=alarm["AlarmName"],
            state=alarm["StateValue"],
            reason=alarm.get("StateReason", ""),
            updated=_iso(updated) if isinstance(updated, datetime) else "",
            metric=f"{metric} ({dimensions})" if dimensions else metric,
            actions=list(alarm.get("AlarmActions", [])),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Notification:
    """One message the alerts topic delivered to a subscribed queue."""

    queue_url: str
    message_id: str
    timestamp: str
    subject: str
    topic_arn: str
    message: Any

    @property
    def alarm(self) -> dict[str, Any]:
        return self.message if isinstance(self.message, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "subject": self.subject,
            "alarm_name": self.alarm.get("AlarmName"),
            "old_state": self.alarm.get("OldStateValue"),
            "new_state": self.alarm.get("NewStateValue"),
            "reason": self.alarm.get("NewStateReason"),
            "state_change_time": self.alarm.get("StateChangeTime"),
            "topic_arn": self.topic_arn,
            "queue_url": self.queue_url,
            "message_id": self.message_id,
            "message": self.message,
        }


@dataclass
class DrillResult:
    """What the drill did and saw; ``passed`` when the alarm fired and the message arrived."""

    function_name: str
    alarm_name: str
    function_error: str = ""
    alarm_state: str = ""
    alarm_reason: str = ""
    notification: Notification | None = None
    readable_queues: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        delivered = self.notification is not None or self.readable_queues == 0
        return self.alarm_state == "ALARM" and delivered

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "function_name": self.function_name,
            "alarm_name": self.alarm_name,
            "function_error": self.function_error,
            "alarm_state": self.alarm_state,
            "alarm_reason": self.alarm_reason,
            "notification": self.notification.as_dict() if self.notification else None,
            "readable_queues": self.readable_queues,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class _Reusing(StackRef):
    """The stack, making each client once (a boto3 client costs tenths of a second)."""

    made: dict[str, Any] = field(default_factory=dict, compare=False)

    def client(self, service: str) -> Any:
        if service not in self.made:
            self.made[service] = super().client(service)
        return self.made[service]


def _reusing(stack: StackRef) -> StackRef:
    if isinstance(stack, _Reusing):
        return stack
    return _Reusing(stack.target, stack.stack_name, stack.outputs, stack.local)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _alarms(
    stack: StackRef, names: list[str] | None = None, clients: Clients | None = None
) -> Iterator[dict[str, Any]]:
    arguments: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"]}
    if names is not None:
        arguments["AlarmNames"] = names
    cloudwatch = (clients or stack.client)("cloudwatch")
    try:
        pages = cloudwatch.get_paginator("describe_alarms").paginate(**arguments)
        for page in pages:
            yield from page.get("MetricAlarms", [])
    except (ClientError, BotoCoreError) as exc:
        raise AlarmError(f"cannot describe the alarms in {stack.target.region}: {exc}") from exc


def _template_alarm_names(stack: StackRef, clients: Clients) -> set[str]:
    """The alarms CloudFormation created for the stack (the emulator lists none)."""
    try:
        resources = clients("cloudformation").describe_stack_resources(StackName=stack.stack_name)[
            "StackResources"
        ]
    except (ClientError, BotoCoreError):
        return set()
    return {
        r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == "AWS::CloudWatch::Alarm" and r.get("PhysicalResourceId")
    }


def stack_alarms(stack: StackRef, clients: Clients | None = None) -> list[dict[str, Any]]:
    """The stack's alarms: its template's, and any that notify its alerts topic.

    The one definition, for ``filegate alarms`` and ``filegate verify`` alike; ``clients``
    lets a caller that already holds clients (``verify``) reuse them.
    """
    clients = clients or _reusing(stack).client
    topic = stack.outputs.get(ALERTS_TOPIC_ARN)
    named = _template_alarm_names(stack, clients)

    def ours(alarm: dict[str, Any]) -> bool:
        actions = [
            *alarm.get("AlarmActions", []),
            *alarm.get("OKActions", []),
            *alarm.get("InsufficientDataActions", []),
        ]
        return alarm["AlarmName"] in named or (topic is not None and topic in actions)

    found = _alarms(stack, clients=clients)
    return sorted((a for a in found if ours(a)), key=lambda a: str(a["AlarmName"]))


def alarm_states(stack: StackRef, state: str | None = None) -> list[AlarmStatus]:
    """The stack's alarms, optionally only those in ``state`` (OK, ALARM, INSUFFICIENT_DATA)."""
    statuses = [AlarmStatus.from_alarm(a) for a in stack_alarms(_reusing(stack))]
    return [s for s in statuses if state is None or s.state == state.upper()]


# --- notifications ------------------------------------------------------------------------


def subscribed_queues(stack: StackRef) -> list[str]:
    """The URLs of the SQS queues subscribed to the stack's alerts topic."""
    stack = _reusing(stack)
    topic = stack.output(ALERTS_TOPIC_ARN)
    sns, sqs = stack.client("sns"), stack.client("sqs")
    try:
        pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        arns = [s["Endpoint"] for p in pages for s in p["Subscriptions"] if s["Protocol"] == "sqs"]
        return [queue_url(sqs, arn) for arn in arns]
    except (ClientError, BotoCoreError, QueueError) as exc:
        raise AlarmError(f"cannot list the subscriptions of topic {topic}: {exc}") from exc


def notifications(stack: StackRef, limit: int = 100) -> list[Notification]:
    """What the alerts topic sent to its subscribed queues, oldest first (a peek)."""
    stack = _reusing(stack)
    queues = subscribed_queues(stack)
    if not queues:
        raise AlarmError(
            f"no SQS queue is subscribed to {stack.output(ALERTS_TOPIC_ARN)}, so its notifications"
            " cannot be read here: subscribe one (aws sns subscribe --protocol sqs ...)"
        )
    found = [n for url in queues for n in _peek(MessageQueue(url, stack.client("sqs")), limit)]
    return sorted(found, key=lambda n: n.timestamp)[-limit:]


def _peek(queue: MessageQueue, limit: int) -> list[Notification]:
    """Receive up to ``limit`` messages, then make them visible again: nothing is consumed."""
    received: dict[str, Message] = {}
    try:
        while len(received) < limit:
            batch = queue.receive(limit - len(received), _PEEK_VISIBILITY_SECONDS, wait_seconds=0)
            if not batch:
                break
            received.update({m.message_id: m for m in batch})
        queue.release(list(received.values()))
    except QueueError as exc:
        raise AlarmError(f"cannot read the notifications in {queue.url}: {exc}") from exc
    return [_notification(queue.url, m) for m in received.values()]


def _notification(url: str, message: Message) -> Notification:
    body = _json(message.body)
    envelope = body if isinstance(body, dict) and body.get("Type") == "Notification" else None
    if envelope is None:  # raw message delivery: the body is the message itself
        return Notification(url, message.message_id, "", "", "", body)
    return Notification(
        queue_url=url,
        message_id=str(envelope.get("MessageId", message.message_id)),
        timestamp=str(envelope.get("Timestamp", "")),
        subject=str(envelope.get("Subject") or ""),
        topic_arn=str(envelope.get("TopicArn", "")),
        message=_json(envelope.get("Message", "")),
    )


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


# --- the drill ----------------------------------------------------------------------------


def errors_alarm(stack: StackRef, function_name: str) -> dict[str, Any]:
    """The stack's alarm on the function's AWS/Lambda Errors metric."""
    for alarm in stack_alarms(stack):
        dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        if (
            alarm.get("Namespace") == "AWS/Lambda"
            and alarm.get("MetricName") == "Errors"
            and dimensions.get("FunctionName") == function_name
        ):
            return alarm
    raise AlarmError(
        f"stack {stack.stack_name} has no alarm on the Errors of function {function_name}:"
        " deploy the current template"
    )


@dataclass(frozen=True)
class DrillClock:
    """What the drill waits with (tests and the CLI may pass their own)."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep


def drill(
    stack: StackRef,
    timeout: float | None = None,
    progress: Progress | None = None,
    clock: DrillClock | None = None,
) -> DrillResult:
    """Make the function fail once; wait for its Errors alarm and the notification."""
    say = progress or (lambda _: None)
    stack = _reusing(stack)
    clock = clock or DrillClock()
    local = stack.target.is_local
    deadline_seconds = timeout or (LOCAL_DRILL_TIMEOUT if local else AWS_DRILL_TIMEOUT)
    function = stack.output(FUNCTION_NAME)
    alarm = errors_alarm(stack, function)
    result = DrillResult(function, alarm["AlarmName"])
    started = clock.now()
    if alarm["StateValue"] == "ALARM":
        say(f"alarm {result.alarm_name} is already in ALARM: setting it to OK first")
        _set_state(stack, result.alarm_name, "OK", _RESET_REASON)
    say(f"invoking {function} with a payload it rejects")
    result.function_error = _invoke_failing(stack, function)
    say(f"the function failed as it should: {result.function_error}")
    result.readable_queues = len(subscribed_queues(stack))
    deadline = started + timedelta(seconds=deadline_seconds)
    interval = 1.0 if local else 10.0
    say(f"waiting for alarm {result.alarm_name} to turn ALARM")
    if _poll(lambda: _alarm_fired(stack, result, started), deadline, clock, interval):
        say(f"alarm {result.alarm_name} is ALARM: {result.alarm_reason}")
    else:
        say(f"alarm {result.alarm_name} is still {result.alarm_state}: giving up")
    if result.alarm_state == "ALARM" and result.readable_queues:
        say("waiting for the notification in the queues subscribed to the alerts topic")
        if _poll(lambda: _notified(stack, result, started), deadline, clock, interval):
            assert result.notification is not None
            say(f"notification received: {result.notification.subject}")
        else:
            say("no notification arrived in time")
    result.seconds = (clock.now() - started).total_seconds()
    return result


def _set_state(stack: StackRef, name: str, state: str, reason: str) -> None:
    try:
        stack.client("cloudwatch").set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=reason
        )
    except (ClientError, BotoCoreError) as exc:
        raise AlarmError(f"cannot set the state of alarm {name}: {exc}") from exc


def _invoke_failing(stack: StackRef, function: str) -> str:
    """Invoke with the drill payload; the function's error ("Type: message")."""
    try:
        answer = stack.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(DRILL_PAYLOAD).encode()
        )
    except (ClientError, BotoCoreError) as exc:
        raise AlarmError(f"cannot invoke function {function}: {exc}") from exc
    payload = _json(answer["Payload"].read().decode("utf-8", errors="replace"))
    if not answer.get("FunctionError"):
        raise AlarmError(
            f"function {function} accepted the drill payload ({payload!r}), so no error was"
            " counted: the drill needs a function that rejects unknown events"
        )
    if isinstance(payload, dict):
        return f"{payload.get('errorType', '')}: {payload.get('errorMessage', '')}"
    return str(payload)


def _poll(done: Callable[[], bool], deadline: datetime, clock: DrillClock, interval: float) -> bool:
    """Ask ``done`` every ``interval`` seconds until it says yes (True) or the deadline passes."""
    while True:
        if done():
            return True
        if clock.now() >= deadline:
            return False
        clock.sleep(interval)


def _alarm_fired(stack: StackRef, result: DrillResult, started: datetime) -> bool:
    """Whether the drill's alarm went to ALARM since the drill started (its state noted)."""
    alarm = next(_alarms(stack, [result.alarm_name]), None)
    if alarm is None:
        raise AlarmError(f"alarm {result.alarm_name} disappeared during the drill")
    updated = alarm.get("StateUpdatedTimestamp") or started
    result.alarm_state, result.alarm_reason = alarm["StateValue"], alarm.get("StateReason", "")
    return result.alarm_state == "ALARM" and updated >= started - timedelta(seconds=1)


def _notified(stack: StackRef, result: DrillResult, started: datetime) -> bool:
    """Whether the drill's notification is in a subscribed queue (noted when it is)."""
    for notification in reversed(notifications(stack)):
        if _is_drill_alarm(notification, result.alarm_name, started):
            result.notification = notification
            return True
    return False


def _is_drill_alarm(notification: Notification, alarm_name: str, started: datetime) -> bool:
    alarm = notification.alarm
    if alarm.get("AlarmName") != alarm_name or alarm.get("NewStateValue") != "ALARM":
        return False
    try:
        changed = datetime.strptime(str(alarm.get("StateChangeTime")), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return False
    return changed >= started - timedelta(seconds=1)
