"""`filegate verify`'s checks of the verdict-events path, each broken on a real local stack.

The module starts its own stack and breaks one piece per test: the ones that can be mended are
mended at the end of their test; the two that cannot (a deleted mapping, a disabled stream:
moto does not enable a table's stream again) come after them, and the events dead-letter queue
last, since the message fires the queue's alarm, which stays in ALARM after the purge for a
while.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, filegate, own_stack, wait_for

pytestmark = pytest.mark.e2e

EVENT_CHECKS = ["ledger stream", "events mapping", "event bus", "events dead-letter queue"]
BROKEN_BEFORE = {"ledger stream", "events mapping"}  # what the dead-letter test finds broken


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-verify-events")) as started:
        yield started


def verify(stack: Stack) -> tuple[int, dict[str, str]]:
    """verify's exit code and its failed checks (name -> detail)."""
    result = filegate(stack.state_dir, "verify", "--output", "json")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    checks = json.loads(result.stdout)["checks"]
    return result.returncode, {c["name"]: c["detail"] for c in checks if not c["passed"]}


def publisher_mapping(stack: Stack) -> dict[str, Any]:
    function = stack.env["EventsFunctionName"]
    mappings = stack.target.client("lambda").list_event_source_mappings(FunctionName=function)
    return dict(mappings["EventSourceMappings"][0])


def test_a_healthy_stack_passes_the_events_checks(events_stack: Stack) -> None:
    result = filegate(events_stack.state_dir, "verify", "--output", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert all(checks[name]["passed"] for name in EVENT_CHECKS), checks
    assert "NEW_AND_OLD_IMAGES" in checks["ledger stream"]["detail"]
    assert "on failure -> " in checks["events mapping"]["detail"]


def test_a_mapping_without_its_on_failure_destination_fails_verify(events_stack: Stack) -> None:
    lam = events_stack.target.client("lambda")
    mapping = publisher_mapping(events_stack)
    lam.update_event_source_mapping(UUID=mapping["UUID"], DestinationConfig={"OnFailure": {}})
    try:
        code, failed = verify(events_stack)
        assert (code, list(failed)) == (1, ["events mapping"])
        assert "on-failure destination is none" in failed["events mapping"]
        assert "--destination-config" in failed["events mapping"]  # what to do
    finally:
        lam.update_event_source_mapping(
            UUID=mapping["UUID"], DestinationConfig=mapping["DestinationConfig"]
        )


def test_a_bus_without_its_archive_fails_verify(events_stack: Stack) -> None:
    events = events_stack.target.client("events")
    bus = events.describe_event_bus(Name=events_stack.env["EventBusName"])
    (archive,) = events.list_archives(EventSourceArn=bus["Arn"])["Archives"]
    events.delete_archive(ArchiveName=archive["ArchiveName"])
    try:
        code, failed = verify(events_stack)
        assert (code, list(failed)) == (1, ["event bus"])
        assert "no enabled archive" in failed["event bus"]
        assert "aws events create-archive" in failed["event bus"]
    finally:
        events.create_archive(
            ArchiveName=archive["ArchiveName"],
            EventSourceArn=bus["Arn"],
            RetentionDays=archive["RetentionDays"],
        )


def test_a_deleted_events_mapping_fails_verify(events_stack: Stack) -> None:
    # Not mended: the stream mapping's UUID is the template's; the next test breaks more anyway.
    lam = events_stack.target.client("lambda")
    lam.delete_event_source_mapping(UUID=publisher_mapping(events_stack)["UUID"])

    code, failed = verify(events_stack)

    assert (code, list(failed)) == (1, ["events mapping"])
    expected = f"no mapping from the stream of {events_stack.table}"
    assert failed["events mapping"].startswith(expected)


def test_a_ledger_without_its_stream_fails_verify(events_stack: Stack) -> None:
    # Not mended: moto does not enable a table's stream again once it was disabled.
    events_stack.ddb.update_table(
        TableName=events_stack.table, StreamSpecification={"StreamEnabled": False}
    )

    code, failed = verify(events_stack)

    assert (code, set(failed)) == (1, BROKEN_BEFORE)  # the mapping stays deleted
    assert "its stream is disabled" in failed["ledger stream"]
    assert "StreamViewType=NEW_AND_OLD_IMAGES" in failed["ledger stream"]


def test_a_message_in_the_events_dead_letter_queue_fails_verify(events_stack: Stack) -> None:
    dlq = events_stack.env["EventsDeadLetterQueueUrl"]
    events_stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"DDBStreamBatchInfo": {}}')
    try:
        code, failed = verify(events_stack)
        assert code == 1
        # the two tests before it left these broken; the queue's alarm may fire meanwhile
        assert set(failed) - BROKEN_BEFORE - {"alarms"} == {"events dead-letter queue"}
        assert failed["events dead-letter queue"].startswith("1 messages")
        assert "filegate events redrive" in failed["events dead-letter queue"]
        table = filegate(events_stack.state_dir, "verify")
        assert table.returncode == 1
        assert re.search(r"events dead-letter queue\s*│\s*FAIL", table.stdout)
    finally:
        events_stack.sqs.purge_queue(QueueUrl=dlq)
        wait_for(lambda: events_stack.queue_depth(dlq) == 0, timeout=10)
