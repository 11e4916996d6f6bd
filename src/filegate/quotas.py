"""Per-partner quotas: the limits and their defaults, where the counters live, the windows.

Rules only, no AWS call: ``ledger.py`` writes the declaration counters in the same
TransactWriteItems as the declaration (and releases the pending count when an upload ends),
with the Update actions built here (``declaration_counters``, ``release_pending``),
``uploads/partners.py`` stores the limits, counts requests and reads the use. docs/quotas.md
says why each quota and each default.

The counters are items of the partners table (hash key ``partner_id``), beside the partner's
own item. Their ids carry ``#``, which no partner id can (``partners._PARTNER_ID``), so an
API key can never name one:

- ``<partner_id>#day#<YYYY-MM-DD>``: ``uploads`` and ``bytes`` (declared sizes) declared that
  UTC day; one small item a day with declarations, kept as the partner's history;
- ``<partner_id>#pending``: ``pending``, uploads declared and not yet ACCEPTED, REJECTED,
  EXPIRED, ABORTED (or DELETED before their verdict);
- ``<partner_id>#rate``: ``window`` (a UTC epoch second) and ``requests`` counted in it.

A declared upload holds one pending count until it ends: its ledger item carries
``quota_partner`` (``HOLD_ATTRIBUTE``) while it holds it, and the release removes that
attribute in the same transaction that gives the count back, on the condition that it is
there, so a second release of one upload (a duplicate S3 event) changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DAILY_UPLOADS = "daily_uploads"
DAILY_BYTES = "daily_bytes"
MAX_PENDING = "max_pending"
RATE = "rate"
QUOTA_NAMES = (DAILY_UPLOADS, DAILY_BYTES, MAX_PENDING, RATE)

HOLD_ATTRIBUTE = "quota_partner"

TiB = 1024**4
# Far above honest use, low enough to stop a leaked key from filling the bucket or the ledger
# (docs/quotas.md): a partner that sends a file a second all day makes 86,400 uploads; two
# objects of S3's largest size make 10 TiB; `filegate upload` has one upload pending at a time
# per command and the page one per tab; a multipart upload of 10,000 parts makes a few dozen
# requests (a page of URLs per 1,000 parts, renewals, the completion), and `--wait` polls its
# status twice a second.
DEFAULT_DAILY_UPLOADS = 100_000
DEFAULT_DAILY_BYTES = 10 * TiB
DEFAULT_MAX_PENDING = 100
DEFAULT_RATE = 50
# A full pending quota has no window that resets: a pending upload ends when it arrives, is
# aborted or expires. Ask again after this many seconds.
PENDING_RETRY_AFTER = 30
RATE_RETRY_AFTER = 1  # the rate's window is one second


@dataclass(frozen=True)
class Quotas:
    """A partner's limits: uploads and declared bytes per UTC day, uploads pending at once,
    requests per second to the upload API."""

    daily_uploads: int = DEFAULT_DAILY_UPLOADS
    daily_bytes: int = DEFAULT_DAILY_BYTES
    max_pending: int = DEFAULT_MAX_PENDING
    rate: int = DEFAULT_RATE

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_QUOTAS = Quotas()


@dataclass(frozen=True)
class QuotaUse:
    """One quota of one partner: its limit, what is used, and when its window resets."""

    quota: str
    limit: int
    used: int
    resets_in_seconds: int | None  # None: no window (max_pending)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "left": max(self.limit - self.used, 0)}


def day_key(partner_id: str, now: datetime) -> str:
    return f"{partner_id}#day#{utc_day(now)}"


def pending_key(partner_id: str) -> str:
    return f"{partner_id}#pending"


def rate_key(partner_id: str) -> str:
    return f"{partner_id}#rate"


def is_counter_id(item_id: str) -> bool:
    """Whether a partners-table id names a counter item rather than a partner."""
    return "#" in item_id


def utc_day(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def window_of(now: datetime) -> int:
    """The rate's fixed window: the UTC epoch second ``now`` falls in."""
    return math.floor(now.timestamp())


def seconds_to_midnight(now: datetime) -> int:
    """Whole seconds (at least 1) until the next UTC day, when the daily quotas reset."""
    utc = now.astimezone(UTC)
    midnight = datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, math.ceil((midnight - utc).total_seconds()))


def retry_after(quota: str, now: datetime) -> int:
    """The ``Retry-After`` of a refusal by ``quota``: seconds until its window resets."""
    if quota in (DAILY_UPLOADS, DAILY_BYTES):
        return seconds_to_midnight(now)
    if quota == RATE:
        return RATE_RETRY_AFTER
    return PENDING_RETRY_AFTER


# --- the counters' writes: Update actions of the ledger's TransactWriteItems (ledger.py) ---


def declaration_counters(
    table: str, partner_id: str, size: int, limits: Quotas, now: datetime
) -> list[dict[str, Any]]:
    """The partner's day and pending counters, each counted up on the condition that it stays
    within its limit (DynamoDB conditions cannot add: the room for ``size`` is sent)."""
    day = {
        "TableName": table,
        "Key": {"partner_id": {"S": day_key(partner_id, now)}},
        "UpdateExpression": "ADD uploads :one, #bytes :size SET day_of = :day",
        "ConditionExpression": (
            "attribute_not_exists(uploads) OR (uploads < :max_uploads AND #bytes <= :room)"
        ),
        "ExpressionAttributeNames": {"#bytes": "bytes"},
        "ExpressionAttributeValues": {
            ":one": {"N": "1"},
            ":size": {"N": str(size)},
            ":day": {"S": utc_day(now)},
            ":max_uploads": {"N": str(limits.daily_uploads)},
            ":room": {"N": str(limits.daily_bytes - size)},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    pending = {
        "TableName": table,
        "Key": {"partner_id": {"S": pending_key(partner_id)}},
        "UpdateExpression": "ADD pending :one",
        "ConditionExpression": "attribute_not_exists(pending) OR pending < :max_pending",
        "ExpressionAttributeValues": {
            ":one": {"N": "1"},
            ":max_pending": {"N": str(limits.max_pending)},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    return [{"Update": day}, {"Update": pending}]


def release_pending(table: str, partner_id: str) -> dict[str, Any]:
    """The Update (of a TransactWriteItems) that gives one pending count back."""
    return {
        "TableName": table,
        "Key": {"partner_id": {"S": pending_key(partner_id)}},
        "UpdateExpression": "ADD pending :minus_one",
        "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
    }


def refused_by(
    day_refused: bool, day: dict[str, Any], pending: dict[str, Any], limits: Quotas
) -> tuple[str, int, int]:
    """(quota, limit, used) of a declaration the counters refused, from the counter items as
    the cancellation returned them (ALL_OLD): the day's, when its condition failed."""
    if not day_refused:
        return MAX_PENDING, limits.max_pending, int(pending.get("pending", 0))
    uploads = int(day.get("uploads", 0))
    if uploads >= limits.daily_uploads:
        return DAILY_UPLOADS, limits.daily_uploads, uploads
    return DAILY_BYTES, limits.daily_bytes, int(day.get("bytes", 0))
