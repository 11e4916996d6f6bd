"""The ingestion's own errors (the rest of the family is in ``filegate.errors``)."""

from __future__ import annotations

from filegate.errors import FilegateError


class ForeignBucketError(FilegateError):
    """An event names a bucket other than the stack's: refused before any S3 or ledger call.

    It fails its message on purpose (back to the queue, then the dead-letter queue, where the
    alarm shows it): such an event never comes from the stack's own bucket, so it means a
    misconfiguration or a forged message, which an operator should see rather than a metric
    nobody alarms on.
    """
