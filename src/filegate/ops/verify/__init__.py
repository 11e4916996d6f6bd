"""`filegate verify`: the runbook's "verify system healthy", each step one check.

Each check is a small method returning a ``CheckResult`` (name, passed, detail); ``verify``
runs them in the runbook's order and never stops at the first failure, so the table shows
everything that is wrong at once:

1. the stack's status is ``*_COMPLETE`` and not a rollback;
2. the function is deployed (State Active, last update successful);
3. S3 can reach it: the bucket notifies the queue of created objects, the queue policy lets
   the bucket send, and an enabled event source mapping feeds the queue to the function (in
   this architecture S3 never invokes the function itself);
4. the verdict events can leave (docs/events.md): the ledger table's stream is enabled with
   ``NEW_AND_OLD_IMAGES``; the publisher's event source mapping reads that stream, is Enabled
   (locally: the local stack's runner feeds it) and has the events dead-letter queue as its
   on-failure destination; the event bus exists with an enabled archive;
5. the function's ``AWS/Lambda`` ``Errors`` summed over the last 15 minutes is 0;
6. a smoke upload (``smoke/test-<epoch>.txt``) reaches the ledger as RECEIVED with its size,
   type and version, within ``timeout`` seconds, and the function's logs show it processed;
7. the dead-letter queue is empty, and so is the events dead-letter queue;
8. none of the stack's alarms (``ops.alarms.stack_alarms``, what `filegate alarms` lists) is
   in ALARM.

An AWS error inside a check fails that check; a stack that cannot be described at all raises
``StackError`` (the CLI's exit code 2).

One module per concern: ``results`` (the check names and what a run reports), ``base`` (what
every check reads through), ``stack`` (1, 8), ``ingestion`` (2, 3, 5 and the dead-letter
queue), ``publishing`` (4 and the events dead-letter queue), ``objects`` (6) and ``verifier``
(the run, in this order). This package re-exports their public names.
"""

from __future__ import annotations

from filegate.ops.verify.base import DEFAULT_TIMEOUT, POLL_SECONDS, Clients
from filegate.ops.verify.ingestion import ERRORS_WINDOW
from filegate.ops.verify.objects import SMOKE_CONTENT_TYPE, SMOKE_PREFIX, SmokeObject, smoke_key
from filegate.ops.verify.results import (
    ALARMS,
    DLQ,
    ERRORS,
    EVENT_BUS,
    EVENTS_DLQ,
    EVENTS_MAPPING,
    FUNCTION,
    ITEM,
    LEDGER_STREAM,
    LOGS,
    MAPPING,
    NOTIFICATION,
    QUEUE_POLICY,
    SMOKE,
    STACK,
    CheckResult,
    Progress,
    VerifyReport,
)
from filegate.ops.verify.verifier import Verifier, verify

__all__ = [
    "ALARMS",
    "DEFAULT_TIMEOUT",
    "DLQ",
    "ERRORS",
    "ERRORS_WINDOW",
    "EVENTS_DLQ",
    "EVENTS_MAPPING",
    "EVENT_BUS",
    "FUNCTION",
    "ITEM",
    "LEDGER_STREAM",
    "LOGS",
    "MAPPING",
    "NOTIFICATION",
    "POLL_SECONDS",
    "QUEUE_POLICY",
    "SMOKE",
    "SMOKE_CONTENT_TYPE",
    "SMOKE_PREFIX",
    "STACK",
    "CheckResult",
    "Clients",
    "Progress",
    "SmokeObject",
    "Verifier",
    "VerifyReport",
    "smoke_key",
    "verify",
]
