"""The whole upload API handler on Function URL 2.0 events, against emulated S3 and DynamoDB.

Most tests run in-process (moto's mock); the two that send the presigned requests over real
HTTP run against a ThreadedMotoServer on 127.0.0.1. Assertions are on the HTTP answer and on
the state left in the ledger and the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import moto.s3.models
import pytest
import yaml
from builders import REGION
from conftest import TABLE, FakeContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from upload_builders import (
    NO_KEY,
    PARTNERS_TABLE,
    UPLOAD_BUCKET,
    create_partners_table,
    create_upload_ledger,
    declaration,
    http_event,
)

from filegate.events import iso_utc
from filegate.ledger import Ledger, LedgerEntry, Status, UploadStatus
from filegate.local import patches
from filegate.parts import MAX_PART_COUNT
from filegate.storage import create_bucket_request
from filegate.uploads import api
from filegate.uploads.partners import Partner, PartnerRegistry

MiB = 1024 * 1024
SIGNED_PUT_HEADERS = (
    "content-length;content-type;host;x-amz-checksum-sha256;"
    "x-amz-sdk-checksum-algorithm;x-amz-server-side-encryption"
)
UPLOAD_ID = re.compile(r"up-[a-z2-7]{26}")

Call = Callable[..., tuple[int, dict[str, Any]]]


def call_api(method: str, path: str, **event: Any) -> tuple[int, dict[str, Any]]:
    response = api.lambda_handler(http_event(method, path, **event), FakeContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def upload_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERS_TABLE", PARTNERS_TABLE)
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOAD_BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "filegate-upload-api")


def create_resources() -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_upload_ledger(dynamodb, TABLE)
    create_partners_table(dynamodb)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=UPLOAD_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


@pytest.fixture
def upload_api(aws: None, upload_env: None) -> Iterator[Call]:
    create_resources()
    api.build_service.cache_clear()
    yield call_api
    api.build_service.cache_clear()


@pytest.fixture
def registry(upload_api: Call) -> PartnerRegistry:
    return PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def acme(registry: PartnerRegistry) -> tuple[Partner, str]:
    # These tests (the generated bodies above all) send requests faster than a partner's
    # default rate and leave declarations pending; the quotas have tests of their own
    # (test_upload_quotas.py).
    limits = {"rate": 100_000, "max_pending": 100_000}
    return registry.add(
        "Acme", max_size=200 * MiB, allowed_types=["text/*", "application/json"], limits=limits
    )


@pytest.fixture
def ledger(upload_api: Call) -> Ledger:
    return Ledger(TABLE, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def s3(upload_api: Call) -> Any:
    return boto3.client("s3", region_name=REGION)


def declare(call: Call, key: str, **body: Any) -> dict[str, Any]:
    status, plan = call("POST", "/uploads", api_key=key, body=declaration(**body))
    assert status == 201, plan
    return plan


def checksum(data: bytes) -> str:
    """The SHA-256 as S3's x-amz-checksum-sha256 carries it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def slices(plan: dict[str, Any], content: bytes) -> list[bytes]:
    """The plan's parts of ``content``."""
    size = plan["part_size"]
    return [content[offset : offset + size] for offset in range(0, len(content), size)]


def sign(call: Call, key: str, plan: dict[str, Any], content: bytes) -> list[dict[str, Any]]:
    """Every part's URL, signed for its SHA-256 (one page)."""
    wanted = [
        {"part_number": n, "checksum_sha256": checksum(part)}
        for n, part in enumerate(slices(plan, content), start=1)
    ]
    status, answer = call(
        "POST", f"/uploads/{plan['upload_id']}/parts", api_key=key, body={"parts": wanted}
    )
    assert status == 200, answer
    parts: list[dict[str, Any]] = answer["parts"]
    return parts


# --- POST /uploads ---


def test_a_small_upload_gets_a_presigned_put_with_every_header_bound(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger
) -> None:
    partner, key = acme

    response = api.lambda_handler(
        http_event("POST", "/uploads", api_key=key, body=declaration()), FakeContext()
    )
    plan = json.loads(response["body"])

    assert response["statusCode"] == 201
    assert response["headers"]["Location"] == f"/uploads/{plan['upload_id']}"
    assert UPLOAD_ID.fullmatch(plan["upload_id"])
    assert plan["key"] == f"{partner.partner_id}/{plan['upload_id']}/report.csv"
    assert (plan["method"], plan["status"]) == ("PUT", "PENDING")
    assert plan["headers"] == {
        "Content-Type": "text/csv",
        "Content-Length": "11",
        "x-amz-checksum-sha256": "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        "x-amz-sdk-checksum-algorithm": "SHA256",
        "x-amz-server-side-encryption": "AES256",
    }
    query = parse_qs(urlsplit(plan["url"]).query)
    assert query["X-Amz-SignedHeaders"] == [SIGNED_PUT_HEADERS]
    assert query["X-Amz-Expires"] == ["900"]


