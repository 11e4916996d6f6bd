"""The partners table: who may upload, under which prefix, with which limits, and their keys.

This module owns every DynamoDB read and write of the partners table, and API keys. A key is
``fg_<partner_id>_<secret>`` (a 32-byte urlsafe secret); only a random salt and a keyed hash of
the secret are stored, so the key is shown once, when it is made. Disabling or rotating takes
effect on the next request: ``authenticate`` reads the item strongly consistent each time.

The hash is HMAC-SHA256 keyed with the item's salt (``key_scheme = "hmac-sha256"``): the secret
is 256 random bits, so a slow password hash buys nothing against a leaked table and costs
every request, a wrong key included, tens of milliseconds (docs/benchmarks-uploads.md). Items
written before carry no ``key_scheme`` and an scrypt hash: they are checked with scrypt and
rewritten to HMAC on their next successful use, by a write conditional on the old hash, so a
concurrent use or a rotation in between wins. A key that names no partner costs no hash.
botocore errors become ``PartnerError`` here.

Quotas (``filegate.quotas``, docs/quotas.md): a partner's limits are attributes of its item
(``daily_uploads``, ``daily_bytes``, ``max_pending``, ``rate``; a limit never set is the
default); ``count_request`` counts each API request in the partner's one-second window (a
fixed window on one item, each request one conditional write) and refuses one over the rate;
``usage`` reads the counters. The declaration counters are written by ``Ledger.declare``, in
the declaration's own transaction. Counter items share this table; ``list`` leaves them out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate import quotas
from filegate.errors import (
    AuthenticationError,
    PartnerDisabledError,
    PartnerError,
    PartnerNotFoundError,
    QuotaExceededError,
    error_code,
)
from filegate.events import iso_utc
from filegate.quotas import DEFAULT_QUOTAS, Quotas, QuotaUse
from filegate.uploads.requests import is_type_pattern

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

KEY_PREFIX = "fg"
ACTIVE = "ACTIVE"
DISABLED = "DISABLED"
MAX_NAME_LENGTH = 100
MAX_KEY_LENGTH = 128  # a real key is about 90 characters; longer ones are not hashed at all
_SLUG_LENGTH = 32
_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SUFFIX_LENGTH = 6
_SECRET_BYTES = 32
_SALT_BYTES = 16
HMAC_SCHEME = "hmac-sha256"
# How keys were stored before HMAC (items without key_scheme): checked, then rehashed.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_PARTNER_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CONDITION_CHECK_FAILED = "ConditionalCheckFailedException"
_INVALID_KEY = "the API key is not valid: check it or ask for a new one"


@dataclass(frozen=True)
class Partner:
    """One partner as stored, without its key material."""

    partner_id: str
    name: str
    prefix: str
    status: str
    created_at: str
    updated_at: str
    max_size: int | None = None
    allowed_types: tuple[str, ...] = ()
    quotas: Quotas = DEFAULT_QUOTAS

    @property
    def enabled(self) -> bool:
        return self.status == ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "name": self.name,
            "prefix": self.prefix,
            "status": self.status,
            "max_size": self.max_size,
            "allowed_types": list(self.allowed_types),
            "quotas": self.quotas.as_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class PartnerRegistry:
    """The partners table, through an injected low-level DynamoDB client and clock."""

    def __init__(
        self, table_name: str, dynamodb_client: DynamoDBClient, clock: Clock | None = None
    ) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client
        self._clock = clock or (lambda: datetime.now(UTC))

    def add(
        self,
        name: str,
        max_size: int | None = None,
        allowed_types: Sequence[str] = (),
        limits: Mapping[str, int] | None = None,
    ) -> tuple[Partner, str]:
        """A new, active partner and its API key (the only time the key is available).

        ``limits`` sets some of its quotas by name (``quotas.QUOTA_NAMES``); the rest keep
        their defaults."""
        _check_partner(name, max_size, allowed_types)
        limits = dict(limits or {})
        _check_limits(limits)
        now = iso_utc(self._clock())
        partner_id = new_partner_id(name)
        partner = Partner(
            partner_id=partner_id,
            name=name,
            prefix=f"{partner_id}/",
            status=ACTIVE,
            created_at=now,
            updated_at=now,
            max_size=max_size,
            allowed_types=tuple(allowed_types),
            quotas=replace(DEFAULT_QUOTAS, **limits),
        )
        api_key, key_fields = _new_key(partner_id)
        stored_limits = {name: {"N": str(value)} for name, value in limits.items()}
        self._call(
            "put_item",
            partner_id,
            Item={**_partner_attributes(partner), **stored_limits, **key_fields},
            ConditionExpression="attribute_not_exists(partner_id)",
        )
        return partner, api_key

    def get(self, partner_id: str) -> Partner | None:
        """One partner, read strongly consistent; ``None`` when there is none with that id."""
        item = self._item(partner_id)
        return _to_partner(item) if item else None

    def list(self) -> list[Partner]:
        """Every partner, sorted by id (the quota counters that share the table left out)."""
        items = (i for i in self._scan() if not quotas.is_counter_id(i["partner_id"]["S"]))
        return sorted((_to_partner(i) for i in items), key=lambda p: p.partner_id)

    def update(self, partner_id: str, limits: Mapping[str, int]) -> Partner:
        """Set some of the partner's quotas by name; they apply from its next request."""
        if not limits:
            raise PartnerError(
                "nothing to update: give at least one of --daily-uploads, --daily-bytes,"
                " --max-pending, --rate"
            )
        _check_limits(limits)
        names = {f"#{name}": name for name in limits}
        values = {f":{name}": {"N": str(value)} for name, value in limits.items()}
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in limits)
        return self._update(partner_id, update, values, names)

    def count_request(self, partner: Partner) -> None:
        """Count one API request in the partner's current one-second window; refuse it
        (``QuotaExceededError``, quota ``rate``) when the window already holds ``rate``.

        A fixed window on one item: within the second, one conditional increment; the first
        request of a new second moves the window, on the condition that it is older (so of
        requests racing into a new second, one moves it and the others count in it). A window
        ahead of this clock (another container's clock ahead) is counted into, not reset.
        """
        now = self._clock()
        window, limit = quotas.window_of(now), partner.quotas.rate
        key = {"partner_id": {"S": quotas.rate_key(partner.partner_id)}}
        for _ in range(3):
            old = self._count_in_window(key, window, limit)
            if old is None:
                return
            if int(old.get("window", {}).get("N", "-1")) >= window:
                used = int(old.get("requests", {}).get("N", "0"))
                raise QuotaExceededError(quotas.RATE, limit, used, quotas.RATE_RETRY_AFTER)
            if self._open_window(key, window):
                return
        raise QuotaExceededError(quotas.RATE, limit, limit, quotas.RATE_RETRY_AFTER)

    def usage(self, partner_id: str) -> tuple[QuotaUse, ...]:
        """Each quota of the partner: its limit, today's use (UTC), the window's reset."""
        partner = self.get(partner_id)
        if partner is None:
            raise PartnerNotFoundError(
                f"no partner {partner_id!r} in table {self.table_name}: "
                "`filegate partner list` shows the partners"
            )
        now = self._clock()
        day = self._item(quotas.day_key(partner_id, now)) or {}
        pending = self._item(quotas.pending_key(partner_id)) or {}
        rate = self._item(quotas.rate_key(partner_id)) or {}
        in_window = int(rate.get("window", {}).get("N", "-1")) == quotas.window_of(now)
        limits, midnight = partner.quotas, quotas.seconds_to_midnight(now)
        requests = _n(rate, "requests") if in_window else 0
        return (
            QuotaUse(quotas.DAILY_UPLOADS, limits.daily_uploads, _n(day, "uploads"), midnight),
            QuotaUse(quotas.DAILY_BYTES, limits.daily_bytes, _n(day, "bytes"), midnight),
            QuotaUse(quotas.MAX_PENDING, limits.max_pending, _n(pending, "pending"), None),
            QuotaUse(quotas.RATE, limits.rate, requests, quotas.RATE_RETRY_AFTER),
        )

    def _count_in_window(
        self, key: Mapping[str, Any], window: int, limit: int
    ) -> dict[str, Any] | None:
        """One more request in the stored window if it is this one (or newer) and has room;
        None when counted, else the item as it was (empty when there is none)."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="ADD requests :one",
                ConditionExpression="#window >= :window AND requests < :limit",
                ExpressionAttributeNames={"#window": "window"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":window": {"N": str(window)},
                    ":limit": {"N": str(limit)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != _CONDITION_CHECK_FAILED:
                raise self._failure("update_item", key["partner_id"]["S"], exc) from exc
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return old
        except BotoCoreError as exc:
            raise self._failure("update_item", key["partner_id"]["S"], exc) from exc
        return None

    def _open_window(self, key: Mapping[str, Any], window: int) -> bool:
        """Start ``window`` with this request in it, if the stored window is older; False
        when a concurrent request started it (or a newer one) first."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET #window = :window, requests = :one",
                ConditionExpression="attribute_not_exists(#window) OR #window < :window",
                ExpressionAttributeNames={"#window": "window"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":window": {"N": str(window)}},
            )
        except ClientError as exc:
            if error_code(exc) != _CONDITION_CHECK_FAILED:
                raise self._failure("update_item", key["partner_id"]["S"], exc) from exc
            return False
        except BotoCoreError as exc:
            raise self._failure("update_item", key["partner_id"]["S"], exc) from exc
        return True

    def disable(self, partner_id: str) -> Partner:
        """Refuse the partner's key from the next request on."""
        return self._update(partner_id, "SET #status = :status", {":status": {"S": DISABLED}})

    def rotate_key(self, partner_id: str) -> str:
        """A new API key for the partner; the old one stops working at once."""
        api_key, fields = _new_key(partner_id)
        update = (
            "SET key_salt = :salt, key_hash = :hash, key_scheme = :scheme, key_rotated_at = :now"
        )
        values = {":salt": fields["key_salt"], ":hash": fields["key_hash"]}
        values[":scheme"] = fields["key_scheme"]
        values[":now"] = {"S": iso_utc(self._clock())}
        self._update(partner_id, update, values)
        return api_key

    def authenticate(self, api_key: str | None) -> Partner:
        """The partner the key belongs to: 401 for a missing or wrong key, 403 when disabled."""
        if not api_key:
            raise AuthenticationError("the x-api-key header is missing: send your API key")
        if len(api_key) > MAX_KEY_LENGTH:
            raise AuthenticationError(_INVALID_KEY)
        partner_id, secret = _split_key(api_key)
        # No partner, no hash: partner ids are not secret (every object key starts with one),
        # so answering an unknown id faster gives nothing away.
        item = self._item(partner_id) if partner_id else None
        if item is None or not _key_matches(item, secret):
            raise AuthenticationError(_INVALID_KEY)
        if _scheme(item) != HMAC_SCHEME:
            self._rehash(item, secret)
        partner = _to_partner(item)
        if not partner.enabled:
            raise PartnerDisabledError(f"partner {partner.partner_id} is disabled")
        return partner

    def _rehash(self, item: Mapping[str, Any], secret: str) -> None:
        """Store the HMAC of a key just checked against its older scrypt hash.

        Conditional on the hash read: if a concurrent request rehashed it, or the key was
        rotated meanwhile, that write stands. Any failure leaves the old hash, which still
        works (the upload API's role needs dynamodb:UpdateItem on the table for this).
        """
        partner_id = item["partner_id"]["S"]
        fields = _key_fields(secret)
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"partner_id": {"S": partner_id}},
                UpdateExpression="SET key_salt = :salt, key_hash = :hash, key_scheme = :scheme",
                ConditionExpression="key_hash = :old AND attribute_not_exists(key_scheme)",
                ExpressionAttributeValues={
                    ":salt": fields["key_salt"],
                    ":hash": fields["key_hash"],
                    ":scheme": fields["key_scheme"],
                    ":old": item["key_hash"],
                },
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != _CONDITION_CHECK_FAILED:
                logger.warning(
                    "the API key's hash was not upgraded to %s (%s); it keeps working as it is",
                    HMAC_SCHEME,
                    error_code(exc),
                    extra={"partner_id": partner_id},
                )

    def _item(self, partner_id: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", partner_id, Key={"partner_id": {"S": partner_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return dict(item) if item else None

    def _scan(self) -> Iterator[Mapping[str, Any]]:
        request: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        while True:
            try:
                page = self._ddb.scan(**request)
            except (ClientError, BotoCoreError) as exc:
                raise self._failure("scan", "*", exc) from exc
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _update(
        self,
        partner_id: str,
        update: str,
        values: dict[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> Partner:
        request: dict[str, Any] = {
            "Key": {"partner_id": {"S": partner_id}},
            "UpdateExpression": f"{update}, updated_at = :updated_at",
            "ConditionExpression": "attribute_exists(partner_id)",
            "ExpressionAttributeValues": {**values, ":updated_at": {"S": iso_utc(self._clock())}},
            "ReturnValues": "ALL_NEW",
        }
        if "#status" in update:  # "status" is a DynamoDB reserved word
            request["ExpressionAttributeNames"] = {"#status": "status"}
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        return _to_partner(self._call("update_item", partner_id, **request)["Attributes"])

    def _call(self, operation: str, partner_id: str, **request: Any) -> Any:
        """One DynamoDB call on the table; an update of a missing partner is PartnerNotFound."""
        try:
            return getattr(self._ddb, operation)(TableName=self.table_name, **request)
        except ClientError as exc:
            if error_code(exc) == _CONDITION_CHECK_FAILED and operation == "update_item":
                raise PartnerNotFoundError(
                    f"no partner {partner_id!r} in table {self.table_name}: "
                    "`filegate partner list` shows the partners"
                ) from exc
            raise self._failure(operation, partner_id, exc) from exc
        except BotoCoreError as exc:
            raise self._failure(operation, partner_id, exc) from exc

    def _failure(self, operation: str, partner_id: str, exc: Exception) -> PartnerError:
        action = "".join(word.capitalize() for word in operation.split("_"))
        return PartnerError(
            f"{action} on partners table {self.table_name} for partner {partner_id!r} failed "
            f"({error_code(exc)}): check that the table exists and that the caller may use it"
        )


def new_partner_id(name: str) -> str:
    """A slug of the name and a short random suffix, e.g. ``acme-corp-x7k2qa``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:_SLUG_LENGTH].strip("-") or "partner"
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))
    return f"{slug}-{suffix}"


def hash_secret(secret: str, salt: bytes) -> bytes:
    """HMAC-SHA256 of the key's secret part, keyed with the item's salt."""
    return hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).digest()


def scrypt_secret(secret: str, salt: bytes) -> bytes:
    """scrypt (n=2**14, r=8, p=1) of the key's secret part: how keys were stored before HMAC."""
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **_SCRYPT)


def _check_partner(name: str, max_size: int | None, allowed_types: Sequence[str]) -> None:
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise PartnerError(f"the partner name must be 1 to {MAX_NAME_LENGTH} characters")
    if max_size is not None and max_size < 1:
        raise PartnerError(f"--max-size must be at least 1 byte, not {max_size}")
    bad = [t for t in allowed_types if not is_type_pattern(t)]
    if bad:
        raise PartnerError(
            f"not a media type: {', '.join(map(repr, bad))}; use type/subtype or type/*"
        )


def _check_limits(limits: Mapping[str, int]) -> None:
    for name, value in limits.items():
        if name not in quotas.QUOTA_NAMES:
            raise PartnerError(f"no quota {name!r}: the quotas are {', '.join(quotas.QUOTA_NAMES)}")
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PartnerError(f"{option} must be a whole number of at least 1, not {value!r}")


def _n(item: Mapping[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


def _new_key(partner_id: str) -> tuple[str, dict[str, Any]]:
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{KEY_PREFIX}_{partner_id}_{secret}", _key_fields(secret)


def _key_fields(secret: str) -> dict[str, Any]:
    """The item attributes that store ``secret``: a fresh salt and the HMAC under it."""
    salt = secrets.token_bytes(_SALT_BYTES)
    return {
        "key_salt": {"B": salt},
        "key_hash": {"B": hash_secret(secret, salt)},
        "key_scheme": {"S": HMAC_SCHEME},
    }


def _split_key(api_key: str) -> tuple[str | None, str]:
    """(partner_id, secret); the id is None when the key does not have our shape."""
    head, _, rest = api_key.partition("_")
    partner_id, _, secret = rest.partition("_")
    if head != KEY_PREFIX or not secret or not _PARTNER_ID.fullmatch(partner_id):
        return None, secret or api_key
    return partner_id, secret


def _key_matches(item: Mapping[str, Any], secret: str) -> bool:
    """Whether ``secret`` is the item's key, by the scheme the item was stored with."""
    salt, expected = bytes(item["key_salt"]["B"]), bytes(item["key_hash"]["B"])
    digest = hash_secret if _scheme(item) == HMAC_SCHEME else scrypt_secret
    try:
        actual = digest(secret, salt)
    except (UnicodeEncodeError, ValueError):
        return False
    return hmac.compare_digest(actual, expected)


def _scheme(item: Mapping[str, Any]) -> str:
    return str(item.get("key_scheme", {}).get("S", "scrypt"))


def _partner_attributes(partner: Partner) -> dict[str, Any]:
    item: dict[str, Any] = {
        "partner_id": {"S": partner.partner_id},
        "name": {"S": partner.name},
        "prefix": {"S": partner.prefix},
        "status": {"S": partner.status},
        "created_at": {"S": partner.created_at},
        "updated_at": {"S": partner.updated_at},
        "allowed_types": {"L": [{"S": t} for t in partner.allowed_types]},
    }
    if partner.max_size is not None:
        item["max_size"] = {"N": str(partner.max_size)}
    return item


def _to_partner(item: Mapping[str, Any]) -> Partner:
    max_size = item.get("max_size", {}).get("N")
    return Partner(
        partner_id=item["partner_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        prefix=item.get("prefix", {}).get("S", ""),
        status=item.get("status", {}).get("S", DISABLED),
        created_at=item.get("created_at", {}).get("S", ""),
        updated_at=item.get("updated_at", {}).get("S", ""),
        max_size=int(max_size) if max_size is not None else None,
        allowed_types=tuple(t["S"] for t in item.get("allowed_types", {}).get("L", [])),
        quotas=_quotas(item),
    )


def _quotas(item: Mapping[str, Any]) -> quotas.Quotas:
    """The partner's limits: each stored one, else its default."""
    stored = {
        name: int(item[name]["N"]) for name in quotas.QUOTA_NAMES if "N" in item.get(name, {})
    }
    return replace(quotas.DEFAULT_QUOTAS, **stored)
