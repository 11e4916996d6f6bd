"""moto's SQS receive, delete and change visibility made cheap, in the emulator process only.

Speed, not behaviour: re-measured for issue 10 (docs/benchmarks.md, "Issue 10: S3/SQS seams
re-measured"), without it the emulator spends about a fifth more CPU per object in a burst of
uploads (benchmarks/e2e_burst.py), more than the 10 % a speed-only seam must buy. moto's
``ReceiveMessage`` rebuilds the list of visible messages, deep-copies each message it returns
and, per returned message, recomputes every queue attribute (three walks of the whole queue,
three times over, for the retention check); ``DeleteMessage`` and ``ChangeMessageVisibility``
walk the queue building lists of receipt handles. Patched:
- a receive on a standard queue walks the queue only until it has ``count`` messages, under the
  queue's lock (two pollers never get the same message), and copies only what it returns. It
  keeps moto's rules: visibility timeout, receive counts, redrive to the dead-letter queue at
  ``maxReceiveCount`` (during a receive, as moto does), long polling. FIFO queues keep moto's code;
- delete and change visibility find the message by receipt handle in one cheap pass, under the lock.

The send to a standard queue, the queue counts and the retention check, also patched before,
bought less than 10 % once the queue channel kept the queue shallow, and were deleted.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from typing import Any

from filegate.local.patches.seams import Seams

# --- SQS: stop walking (and copying) the whole queue on every call ---------------------------


def _visible_at(message: Any, now_ms: float) -> bool:
    # moto's Message.visible and Message.delayed, with the clock read once by the caller.
    return bool(now_ms > message.visible_at and now_ms >= message.delayed_until)


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


def patch_sqs(seams: Seams) -> None:
    """Install the SQS patches."""
    from moto.sqs import models

    seams.replace(models.Queue, "delete_message", _delete_message)
    seams.replace(
        models.SQSBackend, "receive_message", _receive_message(models.SQSBackend.receive_message)
    )
    seams.replace(models.SQSBackend, "change_message_visibility", _change_message_visibility)
