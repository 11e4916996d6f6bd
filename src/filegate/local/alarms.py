"""The local stack's CloudWatch alarms: evaluated, and their actions run, as CloudWatch does.

The emulator stores alarms but never evaluates them, and its SetAlarmState runs no actions.
``AlarmEvaluator`` is a thread of the local supervisor that, every few seconds, reads every
metric alarm (DescribeAlarms), the statistic of each of its last periods
(GetMetricStatistics, one call per period, the current, unfinished period included),
applies CloudWatch's rules (``alarm_rules.evaluate``) and, on a change of state, sets it
(SetAlarmState, so DescribeAlarms shows it) and publishes CloudWatch's alarm message to each
SNS topic among the actions of the new state. A change someone else made with
SetAlarmState (``aws cloudwatch set-alarm-state``) runs the actions too, as on AWS.

``subscribe_outbox`` gives the user something to read what was sent: an SQS queue
(``<topic>-outbox``) subscribed to the alerts topic; email subscriptions are only recorded.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.aws import partition as arn_partition
from filegate.local.alarm_rules import ALARM, OK, AlarmRule, Datapoint, Verdict, evaluate
from filegate.queues import create_queue

logger = logging.getLogger(__name__)

EVALUATION_INTERVAL_SECONDS = 5.0
OUTBOX_SUFFIX = "-outbox"
_SUBJECT_LIMIT = 100  # SNS refuses longer subjects
_REASON_LIMIT = 1023  # SetAlarmState's StateReason limit
_ACTIONS = {ALARM: "AlarmActions", OK: "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}
_STATISTIC_NAMES = {"SampleCount": "SAMPLE_COUNT"}

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Transition:
    """One change of an alarm's state and the topics told about it."""

    alarm_name: str
    old_state: str
    new_state: str
    reason: str
    notified: tuple[str, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def cloudwatch_time(moment: datetime) -> str:
    """CloudWatch's timestamp format in alarm messages: 2025-09-28T20:42:18.123+0000."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


@functools.cache
def region_description(region: str) -> str:
    """The region's long name (Europe (Frankfurt)), as alarm subjects and messages give it."""
    endpoints = botocore.session.get_session().get_data("endpoints")
    for partition in endpoints.get("partitions", []):
        described = partition.get("regions", {}).get(region)
        if described and described.get("description"):
            return str(described["description"])
    return region


def alarm_message(
    alarm: dict[str, Any], old_state: str, new_state: str, reason: str, at: datetime
) -> dict[str, Any]:
    """The JSON document CloudWatch publishes to an alarm's SNS topics on a change of state."""
    arn = str(alarm["AlarmArn"])
    _, _, _, region, account, *_ = arn.split(":")
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": cloudwatch_time(
            alarm.get("AlarmConfigurationUpdatedTimestamp") or at
        ),
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": cloudwatch_time(at),
        "Region": region_description(region),
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.get("OKActions", [])),
        "AlarmActions": list(alarm.get("AlarmActions", [])),
        "InsufficientDataActions": list(alarm.get("InsufficientDataActions", [])),
        "Trigger": _trigger(alarm),
    }


