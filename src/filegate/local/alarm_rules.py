"""CloudWatch's rules for one metric alarm, as a pure function: datapoints in, state out.

``evaluate`` takes an alarm's settings (``AlarmRule``), the statistic of each of its last
``EvaluationPeriods`` periods (oldest first, ``None`` where no data arrived) and the state it
is in, and returns the state it should be in with CloudWatch's reason text. The local alarm
evaluator (``local.alarms``) feeds it the emulator's metrics; nothing here does I/O.

Missing data, by ``TreatMissingData``: ``breaching`` and ``notBreaching`` count a missing
period as breaching or not; ``missing`` and ``ignore`` leave it out. When every period is
missing, ``missing`` gives INSUFFICIENT_DATA and ``ignore`` keeps the current state. With some
data, ALARM needs at least ``DatapointsToAlarm`` breaching periods; anything less is OK.
CloudWatch also looks further back than the evaluation range when data is missing; this
does not (documented in docs/alarms.md).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALARM = "ALARM"
OK = "OK"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

# operator, CloudWatch's wording in a reason ("was greater than or equal to the threshold").
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
MISSING_DATA = ("missing", "ignore", "breaching", "notBreaching")
_REASON_TIME = "%d/%m/%y %H:%M:%S"  # as in CloudWatch's reasons: 28/09/25 20:37:00


@dataclass(frozen=True)
class AlarmRule:
    """What decides an alarm's state (DescribeAlarms' fields, snake case)."""

    threshold: float
    comparison: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str = "missing"

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"ComparisonOperator {self.comparison} is not evaluated locally")
        if self.treat_missing_data not in MISSING_DATA:
            raise ValueError(f"TreatMissingData {self.treat_missing_data} is not one of ours")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ValueError("DatapointsToAlarm must be 1..EvaluationPeriods")

    @classmethod
    def from_alarm(cls, alarm: dict[str, Any]) -> AlarmRule:
        """The rule of a DescribeAlarms MetricAlarms entry (ValueError if not evaluable)."""
        periods = int(alarm["EvaluationPeriods"])
        return cls(
            threshold=float(alarm["Threshold"]),
            comparison=str(alarm["ComparisonOperator"]),
            evaluation_periods=periods,
            datapoints_to_alarm=int(alarm.get("DatapointsToAlarm") or periods),
            treat_missing_data=str(alarm.get("TreatMissingData") or "missing"),
        )

    def breaches(self, value: float) -> bool:
        compare, _ = COMPARISONS[self.comparison]
        return compare(value, self.threshold)


@dataclass(frozen=True)
class Datapoint:
    """One period's statistic: ``start`` is the period's start, ``value`` None if no data."""

    start: datetime
    value: float | None


@dataclass(frozen=True)
class Verdict:
    """The state an alarm should be in, and CloudWatch's sentence for why."""

    state: str
    reason: str
    evaluated: tuple[Datapoint, ...]


def evaluate(rule: AlarmRule, datapoints: Sequence[Datapoint], current: str) -> Verdict:
    """The alarm's state after looking at its last periods (oldest first)."""
    window = tuple(datapoints[-rule.evaluation_periods :])
    present = [p for p in window if p.value is not None]
    missing = len(window) - len(present)
    if not present:
        return _all_missing(rule, window, current)
    breaching = [p for p in present if rule.breaches(_value(p))]
    extra = missing if rule.treat_missing_data == "breaching" else 0
    if len(breaching) + extra >= rule.datapoints_to_alarm:
        return Verdict(ALARM, _crossed(rule, breaching or present, len(window), True), window)
    shown = [p for p in present if not rule.breaches(_value(p))] or present
    return Verdict(OK, _crossed(rule, shown, len(window), False), window)


def _value(point: Datapoint) -> float:
    assert point.value is not None
    return point.value


def _all_missing(rule: AlarmRule, window: tuple[Datapoint, ...], current: str) -> Verdict:
    count = len(window)
    periods = f"{count} period{'s' if count != 1 else ''}"
    points = f"{count} missing datapoint{'s were' if count != 1 else ' was'}"
    treated = {"breaching": (ALARM, "Breaching"), "notBreaching": (OK, "NonBreaching")}
    if rule.treat_missing_data in treated:
        state, label = treated[rule.treat_missing_data]
        reason = (
            f"Threshold Crossed: no datapoints were received for {periods} and {points}"
            f" treated as [{label}]."
        )
        return Verdict(state, reason, window)
    if rule.treat_missing_data == "ignore" and current in STATES:
        return Verdict(current, "no datapoints were received; the state is kept (ignore)", window)
    unknown = f"{count} datapoint{'s were' if count != 1 else ' was'} unknown"
    return Verdict(INSUFFICIENT_DATA, f"Insufficient Data: {unknown}.", window)


def _crossed(rule: AlarmRule, shown: list[Datapoint], periods: int, alarm: bool) -> str:
    """CloudWatch's "Threshold Crossed: ..." sentence for the datapoints that decided."""
    _, words = COMPARISONS[rule.comparison]
    listed = ", ".join(f"{_value(p)!r} ({p.start.strftime(_REASON_TIME)})" for p in shown)
    if len(shown) == 1 and periods == 1:
        subject, verb = "1 datapoint", "was"
    elif len(shown) == 1:
        subject, verb = f"1 out of the last {periods} datapoints", "was"
    else:
        subject, verb = f"{len(shown)} out of the last {periods} datapoints", "were"
    negation = "" if alarm else "not "
    reason = (
        f"Threshold Crossed: {subject} [{listed}] {verb} {negation}{words}"
        f" the threshold ({rule.threshold!r})"
    )
    if rule.datapoints_to_alarm < rule.evaluation_periods:
        transition = "OK -> ALARM" if alarm else "ALARM -> OK"
        needed = rule.datapoints_to_alarm if alarm else periods - rule.datapoints_to_alarm + 1
        plural = "s" if needed != 1 else ""
        reason += f" (minimum {needed} datapoint{plural} for {transition} transition)"
    return reason + "."
