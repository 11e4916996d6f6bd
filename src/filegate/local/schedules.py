"""EventBridge schedules on the local stack: each ``rate(...)`` rule of the template that
targets one of its functions runs that function at its rate, as EventBridge does.

moto stores the rule but never fires it. ``ScheduledRuns`` is a thread of the supervisor: one
period after it starts, and every period after that, it invokes the function through
``LocalFunctions`` (the workers direct Invokes use, so the invocation's logs and metrics,
embedded-metric-format lines included, are recorded like any other) with the event EventBridge
sends for a schedule ("Scheduled Event", EventBridge User Guide, "Creating a rule that runs on
a schedule"). `aws lambda invoke` runs the same function at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from filegate.errors import LocalStackError
from filegate.local.invoke import LATEST, LocalFunctions
from filegate.local.provision import ScheduleConfig

logger = logging.getLogger(__name__)


def scheduled_event(rule_arn: str, region: str, account: str, now: datetime) -> dict[str, Any]:
    """The event EventBridge sends a schedule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class ScheduledRuns:
    """Invokes one scheduled function every ``schedule.rate_seconds`` until stopped."""

    def __init__(self, functions: LocalFunctions, schedule: ScheduleConfig, region: str) -> None:
        self._functions = functions
        self._schedule = schedule
        self._region = region
        self._account = schedule.rule_arn.split(":")[4]  # arn:partition:events:region:account:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"schedule-{schedule.logical_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> None:
        event = scheduled_event(
            self._schedule.rule_arn, self._region, self._account, datetime.now(UTC)
        )
        try:
            self._functions.invoke(self._schedule.function_name, LATEST, event)
        except LocalStackError as exc:  # the workers went away (a stop): the next run retries
            logger.warning("scheduled run of %s failed: %s", self._schedule.function_name, exc)

    def _run(self) -> None:
        while not self._stop.wait(self._schedule.rate_seconds):
            self.run_once()
