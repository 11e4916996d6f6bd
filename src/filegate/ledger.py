"""Every DynamoDB read and write of the ledger table, behind ``Ledger``.

One item per object key. Each event is applied with ONE conditional UpdateItem (never
read-then-write): the condition lets a write through only when the event is newer than the
one the item already records, by S3 sequencer when the event has one, by event time when
not. A rejected write returns the old item (ReturnValuesOnConditionCheckFailure=ALL_OLD), which
tells a duplicate delivery from a stale one. botocore errors become ``LedgerError`` here.

Declared uploads (the upload API) live in the same table under their object key: ``declare``
writes the PENDING item at presign time, ``get_upload`` finds it by upload id through the
``upload_id-index`` GSI, ``extend`` moves a PENDING item's ``expires_at`` when its part URLs are
signed again, ``expect_checksum`` records the checksum S3 must end up holding (a multipart
upload's composite SHA-256, written just before it is completed), and ``expire`` / ``abort`` /
``reject`` close a PENDING item; each is one conditional write. A declared upload closed
REJECTED by ``reject`` (S3 refused its bytes) never held an object: ``holds_object`` tells it
from a verdict on one. ``overdue_uploads`` lists the PENDING
items past their expiry without changing them. The checksum fields are described in
docs/integrity.md.

Quotas (``filegate.quotas``, docs/quotas.md): given the partners table, ``declare`` writes the
PENDING item and the partner's day and pending counters in ONE TransactWriteItems whose conditions
are the limits, so a refused declaration writes nothing (``QuotaExceededError``). The item then
holds a pending count (``quota_partner``) until it leaves PENDING: ``expire``, ``abort`` and
``reject`` give it back in the transaction that closes the item; ``record`` (the verdict, or a
deletion) writes the event as before and then settles a count the item still holds, in a transaction
conditional on the hold, so a duplicate event settles nothing and a failed settle is done by the
message's redelivery. A transaction cancelled by a concurrent one on the same counter
(``TransactionConflict``, which AWS answers and the emulator never does) is tried again.

For the operations, ``describe`` and ``raw_item`` return DescribeTable and GetItem as the API
answers them (the evidence set saves them as they are), and ``create_table`` and
``enable_point_in_time_recovery`` are what the local stack does itself (the stack's tables in
its DynamoDB process; point-in-time recovery, which the emulator skips); ``latest_stream_arn``
finds a table's stream there, for the local stream mapping. ``stream_records`` reads a range
of the ledger's stream back (`filegate events redrive`) and ``lambda_record`` puts a record in
the shape Lambda hands the publisher.

The low-level client is used (not the resource) so the Lambda does not import boto3's
resource layer; attribute values are written and read by the small helpers below.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate import quotas
from filegate.errors import LedgerError, QuotaBusyError, QuotaExceededError, error_code
from filegate.events import iso_utc, key_prefix, sequencer_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import UpdateItemInputTypeDef

PREFIX_INDEX = "prefix-event_time-index"
UPLOAD_INDEX = "upload_id-index"
_CONDITION_CHECK_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"
_CONFLICT = "TransactionConflict"
# Backoff ceilings (s) between tries of a transaction that a concurrent one cancelled.
_CONFLICT_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2)
# Newer = larger sequencer; an item written from a sequencer-less event is compared by time.
_NEWER_BY_SEQUENCER = (
    "(attribute_not_exists(#sequencer_key) AND "
    "(attribute_not_exists(#event_time) OR #event_time < :event_time)) "
    "OR #sequencer_key < :sequencer_key"
)
_NEWER_BY_TIME = "attribute_not_exists(#event_time) OR #event_time < :event_time"
# checksum_sha256 / checksum_type / checksum_part_count: the checksum S3 holds (and verified)
# for the object, as HeadObject reports it (value, FULL_OBJECT or COMPOSITE, parts behind it).
_OBJECT_FIELDS = (
    "size",
    "content_type",
    "etag",
    "checksum_sha256",
    "checksum_type",
    "checksum_part_count",
)
_OPTIONAL_ITEM_FIELDS = ("sequencer", "sequencer_key", "version_id", *_OBJECT_FIELDS)

Clock = Callable[[], datetime]


class Status(StrEnum):
    """What the ledger says about the object: present in S3, or gone."""

    RECEIVED = "RECEIVED"  # in S3 (put some other way than a declared partner upload)
    ACCEPTED = "ACCEPTED"  # a declared upload that arrived as declared
    REJECTED = "REJECTED"  # a declared upload that did not: see ``reason``
    DELETED = "DELETED"


PRESENT = frozenset({Status.RECEIVED, Status.ACCEPTED, Status.REJECTED})


def holds_object(status: str | None, event_time: str | None) -> bool:
    """Whether the ledger says an object is at the key: a present status written by an S3
    event. A declared upload closed REJECTED because S3 refused its bytes (``Ledger.reject``)
    has no event: nothing was stored."""
    return status in PRESENT and bool(event_time)


class UploadStatus(StrEnum):
    """What the ledger says about a declared upload before the ingestion has judged it."""

    PENDING = "PENDING"  # declared at presign time, not arrived yet
    EXPIRED = "EXPIRED"  # declared, never arrived before its URLs expired
    ABORTED = "ABORTED"  # a multipart upload the partner gave up


class Outcome(StrEnum):
    """What applying one event did to the ledger."""

    WRITTEN = "written"
    DUPLICATE = "duplicate"  # the item already records this very event
    STALE = "stale"  # the item records a newer event; this one changes nothing
    IGNORED = "ignored"  # an event kind the ledger does not record (decided by the ingestor)


@dataclass(frozen=True)
class LedgerEntry:
    """One event to apply. Object fields (size...) are written only while the object is present,
    so a DELETED write keeps what the item knew about the object."""

    key: str
    bucket: str
    status: Status
    event_name: str
    event_time: str
    sequencer: str | None = None
    version_id: str | None = None
    size: int | None = None
    content_type: str | None = None
    etag: str | None = None
    checksum_sha256: str | None = None
    checksum_type: str | None = None
    checksum_part_count: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LedgerItem:
    """One ledger item as stored."""

    key: str
    bucket: str
    status: str
    event_name: str
    event_time: str
    prefix: str
    first_seen_at: str
    updated_at: str
    sequencer: str | None = None
    sequencer_key: str | None = None
    version_id: str | None = None
    size: int | None = None
    content_type: str | None = None
    etag: str | None = None
    checksum_sha256: str | None = None
    checksum_type: str | None = None
    checksum_part_count: int | None = None


@dataclass(frozen=True)
class Declaration:
    """An upload announced by a partner, written at presign time (before any object exists)."""

    key: str
    bucket: str
    upload_id: str
    partner_id: str
    size: int
    sha256: str | None  # hex; None: a multipart upload gives it at completion
    content_type: str
    method: str
    expires_at: datetime
    multipart_upload_id: str | None = None
    part_size: int | None = None  # MULTIPART: the plan's part size and count
    part_count: int | None = None
    # The SHA-256 checksum S3 must hold: for a PUT the declared sha256 in base64, known now; for
    # a MULTIPART upload the composite over the parts, known when it is completed.
    expected_checksum_sha256: str | None = None


@dataclass(frozen=True)
class UploadRecord:
    """A declared upload's ledger item, as the upload API reports it."""

    key: str
    upload_id: str
    partner_id: str
    status: str
    bucket: str
    declared_size: int
    declared_sha256: str
    declared_content_type: str
    method: str
    expires_at: str
    first_seen_at: str
    updated_at: str
    multipart_upload_id: str | None = None
    declared_part_size: int | None = None
    declared_part_count: int | None = None
    expected_checksum_sha256: str | None = None
    # A multipart upload declared with its sha256: the one the client computed from the bytes
    # it sent, given at completion (docs/integrity.md); the verdict compares the two.
    sent_sha256: str | None = None
    quota_partner: str | None = None  # the partner whose pending count it holds, while it does
    reason: str | None = None
    size: int | None = None
    content_type: str | None = None
    checksum_sha256: str | None = None
    checksum_type: str | None = None
    checksum_part_count: int | None = None
    event_time: str | None = None  # S3's eventTime of the object that arrived, if one did

    def overdue(self, now: datetime) -> bool:
        """Still PENDING after its URLs expired."""
        return self.status == UploadStatus.PENDING and self.expires_at < iso_utc(now)