# Regions where botocore's default S3 client presigns with SigV2 (us-east-1, us-west-2,
# eu-west-1, ap-southeast-1) or on the global host (every region): S3 refuses SigV2 for buckets
# created after June 2020, and the global host answers 307 for up to a day after a bucket is
# created outside us-east-1, which a browser's CORS preflight does not follow.
SIGNING_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1", "eu-central-1")


@pytest.fixture
def regional_api(
    aws: None, upload_env: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Call]]:
    """The upload API in ``request.param``'s region, with its tables and bucket there."""
    region: str = request.param
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", str(MiB))
    dynamodb = boto3.client("dynamodb", region_name=region)
    create_upload_ledger(dynamodb, TABLE)
    create_partners_table(dynamodb)
    boto3.client("s3", region_name=region).create_bucket(
        **create_bucket_request(UPLOAD_BUCKET, region)
    )
    api.build_service.cache_clear()
    yield region, call_api
    api.build_service.cache_clear()


def assert_sigv4_regional(url: str, region: str) -> None:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc) == ("https", f"{UPLOAD_BUCKET}.s3.{region}.amazonaws.com")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].split("/")[2:4] == [region, "s3"]
    assert "AWSAccessKeyId" not in query


@pytest.mark.parametrize("regional_api", SIGNING_REGIONS, indirect=True)
def test_urls_are_sigv4_on_the_regional_virtual_hosted_endpoint_in_every_region(
    regional_api: tuple[str, Call],
) -> None:
    region, call = regional_api
    _, key = PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb", region_name=region)).add(
        "Acme"
    )

    put = declare(call, key)
    content = b"x" * (2 * MiB)
    multipart = declare(call, key, content=content, content_type="text/plain")

    assert_sigv4_regional(put["url"], region)
    for part in sign(call, key, multipart, content):
        assert_sigv4_regional(part["url"], region)


def test_the_declaration_is_written_pending_to_the_ledger(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger
) -> None:
    partner, key = acme

    plan = declare(upload_api, key)

    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert (record.key, record.status, record.partner_id) == (
        plan["key"],
        "PENDING",
        partner.partner_id,
    )
    assert (record.declared_size, record.declared_content_type) == (11, "text/csv")
    assert record.declared_sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert (record.bucket, record.expires_at, record.method) == (
        UPLOAD_BUCKET,
        plan["expires_at"],
        "PUT",
    )


def test_a_large_upload_gets_a_multipart_plan(
    upload_api: Call, acme: tuple[Partner, str], s3: Any
) -> None:
    _, key = acme

    plan = declare(upload_api, key, size=100 * MiB)

    assert plan["method"] == "MULTIPART"
    assert (plan["part_size"], plan["part_count"]) == (8 * MiB, 13)
    assert plan["checksum_algorithm"] == "SHA256"
    path = f"/uploads/{plan['upload_id']}"
    assert plan["sign_parts"] == {"method": "POST", "path": f"{path}/parts", "max_parts": 1000}
    assert plan["list_parts"] == {"method": "GET", "path": f"{path}/parts"}
    assert plan["complete"] == {"method": "POST", "path": f"{path}/complete"}
    open_uploads = s3.list_multipart_uploads(Bucket=UPLOAD_BUCKET).get("Uploads", [])
    assert [u["Key"] for u in open_uploads] == [plan["key"]]
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert (record.declared_part_size, record.declared_part_count) == (8 * MiB, 13)
    assert record.expected_checksum_sha256 is None  # known once the parts are listed


def test_the_largest_object_is_planned_in_10_000_parts_at_most_and_signed_in_pages(
    upload_api: Call, registry: PartnerRegistry
) -> None:
    # GIVEN a partner allowed S3's largest object (5 TiB)
    _, key = registry.add("Huge", max_size=5 * 1024**4, allowed_types=["application/*"])
    # WHEN it declares one, and asks for a page of part URLs (1,000, the most one answer holds)
    plan = declare(upload_api, key, size=5 * 1024**4, content_type="application/octet-stream")
    wanted = [{"part_number": n, "checksum_sha256": checksum(b"")} for n in range(1, 1_001)]
    response = api.lambda_handler(
        http_event(
            "POST", f"/uploads/{plan['upload_id']}/parts", api_key=key, body={"parts": wanted}
        ),
        FakeContext(),
    )
    # THEN the plan stays within S3's limits (10,000 parts of at most 5 GiB), and a page is well
    # under the function URL's 6 MB even with the ~1.6 KB session token each URL carries on AWS
    assert (plan["part_count"], plan["part_size"]) == (5_120, 1024 * MiB)
    assert "parts" not in plan
    page = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert len(page["parts"]) == 1_000
    assert len(response["body"]) + 1_600 * len(page["parts"]) < 6_000_000


