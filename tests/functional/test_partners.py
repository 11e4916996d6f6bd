"""The partner registry against moto DynamoDB: keys are stored hashed, checked, revoked."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from builders import REGION
from upload_builders import create_partners_table

from filegate.errors import (
    AuthenticationError,
    PartnerDisabledError,
    PartnerError,
    PartnerNotFoundError,
)
from filegate.uploads.partners import PartnerRegistry

NOW = datetime(2025, 9, 28, 20, 37, tzinfo=UTC)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def registry(dynamodb: Any) -> PartnerRegistry:
    return PartnerRegistry(create_partners_table(dynamodb), dynamodb, clock=lambda: NOW)


def test_add_returns_a_key_of_the_documented_shape_and_a_prefix(registry: PartnerRegistry) -> None:
    partner, api_key = registry.add("Acme Corp!", max_size=1000, allowed_types=["text/csv"])

    assert partner.partner_id.startswith("acme-corp-")
    assert partner.prefix == f"{partner.partner_id}/"
    assert api_key.startswith(f"fg_{partner.partner_id}_")
    assert len(api_key.removeprefix(f"fg_{partner.partner_id}_")) == 43  # 32 urlsafe bytes
    assert registry.get(partner.partner_id) == partner


def test_only_a_salted_hash_of_the_key_is_stored(registry: PartnerRegistry, dynamodb: Any) -> None:
    partner, api_key = registry.add("Acme")
    _, other_key = registry.add("Acme")

    items = dynamodb.scan(TableName=registry.table_name)["Items"]
    stored = repr(items)
    assert api_key not in stored
    assert api_key.removeprefix(f"fg_{partner.partner_id}_") not in stored
    salts = {bytes(item["key_salt"]["B"]) for item in items}
    assert len(salts) == 2
    assert other_key != api_key


def test_authenticate_returns_the_partner(registry: PartnerRegistry) -> None:
    partner, api_key = registry.add("Acme")

    assert registry.authenticate(api_key) == partner


@pytest.mark.parametrize(
    "api_key",
    [None, "", "nonsense", "fg_", "fg_nobody-123456_secret", "x" * 500, "fg_UPPER_abc"],
)
def test_missing_malformed_or_unknown_keys_are_401(registry: PartnerRegistry, api_key: Any) -> None:
    registry.add("Acme")

    with pytest.raises(AuthenticationError) as raised:
        registry.authenticate(api_key)
    assert raised.value.status == 401


def test_a_wrong_secret_for_a_real_partner_is_401(registry: PartnerRegistry) -> None:
    _, api_key = registry.add("Acme")

    with pytest.raises(AuthenticationError):
        registry.authenticate(api_key[:-1] + ("A" if api_key[-1] != "A" else "B"))


def test_disable_refuses_the_key_with_403_at_once(registry: PartnerRegistry) -> None:
    partner, api_key = registry.add("Acme")

    disabled = registry.disable(partner.partner_id)

    assert not disabled.enabled
    with pytest.raises(PartnerDisabledError) as raised:
        registry.authenticate(api_key)
    assert raised.value.status == 403


def test_rotate_key_revokes_the_old_key_and_the_new_one_works(registry: PartnerRegistry) -> None:
    partner, old_key = registry.add("Acme")

    new_key = registry.rotate_key(partner.partner_id)

    assert new_key != old_key
    assert registry.authenticate(new_key).partner_id == partner.partner_id
    with pytest.raises(AuthenticationError):
        registry.authenticate(old_key)


def test_list_returns_every_partner_sorted(registry: PartnerRegistry) -> None:
    added = [registry.add(name)[0] for name in ("Zeta", "Alpha", "Mid")]

    assert registry.list() == sorted(added, key=lambda p: p.partner_id)


@pytest.mark.parametrize("operation", ["disable", "rotate_key"])
def test_unknown_partner_ids_are_reported(registry: PartnerRegistry, operation: str) -> None:
    with pytest.raises(PartnerNotFoundError, match="no partner 'ghost-000000'"):
        getattr(registry, operation)("ghost-000000")


@pytest.mark.parametrize(
    ("name", "max_size", "types"),
    [("", None, ()), ("x" * 101, None, ()), ("Acme", 0, ()), ("Acme", None, ("csv",))],
)
def test_bad_partner_settings_are_refused(
    registry: PartnerRegistry, name: str, max_size: int | None, types: tuple[str, ...]
) -> None:
    with pytest.raises(PartnerError):
        registry.add(name, max_size=max_size, allowed_types=types)


def test_a_missing_table_is_a_partner_error_naming_it(dynamodb: Any) -> None:
    registry = PartnerRegistry("no-such-table", dynamodb)

    with pytest.raises(PartnerError, match="no-such-table"):
        registry.add("Acme")


# --- how keys are hashed: HMAC-SHA256 now, scrypt items still accepted and rehashed ---

LEGACY_SECRET = "legacy-secret-0123456789abcdefghijklmnopqrstuv"


def stored(dynamodb: Any, registry: PartnerRegistry, partner_id: str) -> dict[str, Any]:
    key = {"partner_id": {"S": partner_id}}
    item: dict[str, Any] = dynamodb.get_item(
        TableName=registry.table_name, Key=key, ConsistentRead=True
    )["Item"]
    return item


def legacy_partner(dynamodb: Any, registry: PartnerRegistry) -> tuple[str, str]:
    """A partner whose key was stored before HMAC: an scrypt hash and no key_scheme."""
    partner, _ = registry.add("Legacy")
    salt = b"0123456789abcdef"
    scrypt = hashlib.scrypt(LEGACY_SECRET.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    dynamodb.update_item(
        TableName=registry.table_name,
        Key={"partner_id": {"S": partner.partner_id}},
        UpdateExpression="SET key_salt = :salt, key_hash = :hash REMOVE key_scheme",
        ExpressionAttributeValues={":salt": {"B": salt}, ":hash": {"B": scrypt}},
    )
    return partner.partner_id, f"fg_{partner.partner_id}_{LEGACY_SECRET}"


def test_a_new_key_is_stored_as_hmac_sha256_keyed_with_its_salt(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner, api_key = registry.add("Acme")

    item = stored(dynamodb, registry, partner.partner_id)
    secret = api_key.removeprefix(f"fg_{partner.partner_id}_").encode()
    salt = bytes(item["key_salt"]["B"])
    assert item["key_scheme"] == {"S": "hmac-sha256"}
    assert bytes(item["key_hash"]["B"]) == hmac.new(salt, secret, hashlib.sha256).digest()


def test_a_rotated_key_is_stored_as_hmac_sha256(registry: PartnerRegistry, dynamodb: Any) -> None:
    partner_id, _ = legacy_partner(dynamodb, registry)

    new_key = registry.rotate_key(partner_id)

    assert stored(dynamodb, registry, partner_id)["key_scheme"] == {"S": "hmac-sha256"}
    assert registry.authenticate(new_key).partner_id == partner_id


def test_a_key_stored_with_scrypt_works_and_is_rehashed_on_its_first_use(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner_id, api_key = legacy_partner(dynamodb, registry)

    assert registry.authenticate(api_key).partner_id == partner_id

    item = stored(dynamodb, registry, partner_id)
    salt = bytes(item["key_salt"]["B"])
    assert item["key_scheme"] == {"S": "hmac-sha256"}
    assert (
        bytes(item["key_hash"]["B"])
        == hmac.new(salt, LEGACY_SECRET.encode(), hashlib.sha256).digest()
    )
    assert registry.authenticate(api_key).partner_id == partner_id


def test_a_wrong_key_leaves_a_scrypt_item_as_it_is(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner_id, _ = legacy_partner(dynamodb, registry)
    before = stored(dynamodb, registry, partner_id)

    with pytest.raises(AuthenticationError):
        registry.authenticate(f"fg_{partner_id}_{'x' * 43}")

    assert stored(dynamodb, registry, partner_id) == before


class RotatedAfterRead:
    """A DynamoDB client whose first GetItem is followed by a rotation of the partner's key,
    as a concurrent ``filegate partner rotate-key`` would do between read and rehash."""

    def __init__(self, client: Any, table: str, partner_id: str) -> None:
        self._client = client
        self._table = table
        self._partner_id = partner_id
        self.new_key = ""

    def get_item(self, **request: Any) -> Any:
        response = self._client.get_item(**request)
        if not self.new_key:
            other = PartnerRegistry(self._table, self._client)
            self.new_key = other.rotate_key(self._partner_id)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_rehash_never_overwrites_a_key_rotated_meanwhile(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner_id, old_key = legacy_partner(dynamodb, registry)
    racing = RotatedAfterRead(dynamodb, registry.table_name, partner_id)

    # The request read the scrypt item before the rotation: it is still let in (as on AWS, a
    # request already authenticated is not undone), but its rehash must not revive the old key.
    PartnerRegistry(registry.table_name, racing).authenticate(old_key)  # type: ignore[arg-type]

    assert registry.authenticate(racing.new_key).partner_id == partner_id
    with pytest.raises(AuthenticationError):
        registry.authenticate(old_key)


def test_two_concurrent_first_uses_both_succeed_and_leave_one_working_hash(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner_id, api_key = legacy_partner(dynamodb, registry)
    first = stored(dynamodb, registry, partner_id)

    class ReadsTheOldItem:
        """The second request read the item before the first one rehashed it."""

        def get_item(self, **_: Any) -> Any:
            return {"Item": first}

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    registry.authenticate(api_key)
    after_first = stored(dynamodb, registry, partner_id)
    late = PartnerRegistry(registry.table_name, ReadsTheOldItem())  # type: ignore[arg-type]

    assert late.authenticate(api_key).partner_id == partner_id
    assert stored(dynamodb, registry, partner_id) == after_first
    assert registry.authenticate(api_key).partner_id == partner_id


def test_a_rehash_the_role_may_not_write_leaves_the_key_working(
    registry: PartnerRegistry, dynamodb: Any
) -> None:
    partner_id, api_key = legacy_partner(dynamodb, registry)
    before = stored(dynamodb, registry, partner_id)

    class ReadOnly:
        """The upload API's role without dynamodb:UpdateItem on the partners table."""

        def update_item(self, **_: Any) -> Any:
            error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    read_only = PartnerRegistry(registry.table_name, ReadOnly())  # type: ignore[arg-type]

    assert read_only.authenticate(api_key).partner_id == partner_id
    assert stored(dynamodb, registry, partner_id) == before
