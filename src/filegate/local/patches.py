"""Patches to the moto emulator: S3 events shaped like real S3's; SQS fast at depth.

Measured gaps (shared/notes/moto-5.2.5.md) that this module closes, in the emulator
process only:
- events lack ``sequencer``, ``versionId``, ``userIdentity``, ``requestParameters``,
  ``responseElements``: they are supplied, ``sequencer`` from one monotonic counter;
- a delete that creates a delete marker sends no event: ``ObjectRemoved:DeleteMarkerCreated``
  is sent, as S3 does;
- a multipart upload sends an extra ``ObjectCreated:Put``: only ``CompleteMultipartUpload`` is sent;
- concurrent writes to one key could number their events out of order: every S3 mutation that
  sends an event runs under one lock, so sequencer order is the order S3 applied them.

It also makes moto's SQS fast enough for a burst of uploads (benchmarks/e2e_burst.py).
moto's cost grows with queue depth: every ``ReceiveMessage`` rebuilds the list of visible
messages, deep-copies each message it returns and, per returned message, recomputes every
queue attribute (three walks of the whole queue, three times over, for the retention check);
``DeleteMessage`` and ``ChangeMessageVisibility`` walk the queue building lists of receipt
handles. Patched:
- a receive on a standard queue walks the queue only until it has ``count`` messages, under the
  queue's lock (two pollers never get the same message), and copies only what it returns. It
  keeps moto's rules: visibility timeout, receive counts, redrive to the dead-letter queue at
  ``maxReceiveCount`` (during a receive, as moto does), long polling. FIFO queues keep moto's code;
- delete and change visibility find the message by receipt handle in one cheap pass, under the lock;
- the visible / in-flight / delayed counts read the clock once per count, not twice per message.
And, for every service: moto's server finds the backend for each request by listing its own
package directory (a ``listdir`` and ~250 ``stat`` calls) and trying its URL patterns, under one
global lock; the answer per host is remembered (it cannot change while the server runs).
Set FILEGATE_EMULATOR_SQS_PATCH=0 to serve without these performance patches (moto's own SQS
and routing), to measure the difference.
FILEGATE_EMULATOR_PROFILE=<file> profiles every request with cProfile and writes the merged
statistics (``pstats`` format) to that file when the emulator exits.
"""

from __future__ import annotations

import atexit
import copy
import cProfile
import functools
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

_MUTATION_LOCK = threading.RLock()
_SEQUENCE = itertools.count(time.time_ns())
_OWNER_ID = "A3FILEGATELOCAL"

# Read here, not in filegate.settings: only the emulator process reads them.
ENV_SQS_PATCH = "FILEGATE_EMULATOR_SQS_PATCH"
ENV_PROFILE = "FILEGATE_EMULATOR_PROFILE"

_applied = False


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


def _patch_s3() -> None:
    from moto.s3 import models, notifications

    notifications._get_s3_event = s3_event
    backend = models.S3Backend
    # setattr: mypy rightly refuses plain assignment to a method; replacing them is the point.
    replacements = {
        "put_object": _locked(_put_object_without_multipart_event(backend.put_object)),
        "_set_delete_marker": _delete_marker_with_event(backend._set_delete_marker),
        **{
            name: _locked(getattr(backend, name))
            for name in ("delete_object", "complete_multipart_upload", "copy_object")
        },
    }
    for name, replacement in replacements.items():
        setattr(backend, name, replacement)


# --- SQS: stop walking (and copying) the whole queue on every call ---------------------------


def _visible_at(message: Any, now_ms: float) -> bool:
    # moto's Message.visible and Message.delayed, with the clock read once by the caller.
    return bool(now_ms > message.visible_at and now_ms >= message.delayed_until)


def _visible_messages(queue: Any) -> list[Any]:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return [m for m in queue._messages if _visible_at(m, now)]


def _count_not_visible(queue: Any) -> int:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _count_delayed(queue: Any) -> int:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _index_of(messages: list[Any], receipt_handle: str) -> int | None:
    for index, message in enumerate(messages):
        if (
            message.receipt_handle == receipt_handle
            or receipt_handle in message._old_receipt_handles
        ):
            return index
    return None


def _returned_copy(message: Any, attribute_names: list[str]) -> Any:
    """What moto's deepcopy gave: a snapshot the response can filter without touching the queue."""
    from moto.sqs.models import _filter_message_attributes

    snapshot = copy.copy(message)
    snapshot.message_attributes = dict(message.message_attributes)
    snapshot.system_attributes = dict(message.system_attributes)
    snapshot._old_receipt_handles = list(message._old_receipt_handles)
    _filter_message_attributes(snapshot, attribute_names)
    return snapshot


def _take(
    queue: Any, count: int, visibility_timeout: int, names: list[str]
) -> tuple[list[Any], list[Any]]:
    """One pass of moto's receive loop, stopping at ``count``: (returned, due for the DLQ)."""
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    policy = queue.redrive_policy if queue.dead_letter_queue is not None else None
    max_receives = policy["maxReceiveCount"] if policy else None
    retention_ms = int(queue.message_retention_period) * 1000
    returned: list[Any] = []
    to_dlq: list[Any] = []
    for message in queue._messages:
        if not _visible_at(message, now):
            continue
        queue.pending_messages.discard(message)  # visible again: its consumer timed out
        if max_receives is not None and message.approximate_receive_count >= max_receives:
            to_dlq.append(message)
            continue
        queue.pending_messages.add(message)
        message.mark_received(visibility_timeout=visibility_timeout)
        if message.sent_timestamp + retention_ms <= now:
            break  # moto ends the receive at a message past the retention period
        returned.append(_returned_copy(message, names))
        if len(returned) >= count:
            break
    for message in to_dlq:
        queue._messages.remove(message)
    return returned, to_dlq