def test_a_10_000_part_upload_completes_within_the_function_urls_limits(
    upload_api: Call, registry: PartnerRegistry, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a file planned in S3's most parts (10,000 of 8 MiB: 78 GiB), whose parts S3 holds.
    # 10,000 parts of S3's 5 MiB minimum are 49 GiB, more than a test can send: the emulator's
    # minimum part size (a constant of moto's, read at import) is lowered for this test only,
    # and monkeypatch puts it back after it. Each part is one byte then.
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    size = MAX_PART_COUNT * 8 * MiB
    _, key = registry.add("Many parts", max_size=size, allowed_types=["application/*"])
    plan = declare(upload_api, key, size=size, content_type="application/octet-stream")
    assert (plan["part_count"], plan["part_size"]) == (MAX_PART_COUNT, 8 * MiB)
    parts = send_parts(s3, plan, (n.to_bytes(2, "big") for n in range(1, MAX_PART_COUNT + 1)))
    body = {"parts": parts, "sha256": hashlib.sha256(b"the whole file").hexdigest()}

    # WHEN the client completes it, listing every part
    status, view = upload_api(
        "POST", f"/uploads/{plan['upload_id']}/complete", api_key=key, body=body
    )

    # THEN the request fits a function URL's 6 MB payload with room to spare, S3 assembled
    # the 10,000 parts, and the composite the ledger expects is the one S3 holds
    assert len(json.dumps(body)) < 6_000_000 / 4
    assert (status, view["status"]) == (200, "PENDING"), view
    stored = s3.get_object(Bucket=UPLOAD_BUCKET, Key=plan["key"], ChecksumMode="ENABLED")
    assert stored["ChecksumSHA256"].endswith(f"-{MAX_PART_COUNT}")
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert record.expected_checksum_sha256 == stored["ChecksumSHA256"]


def test_the_threshold_comes_from_the_environment(
    upload_api: Call, acme: tuple[Partner, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", "10")

    assert declare(upload_api, acme[1], size=10)["method"] == "PUT"
    assert declare(upload_api, acme[1], size=11)["method"] == "MULTIPART"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"filename": "../../etc/passwd"}, "filename"),
        ({"filename": "a/b.csv"}, "filename"),
        ({"filename": "a\\b.csv"}, "filename"),
        ({"filename": ".."}, "filename"),
        ({"filename": "bell\x07.csv"}, "filename"),
        ({"filename": "x" * 256}, "filename"),
        ({"filename": None}, "filename"),
        ({"size": -1}, "size"),
        ({"size": 0}, "size"),
        ({"size": True}, "size"),
        ({"size": "11"}, "size"),
        ({"size": None}, "size"),
        ({"sha256": "abc"}, "sha256"),
        ({"sha256": "z" * 64}, "sha256"),
        ({"sha256": None}, "sha256"),
        ({"content_type": "csv"}, "content_type"),
        ({"content_type": "text/csv; charset=utf-8"}, "content_type"),
        ({"content_type": None}, "content_type"),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    upload_api: Call, acme: tuple[Partner, str], change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**declaration(), **change}.items() if v is not None}

    status, answer = upload_api("POST", "/uploads", api_key=acme[1], body=body)

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert answer["error"]["field"] == field
    assert field in answer["error"]["message"]


@pytest.mark.parametrize("raw", ["{", "", "[1, 2", '{"filename": "a"', "null", "[]", "\ufeff{}"])
def test_malformed_json_is_400_naming_the_body(
    upload_api: Call, acme: tuple[Partner, str], raw: str
) -> None:
    status, answer = upload_api("POST", "/uploads", api_key=acme[1], raw_body=raw)

    assert status == 400
    assert answer["error"]["field"] == "body"


def test_undecodable_bytes_are_400(upload_api: Call, acme: tuple[Partner, str]) -> None:
    status, answer = upload_api("POST", "/uploads", api_key=acme[1], raw_body=b"\xff\xfe{")

    assert (status, answer["error"]["field"]) == (400, "body")


def test_too_large_is_413(upload_api: Call, acme: tuple[Partner, str]) -> None:
    status, answer = upload_api(
        "POST", "/uploads", api_key=acme[1], body=declaration(size=200 * MiB + 1)
    )

    assert status == 413
    assert answer["error"] == {
        "code": "too_large",
        "field": "size",
        "message": answer["error"]["message"],
    }


def test_a_type_the_partner_may_not_send_is_415(
    upload_api: Call, acme: tuple[Partner, str]
) -> None:
    status, answer = upload_api(
        "POST", "/uploads", api_key=acme[1], body=declaration(content_type="image/png")
    )

    assert status == 415
    assert (answer["error"]["code"], answer["error"]["field"]) == (
        "unsupported_type",
        "content_type",
    )


# --- authentication ---


@pytest.mark.parametrize("key", [NO_KEY, "", "fg_nobody-abcdef_secret", "garbage"])
def test_missing_or_unknown_keys_are_401(upload_api: Call, acme: Any, key: Any) -> None:
    status, answer = upload_api("POST", "/uploads", api_key=key, body=declaration())

    assert status == 401
    assert answer["error"]["code"] == "unauthorized"


def test_a_disabled_partner_is_403(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry
) -> None:
    registry.disable(acme[0].partner_id)

    status, answer = upload_api("POST", "/uploads", api_key=acme[1], body=declaration())

    assert (status, answer["error"]["code"]) == (403, "partner_disabled")


