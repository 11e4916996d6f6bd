"""Receipts without a network: the canonical payload, reading a receipt file, and the KMS
answers moto does not give (botocore's Stubber stands in for KMS, as AWS documents it)."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from botocore.stub import Stubber

from filegate.errors import ReceiptError
from filegate.ledger import UploadRecord
from filegate.receipts import Receipt, canonical_json, parse_receipt, receipt_document
from filegate.signing import MAX_RAW_MESSAGE, PublicKey, ReceiptKey

ARN = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def record(status: str = "ACCEPTED") -> UploadRecord:
    return UploadRecord(
        key="acme/up-x/r\u00e9sum\u00e9.csv",
        upload_id="up-x",
        partner_id="acme",
        status=status,
        bucket="b",
        declared_size=3,
        declared_sha256="00" * 32,
        declared_content_type="text/csv",
        method="PUT",
        expires_at="2026-12-07T00:15:00.000Z",
        first_seen_at="2026-12-07T00:00:00.000Z",
        updated_at="2026-12-07T00:00:01.000Z",
        size=3,
        content_type="text/csv",
        checksum_sha256=base64.b64encode(bytes(32)).decode(),
        checksum_type="FULL_OBJECT",
        checksum_part_count=1,
        event_time="2026-12-07T00:00:00.500Z",
    )


def test_canonical_json_sorts_keys_without_whitespace_in_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": None, "c": "\u00e9"}}) == (
        '{"a":{"c":"\u00e9","d":null},"b":1}'.encode()
    )


def test_only_an_accepted_upload_has_a_receipt_document() -> None:
    assert receipt_document(record())["arrived_at"] == "2026-12-07T00:00:00.500Z"
    for status in ("PENDING", "REJECTED", "EXPIRED", "ABORTED", "DELETED"):
        with pytest.raises(ReceiptError, match=f"is {status}, not ACCEPTED"):
            receipt_document(record(status))


def test_the_declared_and_verified_checksums_agree_for_a_put() -> None:
    document = receipt_document(record())
    assert document["declared"]["checksum"]["value"] == document["verified"]["checksum"]["value"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "a JSON object"),
        ('{"payload": "e30=", "key_id": "k", "signing_algorithm": "ECDSA_SHA_256"}', "'signature'"),
        (
            '{"payload": "e30", "signature": "AA==", "key_id": "k", "signing_algorithm": "x"}',
            "'payload' is not base64",
        ),
    ],
)
def test_a_file_that_is_not_a_receipt_says_which_field(text: str, message: str) -> None:
    with pytest.raises(ReceiptError, match=message):
        parse_receipt(text)


def test_a_receipt_round_trips_through_its_json() -> None:
    receipt = Receipt(b'{"a":1}', b"\x30\x01", ARN)
    assert parse_receipt(json.dumps(receipt.as_dict())) == receipt


def kms() -> tuple[ReceiptKey, Stubber]:
    client = boto3.client(
        "kms", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return ReceiptKey(client, ARN), Stubber(client)


def test_kms_refusing_a_signature_is_an_invalid_receipt() -> None:
    """AWS KMS API reference, Verify: a signature that does not verify fails the call with
    KMSInvalidSignatureException (moto answers SignatureValid false instead)."""
    key, stub = kms()
    stub.add_client_error("verify", "KMSInvalidSignatureException", http_status_code=400)
    with stub:
        assert key.verify(Receipt(b"{}", b"0", ARN)) is False


def test_other_kms_failures_name_the_key_and_the_permission() -> None:
    key, stub = kms()
    stub.add_client_error("sign", "AccessDeniedException", http_status_code=400)
    with stub, pytest.raises(ReceiptError, match=r"Sign on key .* kms:Sign"):
        key.sign(b"{}")


def test_a_payload_over_kms_raw_limit_is_refused_before_any_call() -> None:
    key, stub = kms()
    with stub, pytest.raises(ReceiptError, match="over KMS's 4096"):
        key.sign(b"x" * (MAX_RAW_MESSAGE + 1))
    stub.assert_no_pending_responses()


def test_get_public_key_as_aws_answers_it() -> None:
    """AWS KMS API reference, GetPublicKey: KeyId is the key's ARN, KeySpec its spec."""
    key, stub = kms()
    stub.add_response(
        "get_public_key",
        {
            "KeyId": ARN,
            "KeySpec": "ECC_NIST_P256",
            "KeyUsage": "SIGN_VERIFY",
            "PublicKey": b"\x30" * 91,
            "SigningAlgorithms": ["ECDSA_SHA_256"],
        },
    )
    with stub:
        public = key.public_key()
    assert (public.key_id, public.key_spec) == (ARN, "ECC_NIST_P256")


def test_a_key_that_cannot_sign_receipts_is_refused() -> None:
    key, stub = kms()
    stub.add_response(
        "get_public_key",
        {"KeyId": ARN, "PublicKey": b"0", "EncryptionAlgorithms": ["RSAES_OAEP_SHA_256"]},
    )
    with stub, pytest.raises(ReceiptError, match="does not sign with ECDSA_SHA_256"):
        key.public_key()


def test_the_pem_wraps_at_64_characters() -> None:
    pem = PublicKey(ARN, "ECC_NIST_P256", bytes(91)).pem
    lines = pem.splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-1] == "-----END PUBLIC KEY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    assert base64.b64decode("".join(lines[1:-1])) == bytes(91)
