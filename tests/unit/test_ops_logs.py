"""Pure parts of `filegate logs`: durations, log line parsing, keeping one key's invocations."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.errors import ConfigError
from filegate.ops.logs import InvocationFilter, parse_duration, parse_event

STREAM_A = "2025/09/28/[$LATEST]aaaa"
STREAM_B = "2025/09/28/[$LATEST]bbbb"
_ids = iter(range(1_000_000))


def event(message: str, stream: str = STREAM_A, ts: int = 1_000) -> dict[str, Any]:
    return {
        "logStreamName": stream,
        "timestamp": ts,
        "message": message,
        "eventId": str(next(_ids)),
    }


def app_line(rid: str, key: str | None, text: str = "object event written", **extra: Any) -> str:
    document = {"level": "INFO", "message": text, "function_request_id": rid, **extra}
    if key is not None:
        document["s3_key"] = key
        document.setdefault("outcome", "written")
    return json.dumps(document)


def invocation(rid: str, keys: list[str], stream: str = STREAM_A) -> list[dict[str, Any]]:
    """One invocation as Lambda frames it: START, one line per key, an EMF line, END, REPORT."""
    emf = json.dumps(
        {"_aws": {"CloudWatchMetrics": [{"Metrics": [{"Name": "Processed"}]}]}, "Processed": [1.0]}
    )
    return [
        event(f"START RequestId: {rid} Version: $LATEST", stream),
        *(event(app_line(rid, key), stream) for key in keys),
        event(emf, stream),
        event(f"END RequestId: {rid}", stream),
        event(f"REPORT RequestId: {rid}\tDuration: 1.00 ms\tBilled Duration: 1 ms\t", stream),
    ]


# ---------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 5 m ", timedelta(minutes=5)),
    ],
)
def test_durations_in_each_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m", "1x", "0m", "-5m", "1.5h", "15 minutes"])
def test_a_bad_duration_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--since"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]))
def test_any_positive_duration_is_that_many_seconds(number: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{number}{unit}").total_seconds() == number * seconds


# ---------------------------------------------------------------- one line
def test_a_function_line_gives_level_request_id_key_and_outcome() -> None:
    line = parse_event(event(app_line("rid-1", "in/a.csv")))
    assert (line.level, line.request_id, line.key, line.outcome) == (
        "INFO",
        "rid-1",
        "in/a.csv",
        "written",
    )
    assert line.readable().endswith("INFO     object event written  key=in/a.csv")


def test_frame_lines_carry_their_request_id() -> None:
    for message in (
        "START RequestId: rid-2 Version: $LATEST",
        "END RequestId: rid-2",
        "REPORT RequestId: rid-2\tDuration: 3.00 ms",
    ):
        assert parse_event(event(message)).request_id == "rid-2"


def test_a_plain_line_takes_the_invocation_around_it() -> None:
    line = parse_event(event("[WARNING] something odd"), current_request_id="rid-3")
    assert (line.request_id, line.level, line.key) == ("rid-3", "", None)


def test_a_logged_exception_shows_its_last_line() -> None:
    message = app_line("r", "k", text="boom", exception="Traceback...\nValueError: bad size")
    assert parse_event(event(message)).text == "boom | ValueError: bad size"


def test_broken_json_is_shown_as_text() -> None:
    line = parse_event(event('{"level": "INFO", '))
    assert (line.text, line.level, line.key) == ('{"level": "INFO",', "", None)


def test_the_readable_time_is_utc_with_milliseconds() -> None:
    line = parse_event({"logStreamName": "s", "timestamp": 1_759_068_937_806, "message": "x"})
    assert line.readable().startswith("2025-09-28T14:15:37.806Z  -")


# ---------------------------------------------------------------- one key's invocations
def test_without_a_key_every_event_is_kept_in_order() -> None:
    events = invocation("r1", ["a"]) + invocation("r2", ["b"])
    assert [e for e, _ in InvocationFilter().run(events)] == events


def test_a_key_keeps_its_whole_invocation_and_nothing_else() -> None:
    mine = invocation("r2", ["wanted.csv"])
    events = invocation("r1", ["other.csv"]) + mine + invocation("r3", ["other.csv"])
    assert [e for e, _ in InvocationFilter("wanted.csv").run(events)] == mine


def test_lines_about_other_keys_of_the_same_batch_are_left_out() -> None:
    events = invocation("r1", ["x.csv", "wanted.csv", "y.csv"])
    kept = [line.message for _, line in InvocationFilter("wanted.csv").run(events)]
    assert kept[0].startswith("START RequestId: r1")
    assert kept[-1].startswith("REPORT RequestId: r1")
    assert [json.loads(m)["s3_key"] for m in kept if '"s3_key"' in m] == ["wanted.csv"]
    assert any('"Processed"' in m for m in kept)  # the batch's metrics line stays


def test_interleaved_streams_are_told_apart() -> None:
    first, second = invocation("r1", ["wanted.csv"], STREAM_A), invocation("r2", ["b"], STREAM_B)
    merged = [e for pair in zip(first, second, strict=True) for e in pair]
    assert [e for e, _ in InvocationFilter("wanted.csv").run(merged)] == first


def test_every_invocation_of_a_retried_key_is_kept() -> None:
    events = invocation("r1", ["wanted.csv"]) + invocation("r2", ["wanted.csv"])
    kept = InvocationFilter("wanted.csv").run(events)
    assert {line.request_id for _, line in kept} == {"r1", "r2"}
    assert len(kept) == len(events)


def test_fed_one_by_one_nothing_is_shown_before_the_key_appears() -> None:
    flt = InvocationFilter("wanted.csv")
    start, line, *rest = invocation("r1", ["wanted.csv"])
    assert flt.feed(start) == []
    assert [e for e, _ in flt.feed(line)] == [start, line]
    assert [e for e, _ in flt.feed(rest[0])] == [rest[0]]
