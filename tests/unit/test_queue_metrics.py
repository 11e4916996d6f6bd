"""The AWS/SQS metrics the emulator publishes, computed from a queue's messages."""

from __future__ import annotations

from filegate.local.sqs_metrics import queue_metrics


def message(sent_ms: float, visible_at: float) -> tuple[float, float, float]:
    return (sent_ms, visible_at, 0.0)


def test_visible_in_flight_and_age_of_the_oldest() -> None:
    queue = [message(1_000, 0), message(50_000, 0), message(60_000, 99_999_999)]
    metrics = {name: value for name, value, _ in queue_metrics(queue, now_ms=61_000)}
    assert metrics == {
        "ApproximateNumberOfMessagesVisible": 2.0,
        "ApproximateNumberOfMessagesNotVisible": 1.0,
        "ApproximateAgeOfOldestMessage": 60.0,
    }


def test_an_empty_queue_is_zero_everywhere() -> None:
    metrics = queue_metrics([], now_ms=61_000)
    assert {value for _, value, _ in metrics} == {0.0}
