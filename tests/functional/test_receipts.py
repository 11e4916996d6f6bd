"""Signed receipts (issue 12, item 3): the upload API's receipt route, against emulated
DynamoDB, S3 and KMS (an ECC_NIST_P256 SIGN_VERIFY key), and `filegate receipt verify`.

A receipt is checked two ways: KMS's own Verify, and offline with the public key (the
``cryptography`` library). Both accept what the API signed, and both refuse a receipt whose
payload or signature changed by one byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from builders import REGION
from conftest import TABLE, FakeContext
from openapi_schema_validator import OAS31Validator
from upload_builders import (
    PARTNERS_TABLE,
    UPLOAD_BUCKET,
    create_partners_table,
    create_upload_ledger,
    declaration,
    http_event,
)

from filegate.events import iso_utc
from filegate.ledger import Ledger, LedgerEntry, Status
from filegate.receipt_check import check, load_public_key
from filegate.receipts import Receipt, canonical_json, parse_receipt
from filegate.signing import ReceiptKey
from filegate.uploads import api
from filegate.uploads.partners import Partner, PartnerRegistry

CONTENT = b"id,amount\n1,100\n"
ARRIVED = "2026-12-06T23:59:58.123Z"


def call_api(method: str, path: str, **event: Any) -> tuple[int, dict[str, Any]]:
    response = api.lambda_handler(http_event(method, path, **event), FakeContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def receipt_key_arn(aws: None) -> str:
    key = boto3.client("kms", region_name=REGION).create_key(
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="receipts"
    )
    return str(key["KeyMetadata"]["Arn"])


@pytest.fixture
def upload_api(receipt_key_arn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PARTNERS_TABLE", PARTNERS_TABLE)
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOAD_BUCKET)
    monkeypatch.setenv("RECEIPT_KEY_ID", receipt_key_arn)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_upload_ledger(dynamodb, TABLE)
    create_partners_table(dynamodb)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=UPLOAD_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    api.build_service.cache_clear()
    yield
    api.build_service.cache_clear()


@pytest.fixture
def partners(upload_api: None) -> PartnerRegistry:
    return PartnerRegistry(PARTNERS_TABLE, boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def acme(partners: PartnerRegistry) -> tuple[Partner, str]:
    return partners.add("Acme", max_size=1024 * 1024, allowed_types=["text/*"])


def declare(api_key: str) -> dict[str, Any]:
    status, plan = call_api("POST", "/uploads", api_key=api_key, body=declaration(CONTENT))
    assert status == 201, plan
    return plan


def accept(plan: dict[str, Any]) -> None:
    """The ingestion's ACCEPTED write, as it records an object that arrived as declared."""
    Ledger(TABLE, boto3.client("dynamodb", region_name=REGION)).record(
        LedgerEntry(
            key=plan["key"],
            bucket=UPLOAD_BUCKET,
            status=Status.ACCEPTED,
            event_name="ObjectCreated:Put",
            event_time=ARRIVED,
            sequencer="0A",
            size=len(CONTENT),
            content_type="text/csv",
            etag='"e"',
            checksum_sha256=base64.b64encode(hashlib.sha256(CONTENT).digest()).decode(),
            checksum_type="FULL_OBJECT",
            checksum_part_count=1,
        )
    )


@pytest.fixture
def accepted(acme: tuple[Partner, str]) -> dict[str, Any]:
    plan = declare(acme[1])
    accept(plan)
    return plan


def kms_key(arn: str) -> ReceiptKey:
    return ReceiptKey(boto3.client("kms", region_name=REGION), arn)


def offline(receipt: Receipt, arn: str) -> bool:
    public = kms_key(arn).public_key()
    return check(receipt, load_public_key(public.der, "test"), public.key_id).valid


def flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- the route ---


def test_an_accepted_upload_has_a_receipt_signed_by_the_stack_key(
    accepted: dict[str, Any], acme: tuple[Partner, str], receipt_key_arn: str
) -> None:
    status, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])

    assert status == 200, body
    assert set(body) == {"payload", "signature", "key_id", "signing_algorithm"}
    assert (body["key_id"], body["signing_algorithm"]) == (receipt_key_arn, "ECDSA_SHA_256")
    receipt = parse_receipt(json.dumps(body))
    assert kms_key(receipt_key_arn).verify(receipt) is True
    assert offline(receipt, receipt_key_arn) is True


