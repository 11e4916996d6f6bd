"""The ledger's conditional write against emulated DynamoDB: any delivery order, one answer.

For any set of events on one key, delivered in any order and with repeats, the item ends up
recording the event with the largest sequencer, and every other delivery is classified as a
duplicate or as stale.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filegate.events import sequencer_key
from filegate.ledger import Ledger, LedgerEntry, Outcome, Status

KEY = "partner/order.bin"
CLOCK = datetime(2025, 9, 28, 21, 0, tzinfo=UTC)


@pytest.fixture
def make_ledger(aws: None) -> Callable[[], Ledger]:
    client = boto3.client("dynamodb")
    names = iter(range(10_000))

    def make() -> Ledger:
        name = f"ledger-{next(names)}"
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "s3_key", "AttributeType": "S"}],
        )
        return Ledger(name, client, clock=lambda: CLOCK)

    return make


def entry(sequencer: str, status: Status, size: int) -> LedgerEntry:
    return LedgerEntry(
        key=KEY,
        bucket="b",
        status=status,
        event_name="ObjectCreated:Put" if status is Status.RECEIVED else "ObjectRemoved:Delete",
        event_time="2025-09-28T20:37:00.000Z",  # equal times: only the sequencer can order them
        sequencer=sequencer,
        size=size if status is Status.RECEIVED else None,
    )


events = st.lists(
    st.tuples(
        st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=20),
        st.sampled_from(Status),
        st.integers(min_value=0, max_value=10**12),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda event: sequencer_key(event[0]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events, data=st.data())
def test_any_delivery_order_ends_at_the_largest_sequencer(
    make_ledger: Callable[[], Ledger], events: list[tuple[str, Status, int]], data: st.DataObject
) -> None:
    ledger = make_ledger()
    deliveries = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events)))))

    outcomes = [ledger.record(entry(*event)) for event in deliveries]

    newest = max(events, key=lambda event: sequencer_key(event[0]))
    item = ledger.get(KEY)
    assert item is not None
    assert (item.sequencer, item.status) == (newest[0], newest[1].value)
    assert outcomes.count(Outcome.WRITTEN) <= len(events)
    assert outcomes[0] is Outcome.WRITTEN


def test_a_repeat_is_a_duplicate_and_an_older_event_is_stale(
    make_ledger: Callable[[], Ledger],
) -> None:
    ledger = make_ledger()
    ledger.record(entry("00FF", Status.RECEIVED, 1))

    assert ledger.record(entry("00ff", Status.RECEIVED, 1)) is Outcome.DUPLICATE
    assert ledger.record(entry("00FE", Status.DELETED, 0)) is Outcome.STALE
    assert ledger.record(entry("00FF0", Status.DELETED, 0)) is Outcome.DUPLICATE


def test_without_sequencers_event_time_orders_and_equal_times_are_duplicates(
    make_ledger: Callable[[], Ledger],
) -> None:
    ledger = make_ledger()
    base = LedgerEntry(KEY, "b", Status.RECEIVED, "ObjectCreated:Put", "2025-09-28T20:37:00.000Z")
    later = LedgerEntry(
        KEY, "b", Status.DELETED, "ObjectRemoved:Delete", "2025-09-28T20:38:00.000Z"
    )

    assert ledger.record(base) is Outcome.WRITTEN
    assert ledger.record(base) is Outcome.DUPLICATE
    assert ledger.record(later) is Outcome.WRITTEN
    assert ledger.record(base) is Outcome.STALE


def test_a_received_write_drops_a_checksum_the_new_version_lacks(
    make_ledger: Callable[[], Ledger],
) -> None:
    ledger = make_ledger()
    first = entry("01", Status.RECEIVED, 5)
    ledger.record(LedgerEntry(**{**first.__dict__, "checksum_sha256": "abc="}))

    ledger.record(entry("02", Status.RECEIVED, 6))

    item = ledger.get(KEY)
    assert item is not None
    assert (item.checksum_sha256, item.size, item.first_seen_at) == (
        None,
        6,
        "2025-09-28T21:00:00.000Z",
    )
