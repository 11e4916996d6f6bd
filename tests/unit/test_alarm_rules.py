"""CloudWatch's alarm rules as the local evaluator applies them (pure: datapoints -> state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.local.alarm_rules import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    STATES,
    AlarmRule,
    Datapoint,
    evaluate,
)

T0 = datetime(2025, 9, 28, 20, 37, tzinfo=UTC)
ERRORS = AlarmRule(1.0, "GreaterThanOrEqualToThreshold", 1, 1, "notBreaching")


def points(*values: float | None, period: int = 300) -> list[Datapoint]:
    return [Datapoint(T0 + timedelta(seconds=period * i), v) for i, v in enumerate(values)]


def test_one_error_turns_the_errors_alarm_to_alarm_with_cloudwatchs_reason() -> None:
    verdict = evaluate(ERRORS, points(1.0), OK)
    assert verdict.state == ALARM
    # CloudWatch's reason as a real alarm notification worded it, word for word.
    assert verdict.reason == (
        "Threshold Crossed: 1 datapoint [1.0 (28/09/25 20:37:00)] was greater than or equal"
        " to the threshold (1.0)."
    )


def test_no_errors_is_ok_and_says_not() -> None:
    verdict = evaluate(ERRORS, points(0.0), ALARM)
    assert verdict.state == OK
    assert "was not greater than or equal to the threshold (1.0)" in verdict.reason


@pytest.mark.parametrize(
    ("treat", "current", "expected"),
    [
        ("notBreaching", ALARM, OK),
        ("breaching", OK, ALARM),
        ("missing", OK, INSUFFICIENT_DATA),
        ("ignore", ALARM, ALARM),
        ("ignore", OK, OK),
    ],
)
def test_all_missing_follows_treat_missing_data(treat: str, current: str, expected: str) -> None:
    rule = AlarmRule(1.0, "GreaterThanOrEqualToThreshold", 3, 2, treat)
    assert evaluate(rule, points(None, None, None), current).state == expected


def test_not_breaching_missing_data_reason_names_the_treatment() -> None:
    verdict = evaluate(ERRORS, points(None), ALARM)
    assert verdict.reason == (
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint"
        " was treated as [NonBreaching]."
    )


def test_m_out_of_n_needs_m_breaching_periods() -> None:
    rule = AlarmRule(10.0, "GreaterThanThreshold", 3, 2)
    assert evaluate(rule, points(11.0, 1.0, 1.0), OK).state == OK
    verdict = evaluate(rule, points(11.0, 1.0, 12.0), OK)
    assert verdict.state == ALARM
    assert "2 out of the last 3 datapoints" in verdict.reason
    assert "(minimum 2 datapoints for OK -> ALARM transition)" in verdict.reason


def test_missing_periods_count_as_breaching_when_told() -> None:
    rule = AlarmRule(10.0, "GreaterThanThreshold", 3, 2, "breaching")
    assert evaluate(rule, points(11.0, None, 1.0), OK).state == ALARM
    rule = AlarmRule(10.0, "GreaterThanThreshold", 3, 2, "notBreaching")
    assert evaluate(rule, points(11.0, None, 1.0), OK).state == OK


def test_only_the_last_evaluation_periods_count() -> None:
    assert evaluate(ERRORS, points(5.0, 0.0), OK).state == OK


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("GreaterThanThreshold", 0.0, OK),
        ("GreaterThanThreshold", 1.0, ALARM),
        ("LessThanThreshold", -1.0, ALARM),
        ("LessThanOrEqualToThreshold", 0.0, ALARM),
        ("LessThanOrEqualToThreshold", 0.5, OK),
    ],
)
def test_each_comparison_operator(operator: str, value: float, expected: str) -> None:
    rule = AlarmRule(0.0, operator, 1, 1)
    assert evaluate(rule, points(value), OK).state == expected


def test_dlq_alarm_from_describe_alarms_fields() -> None:
    rule = AlarmRule.from_alarm(
        {
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
        }
    )
    assert rule.datapoints_to_alarm == 1
    assert evaluate(rule, points(1.0, period=60), OK).state == ALARM


@pytest.mark.parametrize(
    "fields",
    [
        {"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"},
        {"TreatMissingData": "sometimes"},
        {"DatapointsToAlarm": 2},
    ],
)
def test_rules_it_cannot_evaluate_are_refused(fields: dict[str, object]) -> None:
    alarm = {
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 1,
        **fields,
    }
    with pytest.raises(ValueError, match=r"\w"):
        AlarmRule.from_alarm(alarm)


values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))


@given(
    st.lists(values, min_size=1, max_size=5),
    st.sampled_from(["missing", "ignore", "breaching", "notBreaching"]),
    st.sampled_from(STATES),
    st.floats(-1e6, 1e6, allow_nan=False),
)
def test_alarm_exactly_when_enough_periods_breach(
    window: list[float | None], treat: str, current: str, threshold: float
) -> None:
    periods = len(window)
    rule = AlarmRule(threshold, "GreaterThanOrEqualToThreshold", periods, periods, treat)
    verdict = evaluate(rule, points(*window), current)
    present = [v for v in window if v is not None]
    breaching = sum(1 for v in present if v >= threshold)
    breaching += (periods - len(present)) if treat == "breaching" else 0
    assert verdict.state in STATES
    if present or treat in ("breaching", "notBreaching"):
        assert (verdict.state == ALARM) == (breaching >= periods)
    assert verdict.reason