def test_the_payload_is_the_canonical_json_of_what_was_accepted(
    accepted: dict[str, Any], acme: tuple[Partner, str]
) -> None:
    record = Ledger(TABLE, boto3.client("dynamodb", region_name=REGION)).get_upload(
        accepted["upload_id"]
    )
    assert record is not None
    sha256 = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()

    _, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])
    payload = base64.b64decode(body["payload"])

    statement = json.loads(payload)
    assert payload == canonical_json(statement)  # sorted keys, no whitespace
    assert statement == {
        "receipt_version": 1,
        "upload_id": accepted["upload_id"],
        "partner_id": acme[0].partner_id,
        "bucket": UPLOAD_BUCKET,
        "key": accepted["key"],
        "status": "ACCEPTED",
        "declared": {
            "size": len(CONTENT),
            "content_type": "text/csv",
            "method": "PUT",
            "part_count": None,
            "checksum": {
                "algorithm": "SHA256",
                "type": "FULL_OBJECT",
                "value": sha256,
                "part_count": None,
            },
        },
        "verified": {
            "size": len(CONTENT),
            "content_type": "text/csv",
            "checksum": {
                "algorithm": "SHA256",
                "type": "FULL_OBJECT",
                "value": sha256,
                "part_count": 1,
            },
        },
        "arrived_at": ARRIVED,
        "verdict_at": record.updated_at,
    }


def test_a_multipart_receipt_states_the_plan_and_s3s_composite_checksum(
    acme: tuple[Partner, str], receipt_key_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTIPART_THRESHOLD_BYTES", "8")
    api.build_service.cache_clear()
    plan = declare(acme[1])
    assert plan["method"] == "MULTIPART"
    composite = base64.b64encode(hashlib.sha256(b"part digests").digest()).decode() + "-1"
    ledger = Ledger(TABLE, boto3.client("dynamodb", region_name=REGION))
    ledger.record(
        LedgerEntry(
            key=plan["key"],
            bucket=UPLOAD_BUCKET,
            status=Status.ACCEPTED,
            event_name="ObjectCreated:CompleteMultipartUpload",
            event_time=ARRIVED,
            sequencer="0B",
            size=len(CONTENT),
            content_type="text/csv",
            etag='"e-1"',
            checksum_sha256=composite,
            checksum_type="COMPOSITE",
            checksum_part_count=1,
        )
    )

    status, body = call_api("GET", f"/uploads/{plan['upload_id']}/receipt", api_key=acme[1])

    assert status == 200, body
    statement = json.loads(base64.b64decode(body["payload"]))
    assert (statement["declared"]["method"], statement["declared"]["part_count"]) == (
        "MULTIPART",
        plan["part_count"],
    )
    assert statement["declared"]["checksum"]["type"] == "FULL_OBJECT"
    assert statement["verified"]["checksum"] == {
        "algorithm": "SHA256",
        "type": "COMPOSITE",
        "value": composite,
        "part_count": 1,
    }
    assert offline(parse_receipt(json.dumps(body)), receipt_key_arn)


def test_every_request_signs_the_same_payload(
    accepted: dict[str, Any], acme: tuple[Partner, str]
) -> None:
    path = f"/uploads/{accepted['upload_id']}/receipt"

    first, second = (call_api("GET", path, api_key=acme[1])[1] for _ in range(2))

    assert first["payload"] == second["payload"]


def test_a_pending_upload_has_no_receipt_yet(acme: tuple[Partner, str]) -> None:
    plan = declare(acme[1])

    status, body = call_api("GET", f"/uploads/{plan['upload_id']}/receipt", api_key=acme[1])

    assert status == 409
    assert body["error"]["code"] == "conflict"
    assert "is PENDING" in body["error"]["message"]


def test_an_unknown_upload_and_another_partners_are_not_found(
    accepted: dict[str, Any], partners: PartnerRegistry, acme: tuple[Partner, str]
) -> None:
    _, other_key = partners.add("Globex", max_size=1024, allowed_types=["text/*"])

    unknown = call_api("GET", "/uploads/up-aaaaaaaaaaaaaaaaaaaaaaaaaa/receipt", api_key=acme[1])
    foreign = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=other_key)

    for status, body in (unknown, foreign):
        assert status == 404
        assert body["error"]["code"] == "not_found"


