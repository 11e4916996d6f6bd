"""What a verify run reports: the name of each check (a row of the table), a check's
``CheckResult`` and the run's ``VerifyReport``; and ``Progress``, told each check's name as it
starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

STACK = "stack status"
FUNCTION = "function deployed"
NOTIFICATION = "bucket notification"
QUEUE_POLICY = "queue policy"
MAPPING = "event source mapping"
LEDGER_STREAM = "ledger stream"
EVENTS_MAPPING = "events mapping"
EVENT_BUS = "event bus"
ERRORS = "errors (15 min)"
SMOKE = "smoke upload"
ITEM = "ledger item"
LOGS = "function logs"
DLQ = "dead-letter queue"
EVENTS_DLQ = "events dead-letter queue"
ALARMS = "alarms"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    """Every check of one run, and the key the run looked at (the smoke key, or the given one)."""

    stack_name: str
    checks: tuple[CheckResult, ...]
    key: str | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def result(self, name: str) -> CheckResult | None:
        return next((check for check in self.checks if check.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "passed": self.passed,
            "key": self.key,
            "checks": [asdict(check) for check in self.checks],
        }
