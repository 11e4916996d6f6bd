"""Signing part URLs, each for its part's SHA-256, in pages (``POST /uploads/{id}/parts``),
listing the parts S3 holds (``GET /uploads/{id}/parts``), and looking up a just-declared upload
while the upload-id index lags, against emulated S3 and DynamoDB (in-process moto).

Assertions are on the HTTP answers and on the ledger items. The index lag is played by
``LaggingLedger``, a subclass of our own ``Ledger`` whose first look-ups find nothing, as an
eventually consistent GSI does right after a write; DynamoDB itself is moto's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from builders import REGION
from conftest import TABLE
from test_upload_api import Call, assert_documented, call_api, create_resources, declare
from upload_builders import PARTNERS_TABLE, UPLOAD_BUCKET

from filegate.errors import UploadNotFoundError
from filegate.events import iso_utc
from filegate.ledger import Ledger, UploadRecord
from filegate.storage import UploadSigner
from filegate.uploads import api
from filegate.uploads.partners import Partner, PartnerRegistry
from filegate.uploads.service import INDEX_RETRY_DELAYS, UploadPolicy, UploadService

MiB = 1024 * 1024
C1 = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="  # a part's SHA-256, base64
ONE = {"parts": [{"part_number": 1, "checksum_sha256": C1}]}


@pytest.fixture
def upload_api(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    """The upload API handler over in-process moto, as in test_upload_api."""
    monkeypatch.setenv("PARTNERS_TABLE", PARTNERS_TABLE)
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOAD_BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "filegate-upload-api")
    create_resources()
    api.build_service.cache_clear()
    yield call_api
    api.build_service.cache_clear()


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", str(MiB))


@pytest.fixture
def registry(upload_api: Call) -> PartnerRegistry:
    return PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def acme(registry: PartnerRegistry) -> tuple[Partner, str]:
    return registry.add("Acme", max_size=200 * MiB, allowed_types=["text/*"])


@pytest.fixture
def ledger(upload_api: Call) -> Ledger:
    return Ledger(TABLE, boto3.client("dynamodb", region_name=REGION))


def parts(*numbers: int) -> dict[str, Any]:
    """A POST /uploads/{id}/parts body for these part numbers."""
    return {"parts": [{"part_number": n, "checksum_sha256": C1} for n in numbers]}


def set_expiry(key: str, expires_at: str) -> None:
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=TABLE,
        Key={"s3_key": {"S": key}},
        UpdateExpression="SET expires_at = :at",
        ExpressionAttributeValues={":at": {"S": expires_at}},
    )


def refresh(call: Call, key: str, upload_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", f"/uploads/{upload_id}/parts", api_key=key, body=body)


# --- POST /uploads/{upload_id}/parts ---


def test_parts_are_signed_again_and_the_ledger_expiry_moves_on(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=20 * MiB)
    soon = iso_utc(datetime.now(UTC) + timedelta(seconds=5))
    set_expiry(plan["key"], soon)  # a slow transfer: the first URLs are about to expire

    status, answer = refresh(upload_api, acme[1], plan["upload_id"], ONE)

    assert status == 200, answer
    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert (record.status, record.expires_at) == ("PENDING", answer["expires_at"])
    assert answer["expires_at"] > soon
    assert plan["part_count"] == 3  # 8 + 8 + 4 MiB
    assert "parts" not in plan  # no URL before its part's SHA-256 is known
    [part] = answer["parts"]
    assert {k: part[k] for k in ("part_number", "offset", "size")} == {
        "part_number": 1,
        "offset": 0,
        "size": 8 * MiB,
    }
    assert part["headers"] == {
        "Content-Length": str(8 * MiB),
        "x-amz-checksum-sha256": C1,
        "x-amz-sdk-checksum-algorithm": "SHA256",
    }
    query = parse_qs(urlsplit(part["url"]).query)
    assert query["partNumber"] == ["1"]
    assert "x-amz-checksum-sha256" in query["X-Amz-SignedHeaders"][0].split(";")
    assert_documented("/uploads/{upload_id}/parts", "post", status, answer)


def test_an_empty_list_only_extends_the_upload(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=20 * MiB)
    set_expiry(plan["key"], iso_utc(datetime.now(UTC) + timedelta(seconds=5)))

    status, answer = refresh(upload_api, acme[1], plan["upload_id"], {"parts": []})

    assert (status, answer["parts"]) == (200, [])
    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert record.expires_at == answer["expires_at"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "parts"),
        ({"parts": "1"}, "parts"),
        ({"parts": [1]}, "parts[0]"),
        (parts(0), "parts[0].part_number"),
        (
            {"parts": [*parts(1)["parts"], {"part_number": True, "checksum_sha256": C1}]},
            "parts[1].part_number",
        ),
        (parts(10_001), "parts[0].part_number"),
        (parts(1, 4), "parts[1].part_number"),  # the plan has 3 parts
        (parts(2, 2), "parts"),
        (parts(*range(1, 1_002)), "parts"),  # more than a page (1,000)
        ({"parts": [{"part_number": 1}]}, "parts[0].checksum_sha256"),
        ({"parts": [{"part_number": 1, "checksum_sha256": "a" * 64}]}, "parts[0].checksum_sha256"),
        (None, "body"),
    ],
)
def test_bad_parts_to_sign_are_400_naming_the_field(
    upload_api: Call,
    acme: tuple[Partner, str],
    ledger: Ledger,
    small_threshold: None,
    body: Any,
    field: str,
) -> None:
    plan = declare(upload_api, acme[1], size=20 * MiB)

    status, answer = refresh(upload_api, acme[1], plan["upload_id"], body)

    assert (status, answer["error"]["field"]) == (400, field)
    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert record.expires_at == plan["expires_at"]  # nothing half done
    assert_documented("/uploads/{upload_id}/parts", "post", status, answer)


def test_another_partners_or_an_unknown_upload_is_404(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=20 * MiB)
    _, other_key = registry.add("Globex")
    assert refresh(upload_api, other_key, plan["upload_id"], ONE)[0] == 404
    assert refresh(upload_api, acme[1], "not-an-id", ONE)[0] == 404
    assert upload_api("GET", f"/uploads/{plan['upload_id']}/parts", api_key=other_key)[0] == 404


def test_a_single_put_an_aborted_or_an_expired_upload_is_409(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger, small_threshold: None
) -> None:
    single = declare(upload_api, acme[1])
    aborted = declare(upload_api, acme[1], size=20 * MiB)
    upload_api("POST", f"/uploads/{aborted['upload_id']}/abort", api_key=acme[1])
    expired = declare(upload_api, acme[1], size=20 * MiB)
    set_expiry(expired["key"], "2020-01-01T00:00:00.000Z")

    for plan in (single, aborted, expired):
        status, answer = refresh(upload_api, acme[1], plan["upload_id"], ONE)
        assert (status, answer["error"]["code"]) == (409, "conflict")
        assert_documented("/uploads/{upload_id}/parts", "post", status, answer)
    record = ledger.get_upload(expired["upload_id"])
    assert record is not None
    assert (record.status, record.expires_at) == ("EXPIRED", "2020-01-01T00:00:00.000Z")


def test_a_concurrent_expiry_wins_over_the_extension(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=20 * MiB)
    later = datetime.now(UTC) + timedelta(days=1)
    assert ledger.expire(plan["key"], later) is not None  # expired first

    assert ledger.extend(plan["key"], later + timedelta(hours=1), later) is None

    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert (record.status, record.expires_at) == ("EXPIRED", plan["expires_at"])


# --- the upload-id index lags behind the declaration ---


class LaggingLedger(Ledger):
    """A ledger whose first ``misses`` look-ups by upload id find nothing (GSI not caught up)."""

    def __init__(self, misses: int) -> None:
        super().__init__(TABLE, boto3.client("dynamodb", region_name=REGION))
        self.misses = misses

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        if self.misses:
            self.misses -= 1
            return None
        return super().get_upload(upload_id)


class Sleeps(list[float]):
    """The injected sleep: records each pause, waits for none."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def lagging_service(misses: int, sleeps: Sleeps) -> UploadService:
    return UploadService(
        PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb", region_name=REGION)),
        LaggingLedger(misses),
        UploadSigner(boto3.client("s3", region_name=REGION), 900),
        UploadPolicy(UPLOAD_BUCKET, 64 * MiB, 900),
        sleep=sleeps,
    )