def test_the_receipt_needs_the_partners_key(accepted: dict[str, Any]) -> None:
    status, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt")

    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_a_stack_without_a_receipt_key_says_so(
    accepted: dict[str, Any], acme: tuple[Partner, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECEIPT_KEY_ID")
    api.build_service.cache_clear()

    status, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])

    assert status == 503
    assert "RECEIPT_KEY_ID" in body["error"]["message"]


def test_the_public_key_route_gives_the_pem_that_checks_receipts(
    accepted: dict[str, Any], acme: tuple[Partner, str], receipt_key_arn: str
) -> None:
    _, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])

    status, key = call_api("GET", "/receipts/public-key", api_key=acme[1])

    assert status == 200
    assert key["key_id"] == receipt_key_arn
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----\n")
    public = load_public_key(key["public_key_pem"].encode(), "the API's PEM")
    assert check(parse_receipt(json.dumps(body)), public, key["key_id"]).valid


SPEC = yaml.safe_load((Path(__file__).parents[2] / "docs" / "openapi.yaml").read_text())


def assert_documented(path: str, status: int, body: dict[str, Any]) -> None:
    response = SPEC["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema = response["content"]["application/json"]["schema"]
    OAS31Validator({**schema, "components": SPEC["components"]}).validate(body)


def test_every_receipt_answer_matches_the_spec(
    accepted: dict[str, Any], acme: tuple[Partner, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one = "/uploads/{upload_id}/receipt"
    pending = declare(acme[1])["upload_id"]
    answers = [
        (one, call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])),
        (one, call_api("GET", f"/uploads/{pending}/receipt", api_key=acme[1])),
        (one, call_api("GET", "/uploads/up-unknown/receipt", api_key=acme[1])),
        (one, call_api("GET", f"/uploads/{pending}/receipt")),
        ("/receipts/public-key", call_api("GET", "/receipts/public-key", api_key=acme[1])),
    ]
    monkeypatch.delenv("RECEIPT_KEY_ID")
    api.build_service.cache_clear()
    answers.append(
        (one, call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1]))
    )

    for path, (status, body) in answers:
        assert_documented(path, status, body)
    assert [status for _, (status, _) in answers] == [200, 409, 404, 401, 200, 503]


# --- tampering: KMS Verify and the offline check agree ---


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_a_changed_byte_is_refused_by_kms_and_offline(
    accepted: dict[str, Any], acme: tuple[Partner, str], receipt_key_arn: str, part: str
) -> None:
    _, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])
    receipt = parse_receipt(json.dumps(body))
    original = getattr(receipt, part)

    for index in (0, len(original) // 2, len(original) - 1):
        changed = Receipt(**{**receipt.__dict__, part: flipped(original, index)})
        assert kms_key(receipt_key_arn).verify(changed) is False, (part, index)
        assert offline(changed, receipt_key_arn) is False, (part, index)


def test_a_receipt_of_another_key_is_refused_offline(
    accepted: dict[str, Any], acme: tuple[Partner, str]
) -> None:
    """Valid under its own key, but not the stack's: a forger's key proves nothing."""
    _, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])
    receipt = parse_receipt(json.dumps(body))
    other = boto3.client("kms", region_name=REGION).create_key(
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"
    )["KeyMetadata"]["Arn"]
    forged = kms_key(other).sign(receipt.payload)

    assert offline(forged, other) is True
    public = kms_key(receipt.key_id).public_key()
    verdict = check(forged, load_public_key(public.der, "stack key"), public.key_id)
    assert not verdict.valid
    assert "signed by key" in verdict.reason


# --- filegate receipt verify ---