def _trigger(alarm: dict[str, Any]) -> dict[str, Any]:
    statistic = str(alarm.get("Statistic", ""))
    periods = int(alarm.get("EvaluationPeriods", 1))
    return {
        "MetricName": alarm.get("MetricName"),
        "Namespace": alarm.get("Namespace"),
        "StatisticType": "Statistic",
        "Statistic": _STATISTIC_NAMES.get(statistic, statistic.upper()),
        "Unit": alarm.get("Unit"),
        "Dimensions": [
            {"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])
        ],
        "Period": alarm.get("Period"),
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": int(alarm.get("DatapointsToAlarm") or periods),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Threshold": alarm.get("Threshold"),
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
        "EvaluateLowSampleCountPercentile": "",
    }


def alarm_subject(alarm_name: str, new_state: str, region: str) -> str:
    """CloudWatch's subject line: ALARM: "name" in Europe (Frankfurt)."""
    subject = f'{new_state}: "{alarm_name}" in {region_description(region)}'
    return subject[:_SUBJECT_LIMIT]


def reason_data(alarm: dict[str, Any], verdict: Verdict, at: datetime) -> dict[str, Any]:
    """The StateReasonData document CloudWatch attaches to a threshold evaluation."""
    present = [p for p in verdict.evaluated if p.value is not None]
    return {
        "version": "1.0",
        "queryDate": cloudwatch_time(at),
        "startDate": cloudwatch_time(verdict.evaluated[0].start) if verdict.evaluated else None,
        "statistic": alarm.get("Statistic"),
        "period": alarm.get("Period"),
        "recentDatapoints": [p.value for p in present],
        "threshold": alarm.get("Threshold"),
        "evaluatedDatapoints": [
            {"timestamp": cloudwatch_time(p.start), "value": p.value} for p in reversed(present)
        ],
    }


class AlarmEvaluator:
    """Evaluates every metric alarm of the emulator, in a thread, until stopped."""

    def __init__(
        self,
        target: Target,
        interval_seconds: float = EVALUATION_INTERVAL_SECONDS,
        clock: Clock = _now,
    ) -> None:
        self._target = target
        self._cloudwatch = target.client("cloudwatch")
        self._sns = target.client("sns")
        self._interval = interval_seconds
        self._clock = clock
        # The (state, updated) each alarm was last seen in: a difference that is not ours is a
        # SetAlarmState by someone else, whose actions CloudWatch would run.
        self._seen: dict[str, tuple[str, datetime | None]] = {}
        self._skipped: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.evaluate_all()
            except (ClientError, BotoCoreError) as exc:
                logger.warning("alarm evaluation failed, retrying: %s", exc)

    def evaluate_all(self) -> list[Transition]:
        """One pass over every metric alarm; the changes of state it made or noticed."""
        transitions = []
        for alarm in self._alarms():
            noticed = self._noticed(alarm)
            if noticed:
                transitions.append(noticed)
            made = self._evaluate(alarm)
            if made:
                transitions.append(made)
        return transitions

    def _alarms(self) -> Iterator[dict[str, Any]]:
        for page in self._cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmTypes=["MetricAlarm"]
        ):
            yield from page.get("MetricAlarms", [])

    def _noticed(self, alarm: dict[str, Any]) -> Transition | None:
        """A change of state made by someone else since the last pass: run its actions."""
        name, state = alarm["AlarmName"], alarm["StateValue"]
        updated = alarm.get("StateUpdatedTimestamp")
        seen = self._seen.get(name)
        self._seen[name] = (state, updated)
        if seen is None:
            return None
        seen_state, seen_updated = seen
        if seen_state == state and seen_updated in (None, updated):
            return None
        when = updated or self._clock()
        notified = self._notify(alarm, seen_state, state, alarm.get("StateReason", ""), when)
        return Transition(name, seen_state, state, alarm.get("StateReason", ""), notified)

    def _evaluate(self, alarm: dict[str, Any]) -> Transition | None:
        rule = self._rule(alarm)
        if rule is None:
            return None
        now = self._clock()
        verdict = evaluate(rule, self._datapoints(alarm, now), alarm["StateValue"])
        if verdict.state == alarm["StateValue"]:
            return None
        name, old = alarm["AlarmName"], alarm["StateValue"]
        reason = verdict.reason[:_REASON_LIMIT]
        self._cloudwatch.set_alarm_state(
            AlarmName=name,
            StateValue=verdict.state,
            StateReason=reason,
            StateReasonData=json.dumps(reason_data(alarm, verdict, now)),
        )
        self._seen[name] = (verdict.state, None)
        logger.info("alarm %s: %s -> %s (%s)", name, old, verdict.state, reason)
        notified = self._notify(alarm, old, verdict.state, reason, now)
        return Transition(name, old, verdict.state, reason, notified)

    def _rule(self, alarm: dict[str, Any]) -> AlarmRule | None:
        name = alarm["AlarmName"]
        try:
            if alarm.get("Metrics") or not alarm.get("Statistic"):
                raise ValueError("metric math and extended statistics are not evaluated locally")
            return AlarmRule.from_alarm(alarm)
        except (ValueError, KeyError) as exc:
            if name not in self._skipped:
                self._skipped.add(name)
                logger.warning("alarm %s is not evaluated locally: %s", name, exc)
            return None

    def _datapoints(self, alarm: dict[str, Any], now: datetime) -> list[Datapoint]:
        """The statistic of each evaluated period, oldest first; the last one ends now.

        Periods are whole seconds (CloudWatch queries drop fractions), the last one ending
        after the current second, so a datapoint put a moment ago counts.
        """
        period = timedelta(seconds=int(alarm["Period"]))
        count = int(alarm["EvaluationPeriods"])
        end = now.replace(microsecond=0) + timedelta(seconds=1)
        starts = [end - period * k for k in range(count, 0, -1)]
        return [self._statistic(alarm, start, start + period) for start in starts]

    def _statistic(self, alarm: dict[str, Any], start: datetime, end: datetime) -> Datapoint:
        statistic = str(alarm["Statistic"])
        arguments: dict[str, Any] = {
            "Namespace": alarm["Namespace"],
            "MetricName": alarm["MetricName"],
            "Dimensions": alarm.get("Dimensions", []),
            "StartTime": start,
            "EndTime": end,
            "Period": int(alarm["Period"]),
            "Statistics": [statistic],
        }
        if alarm.get("Unit"):
            arguments["Unit"] = alarm["Unit"]
        found = self._cloudwatch.get_metric_statistics(**arguments).get("Datapoints", [])
        # One call per period, so at most one datapoint (several if the emulator splits it).
        values = [float(point[statistic]) for point in found if statistic in point]
        return Datapoint(start, _combine(statistic, values) if values else None)

    def _notify(
        self, alarm: dict[str, Any], old: str, new: str, reason: str, at: datetime
    ) -> tuple[str, ...]:
        """Publish the alarm message to each SNS topic among the new state's actions."""
        if not alarm.get("ActionsEnabled", True):
            return ()
        sns = f"arn:{arn_partition(self._target.region)}:sns:"
        topics = [a for a in alarm.get(_ACTIONS.get(new, ""), []) if a.startswith(sns)]
        message = json.dumps(alarm_message(alarm, old, new, reason, at))
        subject = alarm_subject(alarm["AlarmName"], new, self._target.region)
        published = []
        for topic in topics:
            try:
                self._sns.publish(TopicArn=topic, Subject=subject, Message=message)
                published.append(topic)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("alarm %s could not notify %s: %s", alarm["AlarmName"], topic, exc)
        return tuple(published)


def _combine(statistic: str, values: list[float]) -> float:
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Average":
        return sum(values) / len(values)
    return sum(values)  # Sum and SampleCount add up


def subscribe_outbox(target: Target, topic_arn: str) -> str:
    """An SQS queue subscribed to the topic, where what the topic sent can be read; its URL."""
    outbox = create_queue(target.client("sqs"), topic_arn.rsplit(":", 1)[-1] + OUTBOX_SUFFIX)
    target.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=outbox.arn())
    return outbox.url
