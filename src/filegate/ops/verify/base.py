"""What every check of a verify run reads through: the stack, one client per service for the
whole run, the ledger (its DescribeTable read once per run), the clock and the polling wait;
and how a check is run (its name told to ``progress``, an AWS error failing it, not the run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import FilegateError
from filegate.ledger import Ledger
from filegate.ops.verify.results import CheckResult, Progress
from filegate.outputs import TABLE_NAME
from filegate.stackref import StackRef

DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 0.5


class Clients:
    """One client per service for a whole run: making one costs about a third of a second."""

    def __init__(self, ref: StackRef) -> None:
        self._ref = ref
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self._ref.client(service)
        return self._made[service]


class Checks:
    """The state the checks share; clock and sleep are injected for tests."""

    def __init__(
        self,
        ref: StackRef,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clients: Clients | None = None,
    ) -> None:
        self.ref = ref
        self.client = clients or Clients(ref)
        self.timeout = timeout
        self._progress = progress or (lambda _: None)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._table: dict[str, Any] | None = None

    def _step(self, name: str, check: Callable[[], CheckResult]) -> CheckResult:
        self._progress(name)
        return check()

    def _guarded(self, name: str, check: Callable[[], CheckResult]) -> CheckResult:
        try:
            return self._step(name, check)
        except (ClientError, BotoCoreError, FilegateError) as exc:
            return CheckResult(name, False, f"could not check: {exc}")

    def _ledger(self) -> Ledger:
        return Ledger(self.ref.output(TABLE_NAME), self.client("dynamodb"))

    def _ledger_table(self) -> dict[str, Any]:
        """The ledger's DescribeTable ``Table``, read once per run (``Verifier.run`` forgets
        it): the stream and the publisher's mapping are both checked against it."""
        if self._table is None:
            self._table = self._ledger().describe()["Table"]
        return self._table

    def _wait(self, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            value = probe()
            if value or time.monotonic() >= deadline:
                return value
            self._sleep(POLL_SECONDS)
