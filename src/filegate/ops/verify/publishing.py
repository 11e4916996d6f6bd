"""The checks of the events path (docs/events.md), ledger -> stream -> the publisher ->
EventBridge: the ledger's stream and its view, the publisher's event source mapping on it
(state, position, on-failure destination: ``ops.wiring.events_mapping_problems``), the event
bus and its archive, and the events dead-letter queue."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from filegate.errors import is_error
from filegate.ops.verify.base import Checks
from filegate.ops.verify.results import (
    EVENT_BUS,
    EVENTS_DLQ,
    EVENTS_MAPPING,
    LEDGER_STREAM,
    CheckResult,
)
from filegate.ops.wiring import (
    STREAM_VIEW,
    events_mapping_problems,
    function_name,
    on_failure_destination,
    reads_stream_of,
    stream_view,
)
from filegate.outputs import EVENT_BUS_NAME, EVENTS_DLQ_URL, EVENTS_FUNCTION_NAME
from filegate.queues import MessageQueue


class PublishingChecks(Checks):
    """Whether the verdict events can leave, and whether any failed to."""

    def ledger_stream(self) -> CheckResult:
        table = self._ledger_table()
        name, view = table["TableName"], stream_view(table)
        if view == STREAM_VIEW:
            return CheckResult(LEDGER_STREAM, True, f"{name}: stream enabled, {view}")
        found = f"its stream is {view}" if view else "its stream is disabled"
        return CheckResult(
            LEDGER_STREAM,
            False,
            f"{name}: {found}, so no verdict event is published; enable it as the template"
            f" declares (aws dynamodb update-table --table-name {name} --stream-specification"
            f" StreamEnabled=true,StreamViewType={STREAM_VIEW}), then point the events mapping"
            " at the new stream",
        )

    def events_mapping(self) -> CheckResult:
        function = self.ref.output(EVENTS_FUNCTION_NAME)
        table = self._ledger_table()
        latest = table.get("LatestStreamArn")
        ours = sorted(  # the one on the current stream first, if there are several
            (m for m in self._mappings_of(function) if reads_stream_of(m, str(table["TableArn"]))),
            key=lambda m: m.get("EventSourceArn") != latest,
        )
        if not ours:
            return CheckResult(
                EVENTS_MAPPING,
                False,
                f"no mapping from the stream of {table['TableName']} to {function}: no verdict"
                " event is published; recreate it as the template's PublisherEventSourceMapping"
                f" declares it (aws lambda create-event-source-mapping --function-name {function}"
                f" --event-source-arn {latest} --starting-position TRIM_HORIZON ...): a deploy"
                " of the same template does not restore what was deleted outside CloudFormation",
            )
        problems = self._events_mapping_problems(ours[0], table)
        detail = f"stream -> {function}: " + ("; ".join(problems) or "Enabled")
        if not problems:
            destination = on_failure_destination(ours[0]).rsplit(":", 1)[-1]
            detail += f", on failure -> {destination}"
        return CheckResult(EVENTS_MAPPING, not problems, detail)

    def _mappings_of(self, function: str) -> list[dict[str, Any]]:
        pages = self.client("lambda").get_paginator("list_event_source_mappings")
        return [
            m
            for page in pages.paginate(FunctionName=function)
            for m in page.get("EventSourceMappings", [])
            if function_name(m.get("FunctionArn", "")) == function
        ]

    def _events_mapping_problems(self, mapping: dict[str, Any], table: dict[str, Any]) -> list[str]:
        runner = self.ref.local is not None and self.ref.local.runs_mapping()
        dlq_arn = MessageQueue(self.ref.output(EVENTS_DLQ_URL), self.client("sqs")).arn()
        return events_mapping_problems(
            mapping, str(table.get("LatestStreamArn", "")), dlq_arn, local_runner=runner
        )

    def event_bus(self) -> CheckResult:
        name, events = self.ref.output(EVENT_BUS_NAME), self.client("events")
        try:
            bus_arn = str(events.describe_event_bus(Name=name)["Arn"])
        except ClientError as exc:
            if not is_error(exc, "ResourceNotFoundException"):
                raise
            return CheckResult(
                EVENT_BUS,
                False,
                f"no event bus {name}: the publisher cannot publish; restore the stack's"
                " EventBus (see `aws cloudformation detect-stack-drift`)",
            )
        archives = events.list_archives(EventSourceArn=bus_arn).get("Archives", [])
        enabled = [a for a in archives if a.get("State") == "ENABLED"]
        if not enabled:
            found = ", ".join(f"{a['ArchiveName']} {a.get('State')}" for a in archives)
            return CheckResult(
                EVENT_BUS,
                False,
                f"{name}: no enabled archive ({found or 'none'}), so its events cannot be"
                f" replayed; create one (aws events create-archive --archive-name {name}"
                f" --event-source-arn {bus_arn} --retention-days 90)",
            )
        archive = enabled[0]
        return CheckResult(
            EVENT_BUS,
            True,
            f"{name}, archived in {archive['ArchiveName']}"
            f" ({archive.get('RetentionDays') or 'indefinite'} days)",
        )

    def events_dead_letter_queue(self) -> CheckResult:
        dead_letters = MessageQueue(self.ref.output(EVENTS_DLQ_URL), self.client("sqs"))
        visible, hidden = dead_letters.counts()
        detail = f"{visible} messages ({hidden} in flight)"
        if visible or hidden:
            detail += (
                ": ledger changes were not published; `filegate events redrive` publishes them"
                " again (docs/runbook.md, section 9)"
            )
        return CheckResult(EVENTS_DLQ, visible == 0 and hidden == 0, detail)