def test_a_rotated_key_stops_working_at_once(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry
) -> None:
    declare(upload_api, acme[1])  # the container is warm: nothing is cached per key
    new_key = registry.rotate_key(acme[0].partner_id)

    assert upload_api("POST", "/uploads", api_key=acme[1], body=declaration())[0] == 401
    assert upload_api("POST", "/uploads", api_key=new_key, body=declaration())[0] == 201


def test_authentication_comes_before_validation(upload_api: Call, acme: Any) -> None:
    assert upload_api("POST", "/uploads", raw_body="{")[0] == 401


# --- GET /uploads/{upload_id} ---


def test_a_partner_reads_its_own_upload(upload_api: Call, acme: tuple[Partner, str]) -> None:
    plan = declare(upload_api, acme[1])

    status, view = upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])

    assert status == 200
    assert view == {
        "upload_id": plan["upload_id"],
        "key": plan["key"],
        "status": "PENDING",
        "declared": {
            "size": 11,
            "sha256": hashlib.sha256(b"hello world").hexdigest(),
            "content_type": "text/csv",
            "method": "PUT",
        },
        "expires_at": plan["expires_at"],
        "updated_at": view["updated_at"],
    }


def test_another_partners_upload_is_not_found(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry
) -> None:
    plan = declare(upload_api, acme[1])
    _, other_key = registry.add("Globex")

    status, answer = upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=other_key)

    assert (status, answer["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize("upload_id", ["up-" + "a" * 26, "nonsense", "up-" + "A" * 26, "%2e%2e"])
def test_unknown_upload_ids_are_404(upload_api: Call, acme: Any, upload_id: str) -> None:
    assert upload_api("GET", f"/uploads/{upload_id}", api_key=acme[1])[0] == 404


def test_a_pending_upload_past_its_expiry_is_turned_expired(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger
) -> None:
    plan = declare(upload_api, acme[1])
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=TABLE,
        Key={"s3_key": {"S": plan["key"]}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00.000Z"}},
    )

    status, view = upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])

    assert (status, view["status"]) == (200, "EXPIRED")
    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    assert record.status == "EXPIRED"


def test_expire_does_not_touch_an_item_that_arrived(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger
) -> None:
    plan = declare(upload_api, acme[1])
    record = ledger.get_upload(plan["upload_id"])
    assert record is not None
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=TABLE,
        Key={"s3_key": {"S": plan["key"]}},
        UpdateExpression="SET processing_status = :s, expires_at = :past",
        ExpressionAttributeValues={
            ":s": {"S": "ACCEPTED"},
            ":past": {"S": "2020-01-01T00:00:00.000Z"},
        },
    )

    assert ledger.expire(plan["key"], datetime.now(UTC)) is None
    assert upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])[1]["status"] == (
        "ACCEPTED"
    )


# --- complete and abort ---


def upload_parts(s3: Any, plan: dict[str, Any], content: bytes) -> list[dict[str, Any]]:
    """Upload each planned part through boto3 (in-process moto cannot serve the URLs)."""
    return send_parts(s3, plan, slices(plan, content))


def send_parts(s3: Any, plan: dict[str, Any], bodies: Iterable[bytes]) -> list[dict[str, Any]]:
    """Upload these bodies as parts 1, 2... of the plan's multipart upload; the parts to list."""
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    parts = []
    for number, chunk in enumerate(bodies, start=1):
        response = s3.upload_part(
            Bucket=UPLOAD_BUCKET,
            Key=plan["key"],
            UploadId=record.multipart_upload_id,
            PartNumber=number,
            Body=chunk,
            ChecksumSHA256=checksum(chunk),
        )
        parts.append(
            {"part_number": number, "etag": response["ETag"], "checksum_sha256": checksum(chunk)}
        )
    return parts


