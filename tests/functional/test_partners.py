"""The partner registry against moto DynamoDB: keys are stored hashed, checked, revoked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
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
