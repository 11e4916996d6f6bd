"""Event parsing, key decoding, sequencer order and time normalisation: pure, no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.errors import EventError
from filegate.events import (
    NO_PREFIX,
    SEQUENCER_WIDTH,
    EventKind,
    ObjectEvent,
    iso_utc,
    key_prefix,
    normalise_event_time,
    notification_record,
    parse_s3_event,
    parse_s3_record,
    parse_sqs_body,
    sequencer_key,
)

EVENTS = Path(__file__).parent.parent / "events"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return document


def record(**object_fields: Any) -> dict[str, Any]:
    obj = {"key": "a/b.txt", "size": 3, "eTag": "abc", "sequencer": "00AB", **object_fields}
    return {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2025-01-02T03:04:05.678Z",
        "s3": {"bucket": {"name": "bucket"}, "object": obj},
    }


# --- parsing ---------------------------------------------------------------------------------


def test_direct_put_fixture_parses_to_one_created_event() -> None:
    (event,) = parse_s3_event(fixture("s3_put_direct.json"))

    assert event == ObjectEvent(
        bucket="filegate-uploads-test",
        key="test-file.txt",
        event_name="ObjectCreated:Put",
        event_time="2025-09-28T20:37:00.123Z",
        size=13,
        etag="5d41402abc4b2a76b9719d911017c592",
        version_id=None,
        sequencer="0066F9A2C3D4E5F601",
    )
    assert event.is_created
    assert not event.is_removed
    assert event.prefix == NO_PREFIX


def test_delete_fixture_is_removed_without_size() -> None:
    (event,) = parse_s3_event(fixture("s3_delete.json"))

    assert event.is_removed
    assert event.kind is EventKind.REMOVED
    assert event.size is None
    assert event.etag is None


def test_encoded_key_is_decoded_once() -> None:
    (event,) = parse_s3_event(fixture("s3_encoded_key.json"))

    assert event.key == "partner-a/invoices/Q1 report été € +1.pdf"
    assert event.prefix == "partner-a"


def test_multi_record_event_keeps_record_order() -> None:
    events = parse_s3_event(fixture("s3_multi_record.json"))

    assert [event.key for event in events] == ["batch/one.txt", "batch/two.txt"]


def test_sqs_body_parses_to_the_s3_events_inside() -> None:
    message = fixture("sqs_batch_put.json")["Records"][0]

    (event,) = parse_sqs_body(message["body"])

    assert event.key == "incoming/a.csv"


def test_test_event_gives_no_events() -> None:
    message = fixture("sqs_test_event.json")["Records"][0]

    assert parse_sqs_body(message["body"]) == []


def test_sns_envelope_is_unwrapped() -> None:
    inner = json.dumps(fixture("s3_put_direct.json"))
    envelope = json.dumps({"Type": "Notification", "Message": inner})

    assert [event.key for event in parse_sqs_body(envelope)] == ["test-file.txt"]


def test_malformed_body_raises_event_error() -> None:
    message = fixture("sqs_malformed_body.json")["Records"][1]

    with pytest.raises(EventError, match="not JSON"):
        parse_sqs_body(message["body"])


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ({"s3": None}, r"Records\[0\]\.s3 "),
        ({"eventName": None}, r"Records\[0\]\.eventName"),
        ({"eventTime": "yesterday"}, r"Records\[0\]\.eventTime"),
    ],
)
def test_a_bad_record_field_is_named(broken: dict[str, Any], field: str) -> None:
    with pytest.raises(EventError, match=field):
        parse_s3_event({"Records": [{**record(), **broken}]})


@pytest.mark.parametrize(
    ("object_fields", "field"),
    [
        ({"key": ""}, r"s3\.object\.key"),
        ({"size": "12"}, r"s3\.object\.size"),
        ({"size": -1}, r"s3\.object\.size"),
        ({"sequencer": "not-hex"}, r"s3\.object\.sequencer"),
        ({"versionId": 7}, r"s3\.object\.versionId"),
    ],
)
def test_a_bad_object_field_is_named(object_fields: dict[str, Any], field: str) -> None:
    with pytest.raises(EventError, match=field):
        parse_s3_record(record(**object_fields))


def test_a_document_without_records_is_an_error() -> None:
    with pytest.raises(EventError, match="Records"):
        parse_s3_event({"hello": "world"})


def test_an_s3_prefixed_event_name_is_normalised() -> None:
    event = parse_s3_record({**record(), "eventName": "s3:ObjectRemoved:DeleteMarkerCreated"})

    assert event.event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert event.is_removed


def test_other_event_kinds_are_neither_created_nor_removed() -> None:
    event = parse_s3_record({**record(), "eventName": "ObjectTagging:Put"})

    assert event.kind is EventKind.OTHER


def test_empty_sequencer_and_version_are_absent() -> None:
    event = parse_s3_record(record(sequencer="", versionId=""))

    assert event.sequencer is None
    assert event.version_id is None


# --- keys ------------------------------------------------------------------------------------


@given(st.text(min_size=1))
def test_any_key_survives_quote_plus_then_parse(key: str) -> None:
    event = parse_s3_record(record(key=quote_plus(key)))

    assert event.key == key


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("a/b/c.txt", "a"), ("top.txt", NO_PREFIX), ("/lead.txt", NO_PREFIX), ("dir/", "dir")],
)
def test_key_prefix_is_the_first_folder(key: str, prefix: str) -> None:
    assert key_prefix(key) == prefix


# --- sequencers ------------------------------------------------------------------------------

hex_sequencers = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=40)


def padded(a: str, b: str) -> tuple[str, str]:
    width = max(len(a), len(b))
    return a.upper().ljust(width, "0"), b.upper().ljust(width, "0")


def test_sequencer_key_pads_to_the_fixed_width() -> None:
    assert sequencer_key("0066f9a2c3d4e5f601") == "0066F9A2C3D4E5F601".ljust(SEQUENCER_WIDTH, "0")


def test_a_longer_sequencer_is_kept_whole() -> None:
    long = "1" * (SEQUENCER_WIDTH + 3)

    assert sequencer_key(long) == long


@given(hex_sequencers, hex_sequencers)
def test_sequencer_key_order_agrees_with_right_zero_padding(a: str, b: str) -> None:
    pa, pb = padded(a, b)

    assert (sequencer_key(a) < sequencer_key(b)) == (pa < pb)
    assert (sequencer_key(a) == sequencer_key(b)) == (pa == pb)


@given(hex_sequencers, hex_sequencers, hex_sequencers)
def test_sequencer_key_order_is_transitive(a: str, b: str, c: str) -> None:
    ka, kb, kc = sorted(sequencer_key(s) for s in (a, b, c))

    assert ka <= kb <= kc
    assert ka <= kc


@given(hex_sequencers, hex_sequencers)
def test_sequencer_key_order_is_total(a: str, b: str) -> None:
    ka, kb = sequencer_key(a), sequencer_key(b)

    assert [ka < kb, ka == kb, ka > kb].count(True) == 1


# --- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("2025-09-28T20:37:00.123Z", "2025-09-28T20:37:00.123Z"),
        ("2025-09-28T20:37:00Z", "2025-09-28T20:37:00.000Z"),
        ("2025-09-28T22:37:00.123456+02:00", "2025-09-28T20:37:00.123Z"),
        ("2025-09-28T20:37:00.1", "2025-09-28T20:37:00.100Z"),
    ],
)
def test_event_time_is_normalised_to_utc_milliseconds(text: str, normalised: str) -> None:
    assert normalise_event_time(text) == normalised


def test_a_bad_event_time_is_an_event_error() -> None:
    with pytest.raises(EventError, match="eventTime"):
        normalise_event_time("28/09/2025")


moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(
    moments,
    moments,
    st.integers(min_value=-12, max_value=12),
)
def test_normalised_times_compare_as_the_instants_do(
    a: datetime, b: datetime, offset_hours: int
) -> None:
    a = a.replace(microsecond=a.microsecond // 1000 * 1000)
    b = b.replace(microsecond=b.microsecond // 1000 * 1000)
    zone = timezone(timedelta(hours=offset_hours))
    shown_a = normalise_event_time(a.astimezone(zone).isoformat())

    assert (shown_a < iso_utc(b)) == (a < b)


@given(
    key=st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k),
    size=st.none() | st.integers(min_value=0, max_value=5 * 1024**4),
    version=st.none() | st.text(alphabet="abcdefABCDEF0123456789._", min_size=1, max_size=32),
)
def test_a_built_notification_record_parses_back_to_its_event(
    key: str, size: int | None, version: str | None
) -> None:
    event = ObjectEvent(
        "bucket-a", key, "ObjectCreated:Reconcile", "2026-01-02T03:04:05.006Z", size, "e", version
    )
    record = notification_record(event, "filegate-reconcile", "eu-central-1")
    # AND it survives the trip through an SQS message body
    assert parse_sqs_body(json.dumps({"Records": [record]})) == [event]
    assert record["userIdentity"] == {"principalId": "filegate-reconcile"}


def test_a_built_record_encodes_the_key_as_s3_does() -> None:
    event = ObjectEvent(
        "b", "a dir/Q1 été+1.pdf", "ObjectRemoved:Reconcile", "2026-01-01T00:00:00.000Z"
    )
    record = notification_record(event, "p")
    assert record["s3"]["object"] == {"key": "a+dir/Q1+%C3%A9t%C3%A9%2B1.pdf"}
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