def test_a_get_right_after_the_post_finds_the_upload_once_the_index_catches_up(
    upload_api: Call, acme: tuple[Partner, str]
) -> None:
    plan = declare(upload_api, acme[1])
    sleeps = Sleeps()

    view = lagging_service(2, sleeps).status(acme[0], plan["upload_id"])

    assert (view["upload_id"], view["status"]) == (plan["upload_id"], "PENDING")
    assert sleeps == list(INDEX_RETRY_DELAYS[:2])


def test_an_unknown_upload_is_404_after_a_bounded_wait(
    upload_api: Call, acme: tuple[Partner, str]
) -> None:
    sleeps = Sleeps()

    with pytest.raises(UploadNotFoundError):
        lagging_service(0, sleeps).status(acme[0], "up-" + "a" * 26)

    assert sleeps == list(INDEX_RETRY_DELAYS)
    assert sum(sleeps) <= 1.0


def test_a_malformed_id_or_another_partners_upload_is_404_without_waiting(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry
) -> None:
    plan = declare(upload_api, acme[1])
    other, _ = registry.add("Globex")
    sleeps = Sleeps()
    service = lagging_service(0, sleeps)

    for partner, upload_id in ((acme[0], "nonsense"), (other, plan["upload_id"])):
        with pytest.raises(UploadNotFoundError):
            service.status(partner, upload_id)

    assert sleeps == []