def ledger_of() -> Ledger:
    return Ledger(TABLE, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", str(MiB))


def test_complete_assembles_the_object(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    content = bytes(range(256)) * (9 * MiB // 256)
    plan = declare(upload_api, acme[1], content=content)
    parts = upload_parts(s3, plan, content)

    status, view = upload_api(
        "POST", f"/uploads/{plan['upload_id']}/complete", api_key=acme[1], body={"parts": parts}
    )

    assert (status, view["status"]) == (200, "PENDING")  # the ingestion judges it next
    head = s3.head_object(Bucket=UPLOAD_BUCKET, Key=plan["key"])
    assert (head["ContentLength"], head["ContentType"]) == (len(content), "text/csv")
    assert head["ServerSideEncryption"] == "AES256"
    # S3's composite SHA-256 over the parts is what the ledger expects the object to hold
    # (plain in-process moto: its GetObject qualifies the composite; its HeadObject does so
    # with the emulator's seam, test_emulator_checksums)
    stored = s3.get_object(Bucket=UPLOAD_BUCKET, Key=plan["key"], ChecksumMode="ENABLED")
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert record.expected_checksum_sha256 == stored["ChecksumSHA256"]
    assert stored["ChecksumSHA256"].endswith("-2")


def completed_once(call: Call, api_key: str, s3: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A 9 MiB multipart upload declared, its parts sent and completed once: the plan, the
    completion's path and its body, to send again."""
    content = bytes(range(256)) * (9 * MiB // 256)
    plan = declare(call, api_key, content=content)
    complete = f"/uploads/{plan['upload_id']}/complete"
    body = {"parts": upload_parts(s3, plan, content)}
    assert call("POST", complete, api_key=api_key, body=body)[0] == 200
    return plan, complete, body


def test_a_completion_sent_again_after_the_upload_arrived_answers_its_verdict(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    # GIVEN a multipart upload completed and judged (S3 finished the first completion while
    # its answer was lost: a function timeout, a dropped connection)
    plan, complete, body = completed_once(upload_api, acme[1], s3)
    arrival = LedgerEntry(
        key=plan["key"],
        bucket=UPLOAD_BUCKET,
        status=Status.ACCEPTED,
        event_name="ObjectCreated:CompleteMultipartUpload",
        event_time=iso_utc(datetime.now(UTC)),
        size=9 * MiB,
    )
    ledger_of().record(arrival)

    # WHEN the client sends the completion again
    status, view = upload_api("POST", complete, api_key=acme[1], body=body)

    # THEN the answer is the upload as it stands, not a conflict
    assert (status, view["status"]) == (200, "ACCEPTED")


@pytest.mark.parametrize("s3_answers", ["the object", "NoSuchUpload"])
def test_a_completion_sent_again_before_its_object_was_judged_answers_pending(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None, s3_answers: str
) -> None:
    # GIVEN a multipart upload whose completion S3 finished while its answer was lost, and
    # whose object's event has not been judged yet
    plan, complete, body = completed_once(upload_api, acme[1], s3)
    if s3_answers == "NoSuchUpload":
        # S3 answers a completion sent again with the object (as moto does while the key holds
        # it), or NoSuchUpload, which it documents as "aborted or completed": the emulator's
        # seam answers that once the key no longer holds the object
        s3.delete_object(Bucket=UPLOAD_BUCKET, Key=plan["key"])

    # WHEN the client sends the same completion again
    with patches.applied():
        status, view = upload_api("POST", complete, api_key=acme[1], body=body)

    # THEN it is told the upload waits for its verdict, not that it conflicts
    assert (status, view["status"]) == (200, "PENDING"), view
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert record.status == UploadStatus.PENDING


def test_a_completion_of_an_upload_s3_no_longer_holds_is_a_conflict(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    # GIVEN a multipart upload never completed, whose S3 upload is gone (aborted outside
    # filegate: the bucket's lifecycle rule, someone with credentials)
    content = bytes(range(256)) * (9 * MiB // 256)
    plan = declare(upload_api, acme[1], content=content)
    body = {"parts": upload_parts(s3, plan, content)}
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    s3.abort_multipart_upload(
        Bucket=UPLOAD_BUCKET, Key=plan["key"], UploadId=record.multipart_upload_id
    )

    # WHEN the client completes it (S3 answers NoSuchUpload, as the emulator does)
    with patches.applied():
        status, answer = upload_api(
            "POST", f"/uploads/{plan['upload_id']}/complete", api_key=acme[1], body=body
        )

    # THEN the answer is a conflict naming S3, and no object exists
    assert status == 409, answer
    assert "no longer open in S3" in answer["error"]["message"]
    assert s3.list_objects_v2(Bucket=UPLOAD_BUCKET, Prefix=plan["key"]).get("KeyCount") == 0


def declare_without_sha256(call: Call, key: str, content: bytes) -> dict[str, Any]:
    body = {k: v for k, v in declaration(content=content).items() if k != "sha256"}
    status, plan = call("POST", "/uploads", api_key=key, body=body)
    assert status == 201, plan
    return plan


def test_a_multipart_upload_may_give_its_sha256_at_completion_recorded_before_s3_completes(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    # GIVEN a multipart upload declared without the whole file's SHA-256
    content = bytes(range(256)) * (9 * MiB // 256)
    plan = declare_without_sha256(upload_api, acme[1], content)
    assert plan["method"] == "MULTIPART"
    status, view = upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])
    assert (status, view["declared"]["sha256"]) == (200, None)
    parts = upload_parts(s3, plan, content)
    complete = f"/uploads/{plan['upload_id']}/complete"

    # WHEN it is completed without it, THEN 400 naming sha256, and the upload stays open
    status, answer = upload_api("POST", complete, api_key=acme[1], body={"parts": parts})
    assert (status, answer["error"]["field"]) == (400, "sha256")
    assert "declared without" in answer["error"]["message"]
    assert s3.list_objects_v2(Bucket=UPLOAD_BUCKET).get("KeyCount") == 0

    # WHEN it is completed with it, THEN the ledger holds it as the declared SHA-256, beside
    # the composite S3 holds, and the object exists
    sha256 = hashlib.sha256(content).hexdigest()
    body = {"parts": parts, "sha256": sha256}
    status, view = upload_api("POST", complete, api_key=acme[1], body=body)
    assert (status, view["declared"]["sha256"]) == (200, sha256)
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert record.declared_sha256 == sha256
    stored = s3.get_object(Bucket=UPLOAD_BUCKET, Key=plan["key"], ChecksumMode="ENABLED")
    assert record.expected_checksum_sha256 == stored["ChecksumSHA256"]


def test_a_completion_whose_sha256_differs_from_the_declared_one_completes_and_records_both(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    content = bytes(range(256)) * (9 * MiB // 256)
    plan = declare(upload_api, acme[1], content=content)  # with its SHA-256 up front
    parts = upload_parts(s3, plan, content)
    complete = f"/uploads/{plan['upload_id']}/complete"

    # the client read other bytes than the declared file's (the parts are those bytes)
    sent = hashlib.sha256(b"another file").hexdigest()
    status, view = upload_api(
        "POST", complete, api_key=acme[1], body={"parts": parts, "sha256": sent}
    )

    # completed (the verdict, REJECTED naming both, is the ingestion's: test_ingest_verdict)
    assert (status, view["status"]) == (200, "PENDING")
    assert s3.list_objects_v2(Bucket=UPLOAD_BUCKET).get("KeyCount") == 1
    record = ledger_of().get_upload(plan["upload_id"])
    assert record is not None
    assert (record.declared_sha256, record.sent_sha256) == (
        hashlib.sha256(content).hexdigest(),
        sent,
    )


def test_a_single_put_upload_must_declare_its_sha256(
    upload_api: Call, acme: tuple[Partner, str], ledger: Ledger
) -> None:
    body = {k: v for k, v in declaration().items() if k != "sha256"}

    status, answer = upload_api("POST", "/uploads", api_key=acme[1], body=body)

    assert (status, answer["error"]["field"]) == (400, "sha256")
    assert "single PUT" in answer["error"]["message"] or "one PUT" in answer["error"]["message"]
    assert list(ledger.scan()) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "parts"),
        ({"parts": [{"part_number": 1}]}, "parts[0].etag"),
        ({"parts": [{"part_number": 1, "etag": '"0123"'}]}, "parts[0].checksum_sha256"),
        (  # S3 says InvalidPart
            {"parts": [{"part_number": 1, "etag": '"0123"', "checksum_sha256": checksum(b"")}]},
            "parts",
        ),
    ],
)
def test_complete_with_bad_parts_is_400(
    upload_api: Call,
    acme: tuple[Partner, str],
    small_threshold: None,
    body: dict[str, Any],
    field: str,
) -> None:
    plan = declare(upload_api, acme[1], size=2 * MiB)

    status, answer = upload_api(
        "POST", f"/uploads/{plan['upload_id']}/complete", api_key=acme[1], body=body
    )

    assert (status, answer["error"]["field"]) == (400, field)


def test_a_single_put_upload_cannot_be_completed(
    upload_api: Call, acme: tuple[Partner, str]
) -> None:
    plan = declare(upload_api, acme[1])
    body = {"parts": [{"part_number": 1, "etag": "x"}]}

    status, answer = upload_api(
        "POST", f"/uploads/{plan['upload_id']}/complete", api_key=acme[1], body=body
    )

    assert (status, answer["error"]["code"]) == (409, "conflict")


def test_a_single_put_upload_given_up_is_aborted_and_only_once(
    upload_api: Call, acme: tuple[Partner, str]
) -> None:
    plan = declare(upload_api, acme[1])
    abort = f"/uploads/{plan['upload_id']}/abort"

    status, view = upload_api("POST", abort, api_key=acme[1], body={})

    assert (status, view["status"]) == (200, "ABORTED")
    assert "reason" not in view
    assert upload_api("POST", abort, api_key=acme[1])[0] == 409


def test_abort_ends_the_multipart_upload_and_the_ledger_says_aborted(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=2 * MiB)

    status, view = upload_api("POST", f"/uploads/{plan['upload_id']}/abort", api_key=acme[1])

    assert (status, view["status"]) == (200, "ABORTED")
    assert s3.list_multipart_uploads(Bucket=UPLOAD_BUCKET).get("Uploads", []) == []
    assert upload_api("POST", f"/uploads/{plan['upload_id']}/abort", api_key=acme[1])[0] == 409


def test_a_put_whose_bytes_s3_refused_ends_rejected_naming_the_declared_sha256(
    upload_api: Call, acme: tuple[Partner, str], s3: Any
) -> None:
    content = b"the declared file"
    plan = declare(upload_api, acme[1], content=content)

    status, view = upload_api(
        "POST",
        f"/uploads/{plan['upload_id']}/abort",
        api_key=acme[1],
        body={"s3_error": "BadDigest"},
    )

    assert (status, view["status"]) == (200, "REJECTED")
    declared = hashlib.sha256(content).hexdigest()
    assert view["reason"].startswith(
        f"S3 refused the bytes sent as not matching the declared sha256 {declared} (BadDigest,"
    )
    assert "size" not in view
    assert "checksum" not in view
    assert s3.list_objects_v2(Bucket=UPLOAD_BUCKET).get("KeyCount") == 0


def test_a_multipart_part_s3_refused_ends_rejected_naming_the_part_and_aborted_in_s3(
    upload_api: Call, acme: tuple[Partner, str], s3: Any, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=9 * MiB)

    status, view = upload_api(
        "POST",
        f"/uploads/{plan['upload_id']}/abort",
        api_key=acme[1],
        body={"s3_error": "BadDigest", "part_number": 2},
    )

    assert (status, view["status"]) == (200, "REJECTED")
    assert view["reason"].startswith("S3 refused the bytes sent for part 2 as not matching")
    assert s3.list_multipart_uploads(Bucket=UPLOAD_BUCKET).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("body", "multipart", "field"),
    [
        ({"s3_error": "NoSuchKey"}, False, "s3_error"),
        ({"s3_error": "BadDigest", "part_number": 1}, False, "part_number"),
        ({"s3_error": "BadDigest"}, True, "part_number"),
        ({"s3_error": "BadDigest", "part_number": 3}, True, "part_number"),
        ({"s3_error": "BadDigest", "part_number": "2"}, True, "part_number"),
        ([], True, "body"),
    ],
)
def test_a_bad_abort_body_is_400_naming_the_field_and_changes_nothing(
    upload_api: Call,
    acme: tuple[Partner, str],
    s3: Any,
    small_threshold: None,
    body: Any,
    multipart: bool,
    field: str,
) -> None:
    plan = declare(upload_api, acme[1], size=9 * MiB if multipart else 9)

    status, answer = upload_api(
        "POST", f"/uploads/{plan['upload_id']}/abort", api_key=acme[1], body=body
    )

    assert (status, answer["error"]["field"]) == (400, field)
    view = upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])[1]
    assert view["status"] == "PENDING"
    open_uploads = s3.list_multipart_uploads(Bucket=UPLOAD_BUCKET).get("Uploads", [])
    assert len(open_uploads) == (1 if multipart else 0)


def test_another_partner_cannot_complete_or_abort(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry, small_threshold: None
) -> None:
    plan = declare(upload_api, acme[1], size=2 * MiB)
    _, other_key = registry.add("Globex")

    assert upload_api("POST", f"/uploads/{plan['upload_id']}/abort", api_key=other_key)[0] == 404


# --- the error contract ---


def test_an_unknown_route_is_a_json_404(upload_api: Call, acme: Any) -> None:
    status, answer = upload_api("DELETE", "/uploads", api_key=acme[1])

    assert (status, answer["error"]["code"]) == (404, "not_found")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the Lambda's JSON logger writes (its handler holds the stdout of import time)."""
    handler = api.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def test_an_unexpected_failure_is_a_generic_500_and_is_logged(
    upload_api: Call, acme: tuple[Partner, str], logs: io.StringIO
) -> None:
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE)

    status, answer = upload_api("POST", "/uploads", api_key=acme[1], body=declaration())

    assert (status, answer["error"]["code"]) == (500, "internal_error")
    assert TABLE not in answer["error"]["message"]
    assert "LedgerError" in logs.getvalue()


def test_keys_and_presigned_urls_are_never_logged(
    upload_api: Call, acme: tuple[Partner, str], logs: io.StringIO
) -> None:
    plan = declare(upload_api, acme[1])
    upload_api("GET", f"/uploads/{plan['upload_id']}", api_key=acme[1])
    upload_api("POST", "/uploads", api_key=acme[1] + "x", body=declaration())

    logged = logs.getvalue()
    assert "upload declared" in logged
    assert acme[1] not in logged
    assert "X-Amz-Signature" not in logged
    assert urlsplit(plan["url"]).query not in logged


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.text(max_size=260) | json_values,
        "size": st.integers(min_value=-5, max_value=300 * MiB) | json_values,
        "sha256": st.from_regex(r"[0-9a-f]{64}", fullmatch=True) | json_values,
        "content_type": st.sampled_from(["text/csv", "image/png", "text/plain"]) | json_values,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=bodies | json_values, raw=st.none() | st.binary(max_size=40))
def test_generated_bodies_never_get_a_5xx(
    upload_api: Call, acme: tuple[Partner, str], document: Any, raw: bytes | None
) -> None:
    event: dict[str, Any] = {"raw_body": raw} if raw is not None else {"body": document}

    status, answer = upload_api("POST", "/uploads", api_key=acme[1], **event)

    assert status in (201, 400, 413, 415)
    if status != 201:
        assert answer["error"]["code"]
        assert answer["error"]["message"]


# --- over real HTTP: the presigned requests themselves ---


@pytest.fixture
def served_api(upload_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", str(MiB))
    boto3.setup_default_session()
    create_resources()
    api.build_service.cache_clear()
    try:
        yield call_api
    finally:
        api.build_service.cache_clear()
        # The server keeps its state in this process's moto backends: leave them empty.
        send("POST", f"{endpoint}/moto-api/reset", {}, b"")
        server.stop()


def send(method: str, url: str, headers: dict[str, str], body: bytes) -> http.client.HTTPResponse:
    """One request with exactly these headers (urllib would add a form Content-Type)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_the_presigned_put_stores_the_object_as_declared(served_api: Call) -> None:
    _, key = PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb")).add("Acme")
    content = b"id,amount\n1,10\n"
    plan = declare(served_api, key, content=content)

    response = send("PUT", plan["url"], plan["headers"], content)

    assert response.status == 200
    head = boto3.client("s3").head_object(
        Bucket=UPLOAD_BUCKET, Key=plan["key"], ChecksumMode="ENABLED"
    )
    assert (head["ContentLength"], head["ContentType"]) == (len(content), "text/csv")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ChecksumSHA256"] == plan["headers"]["x-amz-checksum-sha256"]


def test_a_multipart_upload_through_the_part_urls_completes(served_api: Call) -> None:
    _, key = PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb")).add("Acme")
    content = b"0123456789abcdef" * (9 * MiB // 16)
    plan = declare(served_api, key, content=content, content_type="application/octet-stream")

    parts = []
    for part in sign(served_api, key, plan, content):
        chunk = content[part["offset"] : part["offset"] + part["size"]]
        response = send("PUT", part["url"], part["headers"], chunk)
        assert response.status == 200
        parts.append(
            {
                "part_number": part["part_number"],
                "etag": response.headers["ETag"],
                "checksum_sha256": checksum(chunk),
            }
        )
    status, _ = served_api(
        "POST", f"/uploads/{plan['upload_id']}/complete", api_key=key, body={"parts": parts}
    )

    assert status == 200
    stored = boto3.client("s3").get_object(Bucket=UPLOAD_BUCKET, Key=plan["key"])["Body"].read()
    assert stored == content


# --- the answers match docs/openapi.yaml ---

SPEC = yaml.safe_load((Path(__file__).parents[2] / "docs" / "openapi.yaml").read_text())


def assert_documented(path: str, method: str, status: int, body: dict[str, Any]) -> None:
    """The body validates against the spec's schema for that operation and status."""
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema = response["content"]["application/json"]["schema"]
    OAS31Validator({**schema, "components": SPEC["components"]}).validate(body)


def test_the_spec_is_valid_openapi() -> None:
    validate_spec(SPEC)


def test_every_answer_matches_the_spec(
    upload_api: Call, acme: tuple[Partner, str], registry: PartnerRegistry, small_threshold: None
) -> None:
    key = acme[1]
    one = "/uploads/{upload_id}"
    seen: list[tuple[str, str, int, dict[str, Any]]] = []

    def check(path: str, method: str, concrete: str, **event: Any) -> dict[str, Any]:
        status, body = upload_api(method.upper(), concrete, **event)
        seen.append((path, method, status, body))
        assert_documented(path, method, status, body)
        return body

    put = check("/uploads", "post", "/uploads", api_key=key, body=declaration())
    multi = check("/uploads", "post", "/uploads", api_key=key, body=declaration(size=3 * MiB))
    check("/uploads", "post", "/uploads", api_key=key, raw_body="{")
    check("/uploads", "post", "/uploads", api_key=key, body=declaration(size=300 * MiB))
    check("/uploads", "post", "/uploads", api_key=key, body=declaration(content_type="a/b"))
    check("/uploads", "post", "/uploads", body=declaration())
    check(one, "get", f"/uploads/{put['upload_id']}", api_key=key)
    check(one, "get", "/uploads/up-unknown", api_key=key)
    parts = f"/uploads/{multi['upload_id']}/parts"
    wanted = {"parts": [{"part_number": 1, "checksum_sha256": checksum(b"")}]}
    check(one + "/parts", "post", parts, api_key=key, body=wanted)
    check(one + "/parts", "post", parts, api_key=key, body={"parts": [1]})
    check(one + "/parts", "get", parts, api_key=key)
    done = f"/uploads/{multi['upload_id']}/complete"
    check(one + "/complete", "post", done, api_key=key, body={"parts": []})
    check(one + "/complete", "post", f"/uploads/{put['upload_id']}/complete", api_key=key)
    check(one + "/abort", "post", f"/uploads/{multi['upload_id']}/abort", api_key=key)
    registry.disable(acme[0].partner_id)
    check(one, "get", f"/uploads/{put['upload_id']}", api_key=key)

    statuses = [status for *_, status, _ in seen]
    assert statuses == [201, 201, 400, 413, 415, 401, 200, 404, 200, 400, 200, 400, 409, 200, 403]


# --- URLs never outlive the credentials that sign them ---


def test_urls_and_the_declaration_expire_with_the_signing_credentials(
    aws: None, upload_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN signing credentials that botocore knows expire in 8 minutes (as temporary
    # credentials from a container endpoint or AWS_CREDENTIAL_EXPIRATION do), with URLs
    # configured for 15 minutes
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=8)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", ends.isoformat())
    boto3.setup_default_session()
    create_resources()
    api.build_service.cache_clear()
    _, key = PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb")).add("Acme")

    # WHEN a partner declares an upload
    plan = declare(call_api, key)
    api.build_service.cache_clear()

    # THEN the URL says it expires with the credentials, and so does the declaration
    expires_in = int(parse_qs(urlsplit(plan["url"]).query)["X-Amz-Expires"][0])
    assert 0 < expires_in <= 8 * 60
    assert datetime.fromisoformat(plan["expires_at"]) <= ends
