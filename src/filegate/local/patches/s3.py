"""S3 events shaped like real S3's, in the emulator process only.

Measured gaps (docs/local-mode.md) that this module closes:
- events lack ``sequencer``, ``versionId``, ``userIdentity``, ``requestParameters``,
  ``responseElements``: they are supplied, ``sequencer`` from one monotonic counter;
- a delete that creates a delete marker sends no event: ``ObjectRemoved:DeleteMarkerCreated``
  is sent, as S3 does;
- a multipart upload sends an extra ``ObjectCreated:Put``: only ``CompleteMultipartUpload`` is sent;
- concurrent writes to one key could number their events out of order: every S3 mutation that
  sends an event runs under one lock, so sequencer order is the order S3 applied them.

Why seams and not middleware around moto's app: moto builds and sends an event inside the
request (``notifications.send_event``), after it stored the object, so the fields, the delete
marker's event and the dropped ``Put`` can only be had there; and the lock held around whole
S3 requests would also hold every upload's body transfer, where here it holds only the store
and its event. Each seam has a test named after the behaviour it restores
(``tests/functional/test_local_patches.py``). The multipart join is :mod:`.s3_multipart`.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from filegate.local.patches.seams import Seams

_MUTATION_LOCK = threading.RLock()
_SEQUENCE = itertools.count(time.time_ns())
_OWNER_ID = "A3FILEGATELOCAL"


def _next_sequencer() -> str:
    return f"{next(_SEQUENCE):018X}"


def _object_fields(key: Any, event_name: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"key": quote_plus(key.name), "sequencer": _next_sequencer()}
    version_id = str(getattr(key, "version_id", "null") or "null")
    if version_id != "null":
        fields["versionId"] = version_id
    if not event_name.startswith("ObjectRemoved:DeleteMarker") and hasattr(key, "etag"):
        fields["size"] = key.size
        fields["eTag"] = key.etag.replace('"', "")
    return fields


def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
    """One S3 notification in the shape real S3 sends (event structure version 2.1)."""
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    name = event_name.removeprefix("s3:")
    request_id = uuid.uuid4().hex[:16].upper()
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": bucket.region_name,
        "eventTime": iso_8601_datetime_with_milliseconds(),
        "eventName": name,
        "userIdentity": {"principalId": f"AWS:{_OWNER_ID}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": request_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": notification_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": {"principalId": _OWNER_ID},
                "arn": bucket.arn,
            },
            "object": _object_fields(key, name),
        },
    }
    return {"Records": [record]}


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _MUTATION_LOCK:
            return method(*args, **kwargs)

    return wrapper


def _put_object_without_multipart_event(put_object: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(put_object)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("multipart") is not None:
            kwargs["disable_notification"] = True
        return put_object(*args, **kwargs)

    return wrapper


def _delete_marker_with_event(set_delete_marker: Callable[..., Any]) -> Callable[..., Any]:
    from moto.s3 import notifications

    @functools.wraps(set_delete_marker)
    def wrapper(self: Any, bucket_name: str, key_name: str) -> Any:
        marker = set_delete_marker(self, bucket_name, key_name)
        notifications.send_event(
            self.account_id,
            notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
            self.get_bucket(bucket_name),
            marker,
        )
        return marker

    return wrapper


def patch(seams: Seams) -> None:
    """Install the S3 patches."""
    from moto.s3 import models, notifications

    seams.replace(notifications, "_get_s3_event", s3_event)
    backend = models.S3Backend
    replacements = {
        "put_object": _locked(_put_object_without_multipart_event(backend.put_object)),
        "_set_delete_marker": _delete_marker_with_event(backend._set_delete_marker),
        **{
            name: _locked(getattr(backend, name))
            for name in ("delete_object", "complete_multipart_upload", "copy_object")
        },
    }
    for name, replacement in replacements.items():
        seams.replace(backend, name, replacement)
