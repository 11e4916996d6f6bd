"""Per-partner quotas (issue 12, item 4), against in-process moto: each quota refuses exactly
at its limit with a 429 that names it, writing nothing; the pending count comes back once
when an upload is ACCEPTED, REJECTED, EXPIRED, ABORTED (or DELETED before its verdict),
whatever is delivered twice.

Assertions are on the HTTP answer and on the items left in the ledger and partners tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from builders import BUCKET, REGION, notification, s3_record, sqs_batch
from conftest import TABLE, FakeContext
from test_upload_api import assert_documented
from upload_builders import (
    PARTNERS_TABLE,
    UPLOAD_BUCKET,
    create_partners_table,
    declaration,
    http_event,
)

from filegate import quotas
from filegate.errors import QuotaBusyError, QuotaExceededError
from filegate.events import iso_utc
from filegate.ledger import Declaration, Ledger
from filegate.uploads import api
from filegate.uploads.partners import PartnerRegistry

NOON = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)
Call = Callable[..., tuple[int, dict[str, Any], dict[str, str]]]


def call_api(method: str, path: str, **event: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.lambda_handler(http_event(method, path, **event), FakeContext())
    return response["statusCode"], json.loads(response["body"]), response.get("headers", {})


@pytest.fixture
def tables(table: str, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The ledger and partners tables and both buckets (the ingestion's, versioned, and the
    API's); both functions told the partners table (the template sets PARTNERS_TABLE on each)."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_partners_table(dynamodb)
    s3.create_bucket(Bucket=UPLOAD_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("PARTNERS_TABLE", PARTNERS_TABLE)
    api.build_service.cache_clear()
    yield dynamodb
    api.build_service.cache_clear()


@pytest.fixture
def upload_api(tables: Any, monkeypatch: pytest.MonkeyPatch) -> Call:
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOAD_BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "filegate-upload-api")
    return call_api


@pytest.fixture
def registry(tables: Any) -> PartnerRegistry:
    return PartnerRegistry(PARTNERS_TABLE, tables)


def counter(dynamodb: Any, item_id: str, name: str) -> int | None:
    item = dynamodb.get_item(
        TableName=PARTNERS_TABLE, Key={"partner_id": {"S": item_id}}, ConsistentRead=True
    ).get("Item", {})
    return int(item[name]["N"]) if name in item else None


def ledger_keys(dynamodb: Any) -> list[str]:
    return [i["s3_key"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]]


def declare_body(size: int = 11) -> dict[str, Any]:
    return declaration(b"x" * size, filename="data.csv")


# --- each quota refuses exactly at its limit ---


def test_daily_uploads_refuses_the_declaration_after_the_limit_and_writes_nothing(
    upload_api: Call, registry: PartnerRegistry, tables: Any
) -> None:
    partner, key = registry.add("Acme", limits={"daily_uploads": 3})
    answers = [upload_api("POST", "/uploads", api_key=key, body=declare_body()) for _ in range(4)]
    assert [status for status, _, _ in answers] == [201, 201, 201, 429]
    _, body, headers = answers[3]
    assert body["error"] | {"message": "-"} == {
        "code": "quota_exceeded",
        "message": "-",
        "quota": "daily_uploads",
        "limit": 3,
        "used": 3,
        "retry_after_seconds": int(headers["Retry-After"]),
    }
    # Retry-After: the seconds left of the UTC day, when the daily quotas reset.
    assert 0 < int(headers["Retry-After"]) <= 86_400
    assert_documented("/uploads", "post", 429, body)
    assert len(ledger_keys(tables)) == 3
    today = quotas.day_key(partner.partner_id, datetime.now(UTC))
    assert counter(tables, today, "uploads") == 3
    assert counter(tables, quotas.pending_key(partner.partner_id), "pending") == 3


def test_daily_bytes_counts_declared_sizes_and_refuses_the_byte_over(
    upload_api: Call, registry: PartnerRegistry, tables: Any
) -> None:
    partner, key = registry.add("Acme", limits={"daily_bytes": 100})
    statuses = [
        upload_api("POST", "/uploads", api_key=key, body=declare_body(size))[0] for size in (60, 40)
    ]
    status, body, headers = upload_api("POST", "/uploads", api_key=key, body=declare_body(1))
    assert statuses == [201, 201]
    assert (status, body["error"]["quota"], body["error"]["limit"], body["error"]["used"]) == (
        429,
        "daily_bytes",
        100,
        100,
    )
    assert "Retry-After" in headers
    today = quotas.day_key(partner.partner_id, datetime.now(UTC))
    assert (counter(tables, today, "uploads"), counter(tables, today, "bytes")) == (2, 100)
    assert len(ledger_keys(tables)) == 2


def test_a_declaration_larger_than_the_daily_byte_quota_is_413_naming_the_size(
    upload_api: Call, registry: PartnerRegistry, tables: Any
) -> None:
    _, key = registry.add("Acme", limits={"daily_bytes": 100})
    status, body, _ = upload_api("POST", "/uploads", api_key=key, body=declare_body(101))
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "too_large", "size")
    assert ledger_keys(tables) == []


def test_a_refused_multipart_declaration_leaves_no_multipart_upload_open(
    upload_api: Call, registry: PartnerRegistry, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", "1024")
    _, key = registry.add("Acme", limits={"daily_uploads": 1})
    first = upload_api("POST", "/uploads", api_key=key, body=declare_body(5000))
    second = upload_api("POST", "/uploads", api_key=key, body=declare_body(5000))
    assert (first[1]["method"], second[0]) == ("MULTIPART", 429)
    open_uploads = s3.list_multipart_uploads(Bucket=UPLOAD_BUCKET).get("Uploads", [])
    assert [u["Key"] for u in open_uploads] == [first[1]["key"]]


def test_max_pending_refuses_while_that_many_are_pending_and_admits_once_one_ends(
    upload_api: Call, registry: PartnerRegistry, tables: Any
) -> None:
    partner, key = registry.add("Acme", limits={"max_pending": 2})
    plans = [upload_api("POST", "/uploads", api_key=key, body=declare_body())[1] for _ in range(2)]
    status, body, headers = upload_api("POST", "/uploads", api_key=key, body=declare_body())
    assert (status, body["error"]["quota"], body["error"]["used"]) == (429, "max_pending", 2)
    assert headers["Retry-After"] == str(quotas.PENDING_RETRY_AFTER)
    # WHEN one of them ends (here: expired by the ledger's conditional write)
    ledger = Ledger(TABLE, tables, partners_table=PARTNERS_TABLE)
    assert ledger.expire(plans[0]["key"], datetime.now(UTC) + timedelta(hours=2)) is not None
    # THEN one more is admitted, and no more
    statuses = [upload_api("POST", "/uploads", api_key=key, body=declare_body())[0] for _ in "ab"]
    assert statuses == [201, 429]
    assert counter(tables, quotas.pending_key(partner.partner_id), "pending") == 2


def test_the_rate_counts_requests_in_one_second_windows(registry: PartnerRegistry) -> None:
    now = [NOON]
    clocked = PartnerRegistry(PARTNERS_TABLE, registry._ddb, clock=lambda: now[0])
    partner, _ = clocked.add("Acme", limits={"rate": 3})
    for _ in range(3):
        clocked.count_request(partner)
    with pytest.raises(QuotaExceededError) as refused:
        clocked.count_request(partner)
    assert (refused.value.quota, refused.value.limit, refused.value.used) == ("rate", 3, 3)
    assert refused.value.retry_after == 1
    # The next second is a new window.
    now[0] = NOON + timedelta(seconds=1)
    for _ in range(3):
        clocked.count_request(partner)
    rate = {use.quota: use for use in clocked.usage(partner.partner_id)}["rate"]
    assert (rate.used, rate.limit) == (3, 3)


def test_over_the_rate_any_route_answers_429_with_retry_after_one_second(
    upload_api: Call, registry: PartnerRegistry
) -> None:
    # GIVEN a rate of 1: the first request of a second passes, the next in it is refused.
    # Requests are sent until two fall into one second (a few at most: each takes ms).
    _, key = registry.add("Acme", limits={"rate": 1})
    answers = [upload_api("GET", "/uploads/up-aaaaaaaaaaaaaaaaaaaaaaaaaa", api_key=key)]
    while answers[-1][0] != 429:
        assert answers[-1][0] == 404, answers[-1]
        answers.append(upload_api("GET", "/uploads/up-aaaaaaaaaaaaaaaaaaaaaaaaaa", api_key=key))
    _, body, headers = answers[-1]
    assert headers["Retry-After"] == "1"
    assert_documented("/uploads/{upload_id}", "get", 429, body)
    assert (body["error"]["quota"], body["error"]["limit"], body["error"]["used"]) == ("rate", 1, 1)


def test_limits_not_set_are_the_defaults_and_update_changes_only_those_given(
    registry: PartnerRegistry,
) -> None:
    partner, _ = registry.add("Acme", limits={"rate": 7})
    assert partner.quotas == quotas.Quotas(rate=7)
    updated = registry.update(partner.partner_id, {"max_pending": 5, "daily_uploads": 9})
    assert updated.quotas == quotas.Quotas(rate=7, max_pending=5, daily_uploads=9)
    assert registry.get(partner.partner_id) == updated
    # The counters share the table; a partner list never shows them.
    registry.count_request(updated)
    assert [p.partner_id for p in registry.list()] == [partner.partner_id]


# --- the pending count comes back once, on each way an upload ends ---

KEY = "acme-1a2b/up-abcdefghijklmnopqrstuvwxyz/report.csv"
PARTNER = "acme-1a2b"
BODY = b"id,amount\n1,100\n"
LIMITS = quotas.Quotas(max_pending=5)


@pytest.fixture
def ledger(tables: Any) -> Ledger:
    return Ledger(TABLE, tables, partners_table=PARTNERS_TABLE)


def declare(ledger: Ledger, method: str = "PUT", expires_in: int = 900) -> None:
    ledger.declare(
        Declaration(
            key=KEY,
            bucket=BUCKET,
            upload_id=KEY.split("/")[1],
            partner_id=PARTNER,
            size=len(BODY),
            sha256=hashlib.sha256(BODY).hexdigest(),
            content_type="text/csv",
            method=method,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            multipart_upload_id="mpu-1" if method == "MULTIPART" else None,
        ),
        LIMITS,
    )


def pending(dynamodb: Any) -> int | None:
    return counter(dynamodb, quotas.pending_key(PARTNER), "pending")


def hold(dynamodb: Any) -> str | None:
    item = dynamodb.get_item(TableName=TABLE, Key={"s3_key": {"S": KEY}})["Item"]
    return item.get(quotas.HOLD_ATTRIBUTE, {}).get("S")


def event_of(s3: Any, body: bytes, name: str = "ObjectCreated:Put", seq: str = "0A") -> Any:
    if name.startswith("ObjectCreated"):
        put = s3.put_object(
            Bucket=BUCKET, Key=KEY, Body=body, ContentType="text/csv", ChecksumAlgorithm="SHA256"
        )
        version = put["VersionId"]
    else:
        version = s3.delete_object(Bucket=BUCKET, Key=KEY).get("VersionId")
    now = iso_utc(datetime.now(UTC))
    record = s3_record(KEY, sequencer=seq, event_name=name, version_id=version, event_time=now)
    return sqs_batch(notification(record))


@pytest.mark.parametrize(("body", "verdict"), [(BODY, "ACCEPTED"), (b"other", "REJECTED")])
def test_a_verdict_gives_the_pending_count_back_once_though_the_event_comes_twice(
    tables: Any, ledger: Ledger, invoke: Any, body: bytes, verdict: str
) -> None:
    declare(ledger)
    assert (pending(tables), hold(tables)) == (1, PARTNER)
    event = event_of(boto3.client("s3", region_name=REGION), body)
    for _ in range(2):  # S3 delivers at least once: the same event again
        assert invoke(event) == {"batchItemFailures": []}
    record = ledger.declaration(KEY)
    assert record is not None
    assert record.status == verdict
    assert (pending(tables), hold(tables)) == (0, None)


def test_an_expiry_gives_the_count_back_once_and_a_late_arrival_gives_nothing_more(
    tables: Any, ledger: Ledger, invoke: Any
) -> None:
    declare(ledger, expires_in=-60)
    assert ledger.expire(KEY, datetime.now(UTC)) is not None
    assert ledger.expire(KEY, datetime.now(UTC)) is None  # a second sweep: no longer PENDING
    assert (pending(tables), hold(tables)) == (0, None)
    # An upload that arrived after all is judged (REJECTED: late) without a second release.
    invoke(event_of(boto3.client("s3", region_name=REGION), BODY))
    record = ledger.declaration(KEY)
    assert record is not None
    assert record.status == "REJECTED"
    assert pending(tables) == 0


def test_an_abort_gives_the_count_back_once(tables: Any, ledger: Ledger) -> None:
    declare(ledger, method="MULTIPART")
    aborted = ledger.abort(KEY, datetime.now(UTC))
    assert aborted is not None
    assert aborted.status == "ABORTED"
    assert ledger.abort(KEY, datetime.now(UTC)) is None
    assert (pending(tables), hold(tables)) == (0, None)


def test_an_object_deleted_before_its_verdict_gives_the_count_back(
    tables: Any, ledger: Ledger, invoke: Any
) -> None:
    declare(ledger)
    s3 = boto3.client("s3", region_name=REGION)
    created = event_of(s3, BODY, seq="0A")
    removed = event_of(s3, b"", name="ObjectRemoved:DeleteMarkerCreated", seq="0B")
    for event in (removed, created, removed):  # the delete's event first, then both again
        invoke(event)
    item = ledger.get(KEY)
    assert item is not None
    assert item.status == "DELETED"
    assert (pending(tables), hold(tables)) == (0, None)


def test_an_upload_declared_before_quotas_closes_without_touching_a_counter(
    tables: Any, invoke: Any
) -> None:
    # GIVEN a declaration written as before quotas: no hold, no counter
    Ledger(TABLE, tables).declare(
        Declaration(
            key=KEY,
            bucket=BUCKET,
            upload_id=KEY.split("/")[1],
            partner_id=PARTNER,
            size=len(BODY),
            sha256=hashlib.sha256(BODY).hexdigest(),
            content_type="text/csv",
            method="PUT",
            expires_at=datetime.now(UTC) - timedelta(seconds=60),
        )
    )
    ledger = Ledger(TABLE, tables, partners_table=PARTNERS_TABLE)
    expired = ledger.expire(KEY, datetime.now(UTC))
    assert expired is not None
    assert expired.status == "EXPIRED"
    assert pending(tables) is None


# --- what AWS does and the emulator never does: a conflicting transaction ---


def conflicting(client: Any, times: int) -> list[int]:
    """Answer the client's next ``times`` TransactWriteItems as DynamoDB answers one that an
    ongoing transaction on the same item cancels ("TransactionConflict" among the
    CancellationReasons: DynamoDB API Reference, TransactWriteItems), through botocore's
    before-call hook; the calls seen, counted."""
    seen = [0]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        seen[0] += 1
        if seen[0] > times:
            return None
        error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
        reasons = [{"Code": "None"}, {"Code": "TransactionConflict"}, {"Code": "None"}]
        http = AWSResponse("https://dynamodb", 400, {}, None)
        return http, {"Error": error, "CancellationReasons": reasons, "ResponseMetadata": {}}

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", answer)
    return seen


def test_a_declaration_cancelled_by_a_conflicting_transaction_is_tried_again(
    tables: Any,
) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    seen = conflicting(client, times=2)
    ledger = Ledger(TABLE, client, partners_table=PARTNERS_TABLE, sleep=lambda _: None)
    declare(ledger)
    assert seen[0] == 3
    assert (pending(tables), hold(tables)) == (1, PARTNER)


def test_a_declaration_still_conflicting_after_its_tries_is_429_busy_and_writes_nothing(
    tables: Any,
) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    conflicting(client, times=100)
    ledger = Ledger(TABLE, client, partners_table=PARTNERS_TABLE, sleep=lambda _: None)
    with pytest.raises(QuotaBusyError) as busy:
        declare(ledger)
    assert (busy.value.status, busy.value.retry_after) == (429, 1)
    assert pending(tables) is None
    assert ledger_keys(tables) == []
