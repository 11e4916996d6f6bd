"""DynamoDB's per-item atomicity in the emulator: one DynamoDB request at a time.

DynamoDB applies each write to an item atomically: a conditional write's check and its write
see no other write in between, and a read sees an item before or after a write, never half
of it. moto checks the condition and then writes, in the request's thread, without a lock,
and an UpdateItem sets the item's attributes one by one. With requests served in threads, two
events for one key could both pass their condition, and the older write land last: a
``DeleteMarkerCreated`` written, then the ``Put`` before it written over it, the ledger saying
RECEIVED for a deleted object. The ledger's ordering rests on that atomicity, so
:class:`OneDynamoDBRequestAtATime`, WSGI middleware right around moto's app
(``emulator.application``), runs the emulator's DynamoDB requests one at a time (the
interpreter lock serialises moto's work anyway; only the waits change hands). In-process moto
(the functional tests' ``mock_aws``) has no WSGI app: their conftest takes the same lock around
moto's DynamoDB handler for the test's duration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

DYNAMODB_TARGET = "DynamoDB_20120810."


class OneDynamoDBRequestAtATime:
    """WSGI middleware: DynamoDB requests to ``app`` one at a time; the rest as they come."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(DYNAMODB_TARGET):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))
