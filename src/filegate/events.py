"""S3 and SQS event parsing: typed read-only object events, key decoding, sequencer order.

This module owns the shape of what S3 sends. It turns an S3 notification document (delivered
directly, inside an SQS message body, or inside an SNS envelope in that body) into
``ObjectEvent`` values, and it is the ONLY place object keys are decoded (``unquote_plus``).
``notification_record`` builds one record in that shape, for `filegate reconcile --repair`,
which re-drives an object through the queue as S3 would have sent it.
Only the standard library is imported: the Lambda package ships this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from filegate.errors import EventError

SEQUENCER_WIDTH = 32
NO_PREFIX = "/"  # the GSI partition for keys with no folder (a GSI key cannot be empty)
TEST_EVENT = "s3:TestEvent"
# What S3 documents for every record of an event notification (version 2.1).
EVENT_VERSION = "2.1"
S3_SCHEMA_VERSION = "1.0"
_HEX = frozenset("0123456789ABCDEF")


class EventKind(StrEnum):
    """What an event says happened to the object."""

    CREATED = "created"
    REMOVED = "removed"
    OTHER = "other"  # tagging, ACL, restore, replication...: the ledger does not record these


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object event, key decoded and time normalised."""

    bucket: str
    key: str
    event_name: str
    event_time: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def kind(self) -> EventKind:
        if self.event_name.startswith("ObjectCreated:"):
            return EventKind.CREATED
        if self.event_name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
            return EventKind.REMOVED
        return EventKind.OTHER

    @property
    def is_created(self) -> bool:
        return self.kind is EventKind.CREATED

    @property
    def is_removed(self) -> bool:
        return self.kind is EventKind.REMOVED

    @property
    def prefix(self) -> str:
        return key_prefix(self.key)


def sequencer_key(sequencer: str) -> str:
    """A string whose plain comparison orders sequencers as S3 documents.

    S3 says: right-pad the shorter sequencer with zeros, then compare. Padding every value to a
    fixed width does that for values up to the width. Longer values keep their digits, minus
    trailing zeros beyond the width, so that equal padded values give equal keys and a prefix
    never compares below a longer value that only adds zeros.
    """
    upper = sequencer.strip().upper()
    return upper.rstrip("0").ljust(SEQUENCER_WIDTH, "0")


def key_prefix(key: str) -> str:
    """The first folder of a key; keys with no folder (or a leading "/") share ``NO_PREFIX``."""
    head, slash, _ = key.partition("/")
    return head if slash and head else NO_PREFIX


def iso_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``: the one time format the ledger stores and compares."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    # %Y is not zero-padded below year 1000 on every platform; format the year by hand.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def normalise_event_time(text: str) -> str:
    """Any ISO 8601 time S3 (or a hand-written event) uses, as ``iso_utc`` text."""
    try:
        return iso_utc(datetime.fromisoformat(text))
    except (TypeError, ValueError) as exc:
        raise EventError(f"eventTime {text!r} is not an ISO 8601 time") from exc


def is_test_event(document: Mapping[str, Any]) -> bool:
    """True for the message S3 sends when a notification configuration is written."""
    return document.get("Event") == TEST_EVENT


def notification_record(
    event: ObjectEvent, principal: str, region: str = "", configuration_id: str = ""
) -> dict[str, Any]:
    """One record of an S3 event notification for ``event``, as S3 lays it out.

    The key is encoded as S3 encodes it (URL-encoded, a space as "+"), so ``parse_s3_record``
    gives ``event`` back. ``principal`` is the record's ``userIdentity.principalId``: who
    caused the event.
    """
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    optional = (
        ("size", event.size),
        ("eTag", event.etag),
        ("versionId", event.version_id),
        ("sequencer", event.sequencer),
    )
    obj.update({name: value for name, value in optional if value is not None})
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event.event_time,
        "eventName": event.event_name,
        "userIdentity": {"principalId": principal},
        "s3": {
            "s3SchemaVersion": S3_SCHEMA_VERSION,
            "configurationId": configuration_id,
            # No "arn": its partition (aws, aws-cn, aws-us-gov) is not known here, and the
            # ingestion reads the name only.
            "bucket": {"name": event.bucket},
            "object": obj,
        },
    }
    return record


def parse_sqs_body(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body (none for an ``s3:TestEvent``)."""
    return parse_s3_event(_unwrap_sns(_json_object(body, "SQS message body")))


def parse_s3_event(document: Mapping[str, Any]) -> list[ObjectEvent]:
    """The object events in an S3 notification document (none for an ``s3:TestEvent``)."""
    if is_test_event(document):
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise EventError("Records is missing or not a list: not an S3 notification")
    return [parse_s3_record(record, f"Records[{n}]") for n, record in enumerate(records)]


def parse_s3_record(record: Any, where: str = "Records[0]") -> ObjectEvent:
    """One S3 notification record as an ``ObjectEvent``; a bad field raises ``EventError``."""
    if not isinstance(record, Mapping):
        raise EventError(f"{where} is not an object")
    s3 = _mapping(record, "s3", where)
    obj = _mapping(s3, "object", f"{where}.s3")
    here = f"{where}.s3.object"
    return ObjectEvent(
        bucket=_text(_mapping(s3, "bucket", f"{where}.s3"), "name", f"{where}.s3.bucket"),
        key=unquote_plus(_text(obj, "key", here)),
        event_name=_event_name(_text(record, "eventName", where)),
        event_time=_event_time(_text(record, "eventTime", where), where),
        size=_optional_size(obj, here),
        etag=_optional_text(obj, "eTag", here),
        version_id=_optional_text(obj, "versionId", here),
        sequencer=_optional_sequencer(obj, here),
    )


def _unwrap_sns(document: dict[str, Any]) -> dict[str, Any]:
    # S3 -> SNS -> SQS (without raw delivery) nests the notification in an SNS envelope.
    if document.get("Type") != "Notification" or "Message" not in document:
        return document
    return _json_object(document["Message"], "SNS envelope Message")


def _json_object(text: Any, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EventError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EventError(f"{what} is not a JSON object")
    return document


def _mapping(parent: Any, field: str, where: str) -> Mapping[str, Any]:
    value = parent.get(field) if isinstance(parent, Mapping) else None
    if not isinstance(value, Mapping):
        raise EventError(f"{where}.{field} is missing or not an object")
    return value


def _text(parent: Mapping[str, Any], field: str, where: str) -> str:
    value = parent.get(field)
    if not isinstance(value, str) or not value:
        raise EventError(f"{where}.{field} is missing or not a non-empty string")
    return value


def _optional_text(parent: Mapping[str, Any], field: str, where: str) -> str | None:
    value = parent.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError(f"{where}.{field} is not a string")
    return value


def _optional_size(obj: Mapping[str, Any], where: str) -> int | None:
    value = obj.get("size")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EventError(f"{where}.size={value!r} is not a byte count")
    return value


def _optional_sequencer(obj: Mapping[str, Any], where: str) -> str | None:
    value = _optional_text(obj, "sequencer", where)
    if value is not None and not set(value.upper()) <= _HEX:
        raise EventError(f"{where}.sequencer={value!r} is not hexadecimal")
    return value


def _event_name(name: str) -> str:
    # Records say "ObjectCreated:Put"; configurations (and some hand-written events) say "s3:...".
    return name.removeprefix("s3:")


def _event_time(text: str, where: str) -> str:
    try:
        return normalise_event_time(text)
    except EventError as exc:
        raise EventError(f"{where}.{exc}") from exc
