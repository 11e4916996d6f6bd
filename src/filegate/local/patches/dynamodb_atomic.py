"""DynamoDB's per-item atomicity in the emulator: one DynamoDB request at a time.

DynamoDB applies each write to an item atomically: a conditional write's check and its write
see no other write in between, and a read sees an item before or after a write, never half
of it. moto checks the condition and then writes, in the request's thread, without a lock,
and an UpdateItem sets the item's attributes one by one. With requests served in threads (the
emulator's server; the ingestion handler's record threads against in-process moto), two
events for one key could both pass their condition, and the older write land last: a
``DeleteMarkerCreated`` written, then the ``Put`` before it written over it, the ledger saying
RECEIVED for a deleted object. The ledger's ordering rests on that atomicity, so every
DynamoDB request runs under one process-wide lock (the interpreter lock serialises moto's
work anyway; only the waits change hands). Always applied: it is what DynamoDB promises.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from filegate.local.patches.seams import Seams

_LOCK = threading.RLock()


def patch(seams: Seams) -> None:
    """Run every DynamoDB request of this process under one lock (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_filegate_atomic", False):
        return
    seams.replace(DynamoHandler, "call_action", _atomic(DynamoHandler.call_action))


@contextlib.contextmanager
def applied() -> Iterator[None]:
    """The lock for the duration of a block (in-process tests), then moto as it was."""
    seams = Seams()
    patch(seams)
    try:
        yield
    finally:
        seams.undo()


def _atomic(call_action: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call_action)
    def atomic(self: Any) -> Any:
        with _LOCK:
            return call_action(self)

    atomic._filegate_atomic = True  # type: ignore[attr-defined]
    return atomic