def filegate(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (through main(): known failures exit 2)."""
    return subprocess.run(
        [sys.executable, "-c", "from filegate.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def receipt_files(
    accepted: dict[str, Any], acme: tuple[Partner, str], receipt_key_arn: str, tmp_path: Path
) -> dict[str, Path]:
    _, body = call_api("GET", f"/uploads/{accepted['upload_id']}/receipt", api_key=acme[1])
    payload, signature = (base64.b64decode(body[name]) for name in ("payload", "signature"))
    changed_payload = payload.replace(b'"size":16', b'"size":17', 1)
    assert changed_payload != payload
    files = {
        "good": body,
        "payload": {**body, "payload": base64.b64encode(changed_payload).decode()},
        "signature": {**body, "signature": base64.b64encode(flipped(signature, 10)).decode()},
    }
    paths = {name: tmp_path / f"{name}.json" for name in files}
    for name, document in files.items():
        paths[name].write_text(json.dumps(document))
    paths["pem"] = tmp_path / "receipt-key.pem"
    paths["pem"].write_text(kms_key(receipt_key_arn).public_key().pem)
    return paths


def test_verify_exits_0_for_a_good_receipt_and_1_for_a_changed_one(
    receipt_files: dict[str, Path], accepted: dict[str, Any]
) -> None:
    pem = str(receipt_files["pem"])

    good = filegate("receipt", "verify", str(receipt_files["good"]), "--public-key", pem)
    payload = filegate("receipt", "verify", str(receipt_files["payload"]), "--public-key", pem)
    signature = filegate(
        "receipt",
        "verify",
        str(receipt_files["signature"]),
        "--public-key",
        pem,
        "--output",
        "json",
    )

    assert good.returncode == 0, good.stderr
    assert "VALID" in good.stdout
    assert accepted["upload_id"] in good.stdout
    assert payload.returncode == 1, payload.stderr
    assert "INVALID" in payload.stdout
    assert signature.returncode == 1, signature.stderr
    result = json.loads(signature.stdout)
    assert result["valid"] is False
    assert result["reason"] == "the signature does not match the payload"
    assert result["receipt"]["upload_id"] == accepted["upload_id"]


def test_verify_exits_2_for_what_it_cannot_read(receipt_files: dict[str, Path]) -> None:
    pem, good = str(receipt_files["pem"]), str(receipt_files["good"])
    not_json = receipt_files["pem"].parent / "notes.txt"
    not_json.write_text("hello")
    no_signature = receipt_files["pem"].parent / "partial.json"
    no_signature.write_text(json.dumps({"payload": "e30=", "key_id": "k"}))

    cases = {
        "missing file": filegate("receipt", "verify", "/nonexistent/r.json", "--public-key", pem),
        "not json": filegate("receipt", "verify", str(not_json), "--public-key", pem),
        "no signature": filegate("receipt", "verify", str(no_signature), "--public-key", pem),
        "bad key": filegate("receipt", "verify", good, "--public-key", str(not_json)),
    }

    for case, completed in cases.items():
        assert completed.returncode == 2, (case, completed.stdout, completed.stderr)
        assert completed.stderr.startswith("error: "), (case, completed.stderr)
        assert "Traceback" not in completed.stderr, case
    assert "'signature' is missing" in cases["no signature"].stderr
    assert "is not a public key" in cases["bad key"].stderr


def test_verify_refuses_another_algorithm(receipt_files: dict[str, Path], tmp_path: Path) -> None:
    document = json.loads(receipt_files["good"].read_text())
    other = tmp_path / "rsa.json"
    other.write_text(json.dumps({**document, "signing_algorithm": "RSASSA_PSS_SHA_256"}))

    completed = filegate("receipt", "verify", str(other), "--public-key", str(receipt_files["pem"]))

    assert completed.returncode == 1
    assert "RSASSA_PSS_SHA_256" in completed.stdout


def test_receipts_are_dated_in_the_ledgers_format() -> None:
    """arrived_at is S3's eventTime and verdict_at the ledger's updated_at: both ISO UTC."""
    assert iso_utc(datetime(2026, 12, 6, 23, 59, 58, 123000, tzinfo=UTC)) == ARRIVED