class Ledger:
    """The ledger table, through an injected low-level DynamoDB client and clock."""

    def __init__(
        self,
        table_name: str,
        dynamodb_client: DynamoDBClient,
        clock: Clock | None = None,
        partners_table: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client
        self._clock = clock or (lambda: datetime.now(UTC))
        # Where the quota counters live; None: no quotas kept or released (read-only uses).
        self.partners_table = partners_table
        self._sleep = sleep

    def record(self, entry: LedgerEntry) -> Outcome:
        """Apply one event with one conditional UpdateItem; then give back the pending count
        of a declared upload the item still holds once it is no longer PENDING."""
        try:
            response = self._ddb.update_item(**self._update_request(entry))
        except ClientError as exc:
            if error_code(exc) != _CONDITION_CHECK_FAILED:
                raise self._failure("UpdateItem", entry.key, exc) from exc
            old = _old_item(exc)
            self._settle(entry.key, old)
            return _classify(entry, old)
        except BotoCoreError as exc:
            raise self._failure("UpdateItem", entry.key, exc) from exc
        self._settle(entry.key, _from_attributes(response.get("Attributes", {})))
        return Outcome.WRITTEN

    def get(self, key: str) -> LedgerItem | None:
        """The item for one (decoded) object key, read strongly consistent."""
        try:
            response = self._ddb.get_item(
                TableName=self.table_name, Key={"s3_key": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("GetItem", key, exc) from exc
        item = response.get("Item")
        return _to_item(_from_attributes(item)) if item else None

    def raw_item(self, key: str) -> dict[str, Any]:
        """GetItem for one key as the API returns it (strongly consistent, no metadata)."""
        try:
            response = self._ddb.get_item(
                TableName=self.table_name, Key={"s3_key": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("GetItem", key, exc) from exc
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def describe(self) -> dict[str, Any]:
        """DescribeTable as the API returns it (no metadata)."""
        try:
            response = self._ddb.describe_table(TableName=self.table_name)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("DescribeTable", "", exc) from exc
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def scan(self, prefix: str = "") -> Iterator[LedgerItem]:
        """Every item whose key starts with ``prefix`` (a consistent Scan of the whole table).

        A Scan, not a query of the prefix GSI: declared uploads have no ``event_time`` yet, so
        that sparse index does not hold them, and ``prefix`` here is any start of a key.
        """
        request: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        if prefix:
            request["FilterExpression"] = "begins_with(s3_key, :prefix)"
            request["ExpressionAttributeValues"] = {":prefix": {"S": prefix}}
        pages = self._ddb.get_paginator("scan").paginate(**request)
        try:
            for page in pages:
                yield from (_to_item(_from_attributes(item)) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("Scan", prefix + "*", exc) from exc

    def declare(self, declaration: Declaration, limits: quotas.Quotas | None = None) -> None:
        """Write the PENDING item for a new upload; refused if the key is already recorded.

        With ``limits`` (and the partners table), the partner's counters are written in the
        same transaction, each conditional on its limit: ``QuotaExceededError`` names the
        first quota that refused it, and nothing is written.
        """
        if limits is None or self.partners_table is None:
            self._put_declaration(declaration)
            return
        now = self._clock()
        item = {k: _attribute(v) for k, v in self._declared(declaration).items()}
        item[quotas.HOLD_ATTRIBUTE] = {"S": declaration.partner_id}
        put = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(s3_key)",
        }
        counters = quotas.declaration_counters(
            self.partners_table, declaration.partner_id, declaration.size, limits, now
        )
        reasons = self._transact([{"Put": put}, *counters], declaration.key)
        if reasons:
            raise _refusal(reasons, declaration.key, limits, now, self.table_name)

    def _put_declaration(self, declaration: Declaration) -> None:
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item={k: _attribute(v) for k, v in self._declared(declaration).items()},
                ConditionExpression="attribute_not_exists(s3_key)",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("PutItem", declaration.key, exc) from exc

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        """The declared upload with this id: its key from the GSI, then a consistent read."""
        try:
            response = self._ddb.query(
                TableName=self.table_name,
                IndexName=UPLOAD_INDEX,
                KeyConditionExpression="upload_id = :upload_id",
                ExpressionAttributeValues={":upload_id": {"S": upload_id}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("Query", upload_id, exc) from exc
        keys = [item["s3_key"]["S"] for item in response.get("Items", [])]
        return self._upload(keys[0]) if keys else None

    def expire(self, key: str, now: datetime) -> UploadRecord | None:
        """PENDING -> EXPIRED once past ``expires_at``; ``None`` when the item has moved on."""
        condition = "processing_status = :pending AND expires_at < :now"
        return self._close(key, UploadStatus.EXPIRED, now, condition)

    def expire_overdue(self, now: datetime) -> list[UploadRecord]:
        """Every PENDING upload past ``expires_at`` -> EXPIRED; what was expired.

        Scans the sparse ``upload_id-index`` (declared uploads only), then expires each with
        the same conditional write a read uses, so a concurrent arrival wins.
        """
        expired = []
        for key in self._overdue_keys(now):
            record = self.expire(key, now)
            if record is not None:
                expired.append(record)
        return expired

    def overdue_uploads(self, now: datetime) -> list[UploadRecord]:
        """Every declared upload still PENDING with ``expires_at`` before ``now`` (read only).

        A scan of the sparse ``upload_id-index`` (declared uploads only); closing one is
        ``expire``'s conditional write, which a concurrent arrival or extension wins.
        """
        records = (self._upload(key) for key in self._overdue_keys(now))
        return [record for record in records if record is not None and record.overdue(now)]

    def _overdue_keys(self, now: datetime) -> list[str]:
        paginator = self._ddb.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table_name,
            IndexName=UPLOAD_INDEX,
            FilterExpression="processing_status = :pending AND expires_at < :now",
            ExpressionAttributeValues={
                ":pending": {"S": UploadStatus.PENDING.value},
                ":now": {"S": iso_utc(now)},
            },
            ProjectionExpression="s3_key",
        )
        try:
            return [item["s3_key"]["S"] for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("Scan", UPLOAD_INDEX, exc) from exc

    def abort(self, key: str, now: datetime) -> UploadRecord | None:
        """PENDING -> ABORTED; ``None`` when the item is no longer PENDING."""
        return self._close(key, UploadStatus.ABORTED, now, "processing_status = :pending")

    def reject(self, key: str, reason: str, now: datetime) -> UploadRecord | None:
        """PENDING -> REJECTED with ``reason``, no object recorded (S3 refused the bytes);
        ``None`` when the item is no longer PENDING."""
        return self._close(key, Status.REJECTED, now, "processing_status = :pending", reason)

    def extend(self, key: str, expires_at: datetime, now: datetime) -> UploadRecord | None:
        """A PENDING upload's new ``expires_at``; ``None`` when it is no longer PENDING.

        Only while PENDING: an expiry, an abort or the object's arrival written first wins.
        """
        values = {
            ":pending": UploadStatus.PENDING.value,
            ":expires_at": iso_utc(expires_at),
            ":now": iso_utc(now),
        }
        return self._update_upload(
            key,
            "SET expires_at = :expires_at, updated_at = :now",
            "processing_status = :pending",
            values,
        )

    def expect_checksum(
        self,
        key: str,
        checksum: str,
        now: datetime,
        sha256: str | None = None,
        sent_sha256: str | None = None,
    ) -> UploadRecord | None:
        """Record the checksum S3 must hold for a PENDING upload (a multipart upload's composite
        SHA-256, before it is completed), the declared whole-file ``sha256`` (hex) when the
        partner gives it only now, and ``sent_sha256`` (hex) when the declaration gave one and
        the completion gives that of the bytes sent; ``None`` when the upload is no longer
        PENDING."""
        values = {":pending": UploadStatus.PENDING.value, ":checksum": checksum}
        values[":now"] = iso_utc(now)
        update = "SET expected_checksum_sha256 = :checksum, updated_at = :now"
        if sha256 is not None:
            values[":sha256"] = sha256
            update += ", declared_sha256 = :sha256"
        if sent_sha256 is not None:
            values[":sent"] = sent_sha256
            update += ", sent_sha256 = :sent"
        return self._update_upload(key, update, "processing_status = :pending", values)

    def _declared(self, declaration: Declaration) -> dict[str, Any]:
        now = iso_utc(self._clock())
        item = {
            "s3_key": declaration.key,
            "s3_bucket": declaration.bucket,
            "prefix": key_prefix(declaration.key),
            "upload_id": declaration.upload_id,
            "partner_id": declaration.partner_id,
            "processing_status": UploadStatus.PENDING.value,
            "declared_size": declaration.size,
            "declared_sha256": declaration.sha256,
            "declared_content_type": declaration.content_type,
            "upload_method": declaration.method,
            "expires_at": iso_utc(declaration.expires_at),
            "first_seen_at": now,
            "updated_at": now,
            "multipart_upload_id": declaration.multipart_upload_id,
            "declared_part_size": declaration.part_size,
            "declared_part_count": declaration.part_count,
            "expected_checksum_sha256": declaration.expected_checksum_sha256,
        }
        return {name: value for name, value in item.items() if value is not None}

    def declaration(self, key: str) -> UploadRecord | None:
        """The declared upload at this key, if a partner declared one (consistent read)."""
        record = self._upload(key)
        return record if record is not None and record.upload_id else None

    def _upload(self, key: str) -> UploadRecord | None:
        try:
            response = self._ddb.get_item(
                TableName=self.table_name, Key={"s3_key": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("GetItem", key, exc) from exc
        item = response.get("Item")
        return _to_upload(_from_attributes(item)) if item else None

    def _close(
        self,
        key: str,
        status: UploadStatus | Status,
        now: datetime,
        condition: str,
        reason: str | None = None,
    ) -> UploadRecord | None:
        values = {":pending": UploadStatus.PENDING.value, ":status": status.value}
        values[":now"] = iso_utc(now)
        update = "SET processing_status = :status, updated_at = :now"
        if reason is not None:
            values[":reason"] = reason
            update += ", reason = :reason"
        closed = f"attribute_exists(s3_key) AND {condition}"
        if self._release_hold(key, key_prefix(key), update, closed, values):
            return self._upload(key)
        # Not PENDING any more, or declared without a hold (before quotas): a plain close.
        return self._update_upload(key, update, condition, values)

    def _settle(self, key: str, item: Mapping[str, Any]) -> None:
        """Give back the pending count an item that left PENDING still holds (at most once:
        the transaction removes the hold on the condition that it is still there)."""
        partner_id = item.get(quotas.HOLD_ATTRIBUTE)
        if not partner_id or item.get("processing_status") == UploadStatus.PENDING:
            return
        values = {":pending": UploadStatus.PENDING.value}
        self._release_hold(key, str(partner_id), "", "processing_status <> :pending", values)

    def _release_hold(
        self, key: str, partner_id: str, update: str, condition: str, values: Mapping[str, str]
    ) -> bool:
        """In one transaction: ``update`` the item at ``key`` and remove its hold on
        ``partner_id``'s pending count, on ``condition`` and the hold being there, and give the
        count back; False when no quotas are kept or the conditions fail (nothing written)."""
        if self.partners_table is None:
            return False
        item = {
            "TableName": self.table_name,
            "Key": {"s3_key": {"S": key}},
            "UpdateExpression": f"{update} REMOVE {quotas.HOLD_ATTRIBUTE}".lstrip(),
            "ConditionExpression": f"{condition} AND {quotas.HOLD_ATTRIBUTE} = :hold",
            "ExpressionAttributeValues": {
                **{k: _attribute(v) for k, v in values.items()},
                ":hold": {"S": partner_id},
            },
        }
        release = quotas.release_pending(self.partners_table, partner_id)
        return not self._transact([{"Update": item}, {"Update": release}], key)

    def _transact(self, items: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
        """TransactWriteItems; [] when written, else one cancellation reason per item (its
        ``Code``, "None" for an item that did not cause it, and ``Item`` when asked for). Tried
        again while a concurrent transaction on one of the items cancels it
        (TransactionConflict), with jittered backoff."""
        for delay in (*_CONFLICT_DELAYS, None):
            try:
                self._ddb.transact_write_items(TransactItems=list(items))  # type: ignore[arg-type]
            except ClientError as exc:
                if error_code(exc) != _TRANSACTION_CANCELED:
                    raise self._failure("TransactWriteItems", key, exc) from exc
                reasons = [dict(r) for r in exc.response.get("CancellationReasons", [])]
                if reasons and all(r.get("Code") != _CONFLICT for r in reasons):
                    return reasons
                if delay is None:
                    raise QuotaBusyError(
                        f"the counters of {key_prefix(key)} stayed busy with its own concurrent"
                        " requests: retry in a second"
                    ) from exc
                self._sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not crypto
            except BotoCoreError as exc:
                raise self._failure("TransactWriteItems", key, exc) from exc
            else:
                return []
        raise AssertionError("unreachable: the last try returns or raises")

    def _update_upload(
        self, key: str, update: str, condition: str, values: Mapping[str, str]
    ) -> UploadRecord | None:
        """One conditional UpdateItem of a declared upload; ``None`` when the condition fails."""
        try:
            response = self._ddb.update_item(
                TableName=self.table_name,
                Key={"s3_key": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(s3_key) AND {condition}",
                ExpressionAttributeValues={k: _attribute(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == _CONDITION_CHECK_FAILED:
                return None
            raise self._failure("UpdateItem", key, exc) from exc
        except BotoCoreError as exc:
            raise self._failure("UpdateItem", key, exc) from exc
        return _to_upload(_from_attributes(response["Attributes"]))

    def _update_request(self, entry: LedgerEntry) -> UpdateItemInputTypeDef:
        fields = _fields(entry, iso_utc(self._clock()))
        written = {name: value for name, value in fields.items() if value is not None}
        removed = [name for name, value in fields.items() if value is None]
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in written)
        update += ", #first_seen_at = if_not_exists(#first_seen_at, :updated_at)"
        if removed:
            update += " REMOVE " + ", ".join(f"#{name}" for name in removed)
        return {
            "TableName": self.table_name,
            "Key": {"s3_key": {"S": entry.key}},
            "UpdateExpression": update,
            "ConditionExpression": _NEWER_BY_SEQUENCER if entry.sequencer else _NEWER_BY_TIME,
            "ExpressionAttributeNames": {f"#{name}": name for name in [*fields, "first_seen_at"]},
            "ExpressionAttributeValues": {f":{n}": _attribute(v) for n, v in written.items()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            # The item as written: whether it still holds a pending count to give back.
            "ReturnValues": "ALL_NEW",
        }

    def _failure(self, operation: str, key: str, exc: Exception) -> LedgerError:
        return LedgerError(
            f"{operation} on ledger table {self.table_name} for key {key!r} failed "
            f"({error_code(exc)}): "
            "check that the table exists and the function's role may read and write it"
        )


def _refusal(
    reasons: Sequence[Mapping[str, Any]],
    key: str,
    limits: quotas.Quotas,
    now: datetime,
    table: str,
) -> Exception:
    """What a cancelled declaration says: the quota that refused it (with its use), else a
    LedgerError (the ledger item's own condition: the key was taken)."""
    codes = [str(reason.get("Code", "None")) for reason in reasons]
    if len(codes) == 3 and codes[0] == "None":
        day, pending = (_from_attributes(reason.get("Item", {})) for reason in reasons[1:])
        quota, limit, used = quotas.refused_by(codes[1] != "None", day, pending, limits)
        return QuotaExceededError(quota, limit, used, quotas.retry_after(quota, now))
    return LedgerError(
        f"TransactWriteItems on ledger table {table} for key {key!r} was cancelled"
        f" ({', '.join(codes)}): the declaration was not recorded"
    )


def create_table(dynamodb_client: DynamoDBClient, request: Mapping[str, Any]) -> bool:
    """CreateTable with ``request``; False when a table of that name is there already."""
    name = request["TableName"]
    try:
        dynamodb_client.create_table(**request)
    except ClientError as exc:
        if error_code(exc) == "ResourceInUseException":
            return False
        raise LedgerError(f"CreateTable {name} failed ({error_code(exc)})") from exc
    except BotoCoreError as exc:
        raise LedgerError(f"CreateTable {name} failed: {exc}") from exc
    return True


def latest_stream_arn(dynamodb_client: DynamoDBClient, table_name: str) -> str:
    """The ARN of the table's current stream (DescribeTable's LatestStreamArn)."""
    try:
        table = dynamodb_client.describe_table(TableName=table_name)["Table"]
    except (ClientError, BotoCoreError) as exc:
        raise LedgerError(
            f"DescribeTable {table_name} failed ({error_code(exc)}): check that the table exists"
        ) from exc
    stream_arn = table.get("LatestStreamArn")
    if not stream_arn:
        raise LedgerError(f"table {table_name} has no stream: its StreamSpecification is missing")
    return str(stream_arn)


def lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record of the ledger's stream as Lambda hands it to a function: the
    stream's ARN added, the creation time in epoch seconds (boto3 parses it into a datetime)."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }


def stream_records(
    streams_client: Any, stream_arn: str, shard_id: str, first: str, last: str
) -> list[dict[str, Any]] | None:
    """The stream's records from sequence number ``first`` to ``last`` (both included), as
    GetRecords returns them; None when the stream no longer holds ``first`` (DynamoDB keeps
    stream records for 24 hours)."""
    try:
        iterator = streams_client.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=first,
        ).get("ShardIterator")
        found: list[dict[str, Any]] = []
        while iterator:
            answer = streams_client.get_records(ShardIterator=iterator, Limit=1000)
            records = answer.get("Records", [])
            found.extend(r for r in records if _sequence(r) <= int(last))
            if not records or _sequence(records[-1]) >= int(last):
                break
            iterator = answer.get("NextShardIterator")
    except ClientError as exc:
        if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            return None
        raise LedgerError(
            f"reading stream {stream_arn} failed ({error_code(exc)}): check that the caller may"
            " dynamodb:GetShardIterator and dynamodb:GetRecords on it"
        ) from exc
    except BotoCoreError as exc:
        raise LedgerError(f"reading stream {stream_arn} failed: {exc}") from exc
    return found or None


def _sequence(record: Mapping[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def enable_point_in_time_recovery(dynamodb_client: DynamoDBClient, table_name: str) -> None:
    """UpdateContinuousBackups: point-in-time recovery on for ``table_name``."""
    try:
        dynamodb_client.update_continuous_backups(
            TableName=table_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    except (ClientError, BotoCoreError) as exc:
        raise LedgerError(
            f"UpdateContinuousBackups on table {table_name} failed ({error_code(exc)}): check"
            " that the table exists and the caller may dynamodb:UpdateContinuousBackups"
        ) from exc


def _fields(entry: LedgerEntry, now: str) -> dict[str, Any]:
    """Attribute name -> value to SET, or None to REMOVE (fields left out stay as they are)."""
    fields: dict[str, Any] = {
        "s3_bucket": entry.bucket,
        "processing_status": entry.status.value,
        "event_name": entry.event_name,
        "event_time": entry.event_time,
        "prefix": key_prefix(entry.key),
        "updated_at": now,
        "version_id": entry.version_id,
        "sequencer": entry.sequencer,
        "sequencer_key": sequencer_key(entry.sequencer) if entry.sequencer else None,
        "reason": entry.reason,
    }
    if entry.status in PRESENT:
        fields.update({name: getattr(entry, name) for name in _OBJECT_FIELDS})
    return fields


def _classify(entry: LedgerEntry, old: Mapping[str, Any]) -> Outcome:
    if entry.sequencer:
        same = old.get("sequencer_key") == sequencer_key(entry.sequencer)
    else:
        same = "sequencer_key" not in old and old.get("event_time") == entry.event_time
    return Outcome.DUPLICATE if same else Outcome.STALE


def _old_item(exc: ClientError) -> dict[str, Any]:
    old = exc.response.get("Item")
    return _from_attributes(old) if isinstance(old, Mapping) else {}


def _attribute(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"the ledger stores strings and whole numbers, not {value!r}")
    return {"N": str(value)} if isinstance(value, int) else {"S": value}


def _from_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    # The ledger only ever writes S and N attributes; anything else is left out.
    plain: dict[str, Any] = {}
    for name, attribute in item.items():
        if "S" in attribute:
            plain[name] = attribute["S"]
        elif "N" in attribute:
            plain[name] = int(attribute["N"])
    return plain


def _to_item(plain: Mapping[str, Any]) -> LedgerItem:
    return LedgerItem(
        key=plain["s3_key"],
        bucket=plain.get("s3_bucket", ""),
        status=plain.get("processing_status", ""),
        event_name=plain.get("event_name", ""),
        event_time=plain.get("event_time", ""),
        prefix=plain.get("prefix", ""),
        first_seen_at=plain.get("first_seen_at", ""),
        updated_at=plain.get("updated_at", ""),
        **{name: plain.get(name) for name in _OPTIONAL_ITEM_FIELDS},
    )


def _to_upload(plain: Mapping[str, Any]) -> UploadRecord:
    return UploadRecord(
        key=plain["s3_key"],
        upload_id=plain.get("upload_id", ""),
        partner_id=plain.get("partner_id", ""),
        status=plain.get("processing_status", ""),
        bucket=plain.get("s3_bucket", ""),
        declared_size=plain.get("declared_size", 0),
        declared_sha256=plain.get("declared_sha256", ""),
        declared_content_type=plain.get("declared_content_type", ""),
        method=plain.get("upload_method", ""),
        expires_at=plain.get("expires_at", ""),
        first_seen_at=plain.get("first_seen_at", ""),
        updated_at=plain.get("updated_at", ""),
        multipart_upload_id=plain.get("multipart_upload_id"),
        declared_part_size=plain.get("declared_part_size"),
        declared_part_count=plain.get("declared_part_count"),
        expected_checksum_sha256=plain.get("expected_checksum_sha256"),
        sent_sha256=plain.get("sent_sha256"),
        quota_partner=plain.get(quotas.HOLD_ATTRIBUTE),
        reason=plain.get("reason"),
        size=plain.get("size"),
        content_type=plain.get("content_type"),
        checksum_sha256=plain.get("checksum_sha256"),
        checksum_type=plain.get("checksum_type"),
        checksum_part_count=plain.get("checksum_part_count"),
        event_time=plain.get("event_time"),
    )
