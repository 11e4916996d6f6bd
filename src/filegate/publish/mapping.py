"""What one change of the ledger means to a consumer: a DynamoDB stream record in, at most one
verdict event out.

The ledger table's stream carries each item's old and new image (``NEW_AND_OLD_IMAGES``).
An item's ``processing_status`` says what the ledger holds (``ledger.Status``,
``ledger.UploadStatus``); an event is published when it *changes* to one a consumer cares
about, and for an object whose new version arrived (a new S3 sequencer, version id or ETag)
while the status stayed RECEIVED, ACCEPTED or REJECTED:

=================  ====================  ====================================================
new status         detail-type           when
=================  ====================  ====================================================
ACCEPTED           Upload Accepted       a declared upload arrived as declared
REJECTED           Upload Rejected       a declared upload arrived otherwise, or S3 refused
                                         its bytes and nothing arrived (``reason``)
EXPIRED            Upload Expired        a declared upload never arrived in time
ABORTED            Upload Aborted        the partner gave a declared upload up
RECEIVED           Object Received       an object put there some other way
DELETED            Object Deleted        an object that was there is gone
=================  ====================  ====================================================

Nothing is published for a PENDING declaration, a REMOVE, or a MODIFY that changes only
bookkeeping (``updated_at``, ``expires_at``, the expected checksum...): a duplicate S3 event
is refused by the ledger's conditional write and never reaches the stream, and a write that
re-states what the item says changes nothing that matters. ``event_id`` is derived from the
change itself (detail-type, key, and the S3 sequencer, version, event time or upload id that
identify it), so a retried batch publishes the same id and consumers deduplicate on it.

The detail's shape is docs/events.schema.json (``SCHEMA_VERSION``). Standard library only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from filegate.publish.exceptions import RecordError

SOURCE = "filegate"
# The publisher logs each event it put on the bus with this message (`filegate events tail`).
PUBLISHED_MESSAGE = "event published"
SCHEMA_VERSION = "1.0"
# uuid5 namespace of filegate's event ids: uuid5(NAMESPACE_URL, "https://filegate/events").
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://filegate/events")

UPLOAD_ACCEPTED = "Upload Accepted"
UPLOAD_REJECTED = "Upload Rejected"
UPLOAD_EXPIRED = "Upload Expired"
UPLOAD_ABORTED = "Upload Aborted"
OBJECT_RECEIVED = "Object Received"
OBJECT_DELETED = "Object Deleted"
DETAIL_TYPES = {
    "ACCEPTED": UPLOAD_ACCEPTED,
    "REJECTED": UPLOAD_REJECTED,
    "EXPIRED": UPLOAD_EXPIRED,
    "ABORTED": UPLOAD_ABORTED,
    "RECEIVED": OBJECT_RECEIVED,
    "DELETED": OBJECT_DELETED,
}
_PRESENT = frozenset({"RECEIVED", "ACCEPTED", "REJECTED"})
# What identifies the object an item describes: a change in any is a new object version.
_OBJECT_IDENTITY = ("sequencer_key", "version_id", "etag", "event_time")


@dataclass(frozen=True)
class VerdictEvent:
    """One event for the bus: its detail-type, its time (the ledger change's), its detail and
    its source (``filegate``; a partner webhook's signed copy has its own)."""

    detail_type: str
    time: datetime
    detail: dict[str, Any]
    source: str = SOURCE

    @property
    def event_id(self) -> str:
        # A partner webhook's detail carries the event's id inside its signed payload only.
        return str(
            self.detail.get("event_id") or f"{self.detail_type} for {self.detail.get('partner_id')}"
        )

    def entry(self, event_bus_name: str) -> dict[str, Any]:
        """The PutEvents request entry."""
        return {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": _json(self.detail),
            "Time": self.time,
            "EventBusName": event_bus_name,
        }

    def document(self, eventbridge_id: str | None = None) -> dict[str, Any]:
        """The event as EventBridge delivers it to a rule's target (the fields filegate sets)."""
        return {
            "id": eventbridge_id,
            "source": self.source,
            "detail-type": self.detail_type,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "detail": self.detail,
        }


def verdict_event(record: Mapping[str, Any]) -> VerdictEvent | None:
    """The event one stream record publishes, or None when the change means nothing to a
    consumer."""
    if record.get("eventName") == "REMOVE":
        return None
    stream = record.get("dynamodb")
    if not isinstance(stream, Mapping):
        raise RecordError("the stream record has no 'dynamodb' object")
    new = plain(stream.get("NewImage"))
    old = plain(stream.get("OldImage"))
    if "s3_key" not in new:
        raise RecordError(
            "the stream record has no NewImage.s3_key: the stream must be NEW_AND_OLD_IMAGES"
        )
    status = str(new.get("processing_status", ""))
    detail_type = DETAIL_TYPES.get(status)
    if detail_type is None or not _changed(status, old, new):
        return None
    return VerdictEvent(detail_type, _change_time(new, stream), detail(detail_type, new))


def _changed(status: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    if old.get("processing_status") != status:
        return True
    if status not in _PRESENT:
        return False  # still DELETED, EXPIRED or ABORTED: nothing new to say
    return any(old.get(name) != new.get(name) for name in _OBJECT_IDENTITY)


def event_id(detail_type: str, item: Mapping[str, Any]) -> str:
    """A stable id for the change: the same ledger change always gives the same id."""
    marker = (
        item.get("sequencer_key")
        or item.get("version_id")
        or item.get("event_time")
        or item.get("upload_id")
        or ""
    )
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{detail_type}\n{item['s3_key']}\n{marker}"))


def detail(detail_type: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The event's detail (docs/events.schema.json) from the item's new image."""
    status = str(item["processing_status"])
    # A REJECTED that no S3 event wrote (S3 refused the bytes) describes no object.
    present = status in _PRESENT and bool(item.get("event_time"))
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(detail_type, item),
        "verdict": status,
        "reason": item.get("reason"),
        "key": item["s3_key"],
        "bucket": item.get("s3_bucket"),
        "partner_id": item.get("partner_id"),
        "upload_id": item.get("upload_id"),
        "size": item.get("size") if present else None,
        "content_type": item.get("content_type") if present else None,
        "version_id": item.get("version_id"),
        "sequencer": item.get("sequencer"),
        "etag": item.get("etag") if present else None,
        "checksums": _checksums(item, present),
        "declared": _declared(item),
        "times": {
            "event_time": item.get("event_time"),
            "first_seen_at": item.get("first_seen_at"),
            "changed_at": item.get("updated_at"),
            "expires_at": item.get("expires_at"),
        },
    }
    return document


def _checksums(item: Mapping[str, Any], present: bool) -> dict[str, Any]:
    return {
        "sha256": item.get("checksum_sha256") if present else None,
        "sha256_type": item.get("checksum_type") if present else None,
        "sha256_part_count": item.get("checksum_part_count") if present else None,
        "expected_sha256": item.get("expected_checksum_sha256"),
    }


def _declared(item: Mapping[str, Any]) -> dict[str, Any] | None:
    if not item.get("upload_id"):
        return None
    return {
        "size": item.get("declared_size"),
        "sha256": item.get("declared_sha256"),
        "content_type": item.get("declared_content_type"),
        "method": item.get("upload_method"),
    }


def _change_time(item: Mapping[str, Any], stream: Mapping[str, Any]) -> datetime:
    """When the ledger changed: the item's ``updated_at``, else the stream record's time."""
    text = item.get("updated_at")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            pass
    seconds = stream.get("ApproximateCreationDateTime")
    if isinstance(seconds, int | float):
        return datetime.fromtimestamp(seconds, UTC)
    raise RecordError("the stream record has no updated_at and no ApproximateCreationDateTime")


def plain(image: Any) -> dict[str, Any]:
    """A stream image (DynamoDB JSON) as plain values: the ledger writes S and N only."""
    if image is None:
        return {}
    if not isinstance(image, Mapping):
        raise RecordError("a stream image is not an object of attributes")
    values: dict[str, Any] = {}
    for name, attribute in image.items():
        if not isinstance(attribute, Mapping):
            raise RecordError(f"attribute {name!r} of a stream image is not typed DynamoDB JSON")
        if "S" in attribute:
            values[name] = str(attribute["S"])
        elif "N" in attribute:
            values[name] = _number(name, attribute["N"])
    return values


def _number(name: str, text: Any) -> int | float:
    try:
        return int(text)
    except (TypeError, ValueError):
        try:
            return float(text)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"attribute {name!r} is not a number: {text!r}") from exc


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)
