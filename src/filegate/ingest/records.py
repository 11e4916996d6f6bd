"""What one S3 object event does to the ledger.

``Ingestor.ingest`` is the whole record logic: a created object costs one HeadObject and one
conditional ledger write, a removed object one write. The clients arrive inside the injected
``ObjectStore`` and ``Ledger``; this module makes no AWS call of its own.
"""

from __future__ import annotations

import logging

from filegate.events import ObjectEvent
from filegate.ledger import Ledger, LedgerEntry, Outcome, Status
from filegate.storage import ObjectInfo, ObjectStore

logger = logging.getLogger(__name__)


class Ingestor:
    """Applies object events to the ledger, reading S3 only for created objects."""

    def __init__(self, store: ObjectStore, ledger: Ledger) -> None:
        self._store = store
        self._ledger = ledger

    def ingest(self, event: ObjectEvent) -> Outcome:
        """Record one event; the outcome says whether it changed the ledger."""
        if event.is_created:
            return self._ledger.record(self._created_entry(event))
        if event.is_removed:
            return self._ledger.record(removed_entry(event))
        logger.info("event %s is not recorded in the ledger", event.event_name)
        return Outcome.IGNORED

    def _created_entry(self, event: ObjectEvent) -> LedgerEntry:
        info = self._store.head(event.bucket, event.key, event.version_id)
        if info is None:
            # Deleted before this event was processed: say what S3 says. A later delete event
            # rewrites DELETED; a delete already recorded makes this write stale.
            logger.info("object is gone from S3 before its create event was processed")
            return removed_entry(event)
        return received_entry(event, info)


def received_entry(event: ObjectEvent, info: ObjectInfo) -> LedgerEntry:
    """The ledger entry for an object HeadObject found (its answer wins over the event's)."""
    return LedgerEntry(
        key=event.key,
        bucket=event.bucket,
        status=Status.RECEIVED,
        event_name=event.event_name,
        event_time=event.event_time,
        sequencer=event.sequencer,
        version_id=info.version_id or event.version_id,
        size=info.size,
        content_type=info.content_type,
        etag=info.etag or event.etag,
        checksum_sha256=info.checksum_sha256,
    )


def removed_entry(event: ObjectEvent) -> LedgerEntry:
    """The ledger entry for an object that is gone; its size and type stay as recorded."""
    return LedgerEntry(
        key=event.key,
        bucket=event.bucket,
        status=Status.DELETED,
        event_name=event.event_name,
        event_time=event.event_time,
        sequencer=event.sequencer,
        version_id=event.version_id,
    )