def _receive_message(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:  # message groups and deduplication: moto's own code
            return list(
                original(
                    self,
                    queue_name,
                    count,
                    wait_seconds_timeout,
                    visibility_timeout,
                    message_attribute_names,
                )
            )
        return _receive_standard(
            queue, count, wait_seconds_timeout, visibility_timeout, message_attribute_names or []
        )

    return wrapper


def _receive_standard(
    queue: Any, count: int, wait_seconds: int, visibility_timeout: int, names: list[str]
) -> list[Any]:
    deadline = time.monotonic() + wait_seconds
    while True:
        with queue._messages_lock:
            returned, to_dlq = _take(queue, count, visibility_timeout, names)
            remaining = deadline - time.monotonic()
            if not returned and not to_dlq and remaining > 0:
                # add_message notifies; a message whose visibility ends does not, hence <= 1 s.
                queue._messages_lock.wait(timeout=min(1.0, remaining))
        # Outside the lock: the DLQ's add_message takes the DLQ's own lock.
        for message in to_dlq:
            queue.dead_letter_queue.add_message(message)
        if returned or time.monotonic() >= deadline:
            return returned


def _delete_message(self: Any, receipt_handle: str) -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    if receipt_handle in self.deleted_messages:
        return  # already deleted: SQS accepts a repeated delete
    with self._messages_lock:
        index = _index_of(self._messages, receipt_handle)
        if index is None:
            raise ReceiptHandleIsInvalid()
        message = self._messages.pop(index)
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)


def _change_message_visibility(
    self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
) -> None:
    from moto.core.utils import unix_time_millis
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    queue = self.get_queue(queue_name)
    with queue._messages_lock:
        index = _index_of(queue._messages, receipt_handle)
        if index is None:
            raise ReceiptHandleIsInvalid
        message = queue._messages[index]
        until = unix_time_millis() + int(visibility_timeout) * 1000
        if until - message.sent_timestamp > 43200 * 1000:
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: "
                "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible:
            queue.pending_messages.discard(message)


def _within_retention(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    retention = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention + message.sent_timestamp / 1000 > unix_time())


def _patch_sqs() -> None:
    from moto.sqs import models

    queue_replacements: dict[str, Any] = {
        "messages": property(_visible_messages),
        "approximate_number_of_messages_not_visible": property(_count_not_visible),
        "approximate_number_of_messages_delayed": property(_count_delayed),
        "delete_message": _delete_message,
    }
    backend_replacements: dict[str, Any] = {
        "receive_message": _receive_message(models.SQSBackend.receive_message),
        "change_message_visibility": _change_message_visibility,
        "is_message_valid_based_on_retention_period": _within_retention,
    }
    for cls, replacements in (
        (models.Queue, queue_replacements),
        (models.SQSBackend, backend_replacements),
    ):
        for name, replacement in replacements.items():
            setattr(cls, name, replacement)


# --- routing: remember which backend serves a host ------------------------------------------


def _remembered(lookup: Callable[..., Any]) -> Callable[..., Any]:
    # The answer for a host never changes while the server runs: moto's modules and URL patterns
    # are fixed. moto recomputes it on every request, under the dispatcher's global lock.
    answers: dict[str | None, Any] = {}

    @functools.wraps(lookup)
    def wrapper(self: Any, host: str | None) -> Any:
        if host not in answers:
            answers[host] = lookup(self, host)
        return answers[host]

    return wrapper


def _patch_routing() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lookup = _remembered(DomainDispatcherApplication.get_backend_for_host)
    setattr(DomainDispatcherApplication, "get_backend_for_host", lookup)  # noqa: B010 - see _patch_s3


# --- profiling the emulator (FILEGATE_EMULATOR_PROFILE) ---------------------------------------


def _profile_requests(stats_path: str) -> None:
    """Profile each request in its own cProfile (werkzeug serves each in a new thread)."""
    import pstats

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    idle: list[cProfile.Profile] = []
    every: list[cProfile.Profile] = []
    lock = threading.Lock()
    call = DomainDispatcherApplication.__call__

    def profiled(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            if idle:
                profile = idle.pop()
            else:
                profile = cProfile.Profile()
                every.append(profile)
        try:
            return profile.runcall(call, self, environ, start_response)
        finally:
            with lock:
                idle.append(profile)

    def dump() -> None:
        with lock:
            if every:
                stats = pstats.Stats(every[0])
                for profile in every[1:]:
                    stats.add(profile)
                stats.dump_stats(stats_path)

    setattr(DomainDispatcherApplication, "__call__", profiled)  # noqa: B010 - see _patch_s3
    atexit.register(dump)


def apply() -> None:
    """Install the patches (idempotent). Call before the emulator serves any request."""
    global _applied  # noqa: PLW0603 - patching is process-wide by nature
    if _applied:
        return
    _patch_s3()
    if os.environ.get(ENV_SQS_PATCH, "1") != "0":
        _patch_sqs()
        _patch_routing()
    if os.environ.get(ENV_PROFILE):
        _profile_requests(os.environ[ENV_PROFILE])
    _applied = True
