"""`filegate verify` against a stack built in moto: each check passes on a healthy stack and
fails, alone, when the piece it looks at is broken."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from ops_builders import (
    BUCKET,
    EVENTS_FUNCTION,
    FUNCTION,
    KEY,
    TABLE,
    build_stack,
    client,
    put_alarm,
    queue_policy,
    record_processed,
)

from filegate.errors import StackError
from filegate.ops import verify as v
from filegate.stackref import StackRef

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def ref(aws: None) -> StackRef:
    stack = build_stack()
    record_processed()
    return stack


def run(ref: StackRef, key: str | None = KEY, timeout: float = 1.0) -> v.VerifyReport:
    return v.Verifier(ref, timeout=timeout, sleep=lambda _: None).run(key)


def failed(report: v.VerifyReport) -> list[str]:
    return [check.name for check in report.checks if not check.passed]


def test_a_healthy_stack_passes_every_check_for_a_processed_key(ref: StackRef) -> None:
    report = run(ref)
    assert report.passed, report.checks
    assert [c.name for c in report.checks] == [
        v.STACK,
        v.FUNCTION,
        v.NOTIFICATION,
        v.QUEUE_POLICY,
        v.MAPPING,
        v.LEDGER_STREAM,
        v.EVENTS_MAPPING,
        v.EVENT_BUS,
        v.ERRORS,
        v.ITEM,
        v.LOGS,
        v.DLQ,
        v.EVENTS_DLQ,
        v.ALARMS,
    ]
    assert report.key == KEY
    assert report.result(v.STACK).detail == "CREATE_COMPLETE"  # type: ignore[union-attr]
    assert "2 alarms, none in ALARM" in report.result(v.ALARMS).detail  # type: ignore[union-attr]


def dlq_message(ref: StackRef) -> None:
    client("sqs").send_message(QueueUrl=ref.output("DeadLetterQueueUrl"), MessageBody="{}")


def alarm_firing(ref: StackRef) -> None:
    client("cloudwatch").set_alarm_state(
        AlarmName=f"{FUNCTION}-errors", StateValue="ALARM", StateReason="test"
    )


def notification_removed(ref: StackRef) -> None:
    client("s3").put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})


def policy_for_another_bucket(ref: StackRef) -> None:
    policy = queue_policy("someone-elses-bucket", ref.output("QueueArn"))
    client("sqs").set_queue_attributes(
        QueueUrl=ref.output("QueueUrl"), Attributes={"Policy": policy}
    )


def mapping_disabled(ref: StackRef) -> None:
    lam = client("lambda")
    mapping = lam.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"][0]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)


def an_error_counted(ref: StackRef) -> None:
    client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Value": 1.0,
                "Unit": "Count",
                "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}],
            }
        ],
    )


def stream_disabled(ref: StackRef) -> None:
    client("dynamodb").update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})


def events_mapping(ref: StackRef) -> dict[str, Any]:
    lam = client("lambda")
    return dict(
        lam.list_event_source_mappings(FunctionName=EVENTS_FUNCTION)["EventSourceMappings"][0]
    )


def events_mapping_deleted(ref: StackRef) -> None:
    client("lambda").delete_event_source_mapping(UUID=events_mapping(ref)["UUID"])


def events_mapping_disabled(ref: StackRef) -> None:
    client("lambda").update_event_source_mapping(UUID=events_mapping(ref)["UUID"], Enabled=False)


def events_mapping_without_destination(ref: StackRef) -> None:
    client("lambda").update_event_source_mapping(
        UUID=events_mapping(ref)["UUID"], DestinationConfig={"OnFailure": {}}
    )


def archive_deleted(ref: StackRef) -> None:
    events = client("events")
    (archive,) = events.list_archives()["Archives"]
    events.delete_archive(ArchiveName=archive["ArchiveName"])


def bus_deleted(ref: StackRef) -> None:
    events = client("events")
    for archive in events.list_archives()["Archives"]:
        events.delete_archive(ArchiveName=archive["ArchiveName"])
    events.delete_event_bus(Name=EVENTS_FUNCTION)


def events_dlq_message(ref: StackRef) -> None:
    client("sqs").send_message(QueueUrl=ref.output("EventsDeadLetterQueueUrl"), MessageBody="{}")


@pytest.mark.parametrize(
    ("breakage", "check", "says"),
    [
        (stream_disabled, v.LEDGER_STREAM, "its stream is disabled"),
        (events_mapping_deleted, v.EVENTS_MAPPING, f"no mapping from the stream of {TABLE}"),
        (events_mapping_disabled, v.EVENTS_MAPPING, "Disabled: enable it"),
        (events_mapping_without_destination, v.EVENTS_MAPPING, "on-failure destination is none"),
        (archive_deleted, v.EVENT_BUS, "no enabled archive (none)"),
        (bus_deleted, v.EVENT_BUS, f"no event bus {EVENTS_FUNCTION}"),
        (events_dlq_message, v.EVENTS_DLQ, "`filegate events redrive`"),
        (dlq_message, v.DLQ, "1 messages"),
        (alarm_firing, v.ALARMS, f"in ALARM: {FUNCTION}-errors"),
        (notification_removed, v.NOTIFICATION, "no s3:ObjectCreated events"),
        (policy_for_another_bucket, v.QUEUE_POLICY, f"arn:aws:s3:::{BUCKET}"),
        (mapping_disabled, v.MAPPING, "Disabled"),
        (an_error_counted, v.ERRORS, "1 errors"),
    ],
)
def test_each_broken_piece_fails_its_own_check_only(
    ref: StackRef, breakage: Callable[[StackRef], None], check: str, says: str
) -> None:
    breakage(ref)
    report = run(ref)
    assert failed(report) == [check]
    assert says in report.result(check).detail  # type: ignore[union-attr]


def test_alarms_of_other_stacks_are_not_counted(ref: StackRef) -> None:
    topic = client("sns").create_topic(Name="other-alerts")["TopicArn"]
    put_alarm("other-errors", topic)
    client("cloudwatch").set_alarm_state(
        AlarmName="other-errors", StateValue="ALARM", StateReason="x"
    )
    assert run(ref).passed


def test_a_stack_with_no_alarms_fails_the_alarm_check(ref: StackRef) -> None:
    client("cloudwatch").delete_alarms(
        AlarmNames=[f"{FUNCTION}-errors", f"{FUNCTION}-dlq-not-empty"]
    )
    assert failed(run(ref)) == [v.ALARMS]


def test_a_key_never_processed_fails_the_item_and_logs_checks(ref: StackRef) -> None:
    report = run(ref, key="partner-a/never-arrived.csv")
    assert failed(report) == [v.ITEM, v.LOGS]
    assert "no ledger item" in report.result(v.ITEM).detail  # type: ignore[union-attr]


def test_an_invocation_that_only_failed_fails_the_logs_check(ref: StackRef) -> None:
    record_processed(
        "partner-a/bad.csv", request_id="0badbadb-0000-0000-0000-000000000000", outcome="error"
    )
    assert failed(run(ref, key="partner-a/bad.csv")) == [v.LOGS]


def test_a_smoke_upload_that_never_reaches_the_ledger_fails_after_the_timeout(
    ref: StackRef,
) -> None:
    # moto runs no function: the object lands in the bucket, its item never comes.
    report = run(ref, key=None, timeout=0.2)
    assert failed(report) == [v.ITEM, v.LOGS]
    smoke = report.result(v.SMOKE)
    assert smoke is not None
    assert smoke.passed
    assert report.key is not None
    assert report.key.startswith("smoke/test-")
    assert client("s3").head_object(Bucket=BUCKET, Key=report.key)["ContentType"] == "text/plain"
    assert "no item after 0.2 s" in report.result(v.ITEM).detail  # type: ignore[union-attr]


def test_a_stack_that_cannot_be_described_is_a_stack_error(ref: StackRef) -> None:
    with pytest.raises(StackError, match="cannot describe stack missing-stack"):
        run(replace(ref, stack_name="missing-stack"))


def test_the_report_is_json_serialisable(ref: StackRef) -> None:
    document = json.loads(json.dumps(run(ref).as_dict()))
    assert document["passed"] is True
    assert {c["name"] for c in document["checks"]} >= {v.STACK, v.DLQ, v.ALARMS}


def test_smoke_keys_follow_the_runbook() -> None:
    from datetime import UTC, datetime

    assert v.smoke_key(datetime(2025, 9, 28, 14, 31, 13, tzinfo=UTC)) == "smoke/test-1759069873.txt"
