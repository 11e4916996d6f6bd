"""The demo scenario: a handful of partner files through the running stack into the ledger.

It uploads sample files (one key with spaces and non-ASCII characters, one overwritten, one
deleted), then waits until the ledger says what S3 says about each of them. The scenario is
plain library code: the CLI renders its progress and result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.ledger import Ledger, LedgerItem, Status
from filegate.storage import ObjectStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    """One thing the demo does to the bucket, and what the ledger should say after it."""

    action: str  # "put" or "delete"
    key: str
    body: bytes = b""
    content_type: str = "application/octet-stream"


def scenario(stamp: int) -> list[Step]:
    manifest = "partner-b/manifest.json"
    scratch = "partner-b/scratch.tmp"
    return [
        Step("put", "partner-a/invoice-2026-11.csv", b"id,amount\n1,100\n2,250\n", "text/csv"),
        Step(
            "put",
            "partner-a/Quarterly report Q3 – Zürich ü.pdf",
            b"%PDF-1.7\n" + b"x" * 2048,
            "application/pdf",
        ),
        Step("put", manifest, b'{"version": 1}', "application/json"),
        Step("put", manifest, b'{"version": 2, "files": 3}', "application/json"),
        Step("put", scratch, b"temporary", "text/plain"),
        Step("delete", scratch),
        Step("put", f"smoke/test-{stamp}.txt", b"smoke test\n", "text/plain"),
    ]


def expected_state(steps: list[Step]) -> dict[str, tuple[Status, int | None]]:
    """The final (status, size) per key that the ledger must reach."""
    final: dict[str, tuple[Status, int | None]] = {}
    for step in steps:
        if step.action == "put":
            final[step.key] = (Status.RECEIVED, len(step.body))
        else:
            # A deleted item keeps the size the ledger knew, and that depends on delivery order
            # (a put delivered after its delete is stale and ignored): any size will do.
            final[step.key] = (Status.DELETED, None)
    return final


class Demo:
    """Runs the scenario against a stack's bucket and ledger."""

    def __init__(self, target: Target, bucket: str, table: str) -> None:
        self._bucket = bucket
        self._store = ObjectStore(target.client("s3"))
        self._ledger = Ledger(table, target.client("dynamodb"))

    def apply(self, steps: list[Step], progress: Progress) -> None:
        for step in steps:
            if step.action == "put":
                self._store.put(self._bucket, step.key, step.body, step.content_type)
            else:
                self._store.delete(self._bucket, step.key)
            progress(f"{step.action} {step.key}")

    def wait_for_ledger(
        self, expected: dict[str, tuple[Status, int | None]], timeout: float = 30.0
    ) -> list[LedgerItem]:
        """Poll the ledger until every key reached its expected state."""
        deadline = time.monotonic() + timeout
        pending = dict(expected)
        found: dict[str, LedgerItem] = {}
        while pending and time.monotonic() < deadline:
            for key, (status, size) in list(pending.items()):
                item = self._ledger.get(key)
                if item is not None and item.status == status and size in (None, item.size):
                    found[key] = item
                    del pending[key]
            if pending:
                time.sleep(0.1)
        if pending:
            raise LocalStackError(
                f"the ledger did not reach the expected state within {timeout:.0f} s for:"
                f" {', '.join(sorted(pending))}; see `filegate logs` or the function's log group"
            )
        return [found[key] for key in expected]
