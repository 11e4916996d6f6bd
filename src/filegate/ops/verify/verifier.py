"""The verify run: every check, in the runbook's order, into one ``VerifyReport``."""

from __future__ import annotations

from filegate.ops.verify.base import DEFAULT_TIMEOUT
from filegate.ops.verify.ingestion import IngestionChecks
from filegate.ops.verify.objects import ObjectChecks
from filegate.ops.verify.publishing import PublishingChecks
from filegate.ops.verify.results import (
    ALARMS,
    DLQ,
    ERRORS,
    EVENT_BUS,
    EVENTS_DLQ,
    EVENTS_MAPPING,
    FUNCTION,
    LEDGER_STREAM,
    MAPPING,
    NOTIFICATION,
    QUEUE_POLICY,
    STACK,
    Progress,
    VerifyReport,
)
from filegate.ops.verify.stack import StackChecks
from filegate.stackref import StackRef


class Verifier(StackChecks, IngestionChecks, PublishingChecks, ObjectChecks):
    """Runs the checks against one stack; clock and sleep are injected for tests."""

    def run(self, key: str | None = None) -> VerifyReport:
        """All checks; with ``key``, that object's item and logs instead of a smoke upload."""
        self._table = None  # each run reads the ledger's table afresh
        checks = [self._step(STACK, self.stack_status)]
        for name, check in (
            (FUNCTION, self.function_deployed),
            (NOTIFICATION, self.bucket_notification),
            (QUEUE_POLICY, self.queue_policy),
            (MAPPING, self.event_source_mapping),
            (LEDGER_STREAM, self.ledger_stream),
            (EVENTS_MAPPING, self.events_mapping),
            (EVENT_BUS, self.event_bus),
            (ERRORS, self.errors_metric),
        ):
            checks.append(self._guarded(name, check))
        object_checks, key = self._object_checks(key)
        checks += object_checks
        checks.append(self._guarded(DLQ, self.dead_letter_queue))
        checks.append(self._guarded(EVENTS_DLQ, self.events_dead_letter_queue))
        checks.append(self._guarded(ALARMS, self.alarms))
        return VerifyReport(self.ref.stack_name, tuple(checks), key)


def verify(
    ref: StackRef,
    key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> VerifyReport:
    """Run every check against the stack (a smoke upload unless ``key`` is given)."""
    return Verifier(ref, timeout=timeout, progress=progress).run(key)
