"""Upload receipts: what is signed, and the receipt document a partner keeps.

A receipt proves that filegate accepted one declared upload as declared. Its ``payload`` is
the canonical JSON (``canonical_json``: keys sorted, no whitespace, UTF-8; for the strings,
whole numbers and nulls a receipt holds this is RFC 8785's JSON Canonicalization Scheme) of
the ledger's ACCEPTED item: bucket, key, sizes, the declared and the verified checksum, upload
id, partner, arrival and verdict times and ``receipt_version``. Nothing in it changes once the
upload is ACCEPTED, so every request for the receipt signs the same bytes. The signature is
KMS's (``signing``: ECDSA_SHA_256 over the raw payload, DER-encoded); a checker verifies the
exact payload bytes and never re-encodes them (``receipt_check``). docs/receipts.md describes
the fields. Standard library only: the upload API Lambda ships this module.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from filegate.errors import ReceiptError
from filegate.ledger import Status, UploadRecord

RECEIPT_VERSION = 1
SIGNING_ALGORITHM = "ECDSA_SHA_256"  # KMS's name: ECDSA on the key's curve (P-256), SHA-256
CHECKSUM_ALGORITHM = "SHA256"
_FIELDS = ("payload", "signature", "key_id", "signing_algorithm")


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """``document`` as one canonical byte string (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def receipt_document(record: UploadRecord) -> dict[str, Any]:
    """What a receipt states about an ACCEPTED upload (ReceiptError for any other status)."""
    if record.status != Status.ACCEPTED:
        raise ReceiptError(f"upload {record.upload_id} is {record.status}, not ACCEPTED")
    return {
        "receipt_version": RECEIPT_VERSION,
        "upload_id": record.upload_id,
        "partner_id": record.partner_id,
        "bucket": record.bucket,
        "key": record.key,
        "status": record.status,
        "declared": {
            "size": record.declared_size,
            "content_type": record.declared_content_type,
            "method": record.method,
            "part_count": record.declared_part_count,
            # the whole-file SHA-256 the partner declared, in S3's encoding (base64)
            "checksum": _checksum(_hex_to_base64(record.declared_sha256), "FULL_OBJECT", None),
        },
        "verified": {
            "size": record.size,
            "content_type": record.content_type,
            # the checksum S3 verified and holds for the object (docs/integrity.md)
            "checksum": _checksum(
                record.checksum_sha256, record.checksum_type, record.checksum_part_count
            ),
        },
        "arrived_at": record.event_time,
        "verdict_at": record.updated_at,
    }


def receipt_payload(record: UploadRecord) -> bytes:
    """The exact bytes that are signed for an ACCEPTED upload."""
    return canonical_json(receipt_document(record))


@dataclass(frozen=True)
class Receipt:
    """A signed receipt: the payload bytes, KMS's DER signature, the key and the algorithm."""

    payload: bytes
    signature: bytes
    key_id: str
    signing_algorithm: str = SIGNING_ALGORITHM

    def as_dict(self) -> dict[str, str]:
        """The receipt as ``GET /uploads/{id}/receipt`` answers it (base64 bytes)."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "key_id": self.key_id,
            "signing_algorithm": self.signing_algorithm,
        }

    def statement(self) -> dict[str, Any]:
        """The payload decoded (for display; a check uses the bytes)."""
        try:
            document = json.loads(self.payload)
        except ValueError as exc:
            raise ReceiptError(f"the receipt's payload is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ReceiptError("the receipt's payload is not a JSON object")
        return document


def parse_receipt(text: str | bytes) -> Receipt:
    """A receipt file's content -> Receipt; ReceiptError naming the field that is wrong."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReceiptError(f"not a receipt: the file is not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ReceiptError("not a receipt: a receipt is a JSON object")
    values = {name: document.get(name) for name in _FIELDS}
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ReceiptError(f"not a receipt: field {name!r} is missing or not a string")
    return Receipt(
        payload=_base64_field(values, "payload"),
        signature=_base64_field(values, "signature"),
        key_id=str(values["key_id"]),
        signing_algorithm=str(values["signing_algorithm"]),
    )


def _base64_field(values: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(str(values[name]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReceiptError(f"not a receipt: field {name!r} is not base64 ({exc})") from exc


def _checksum(value: str | None, kind: str | None, part_count: int | None) -> dict[str, Any]:
    return {
        "algorithm": CHECKSUM_ALGORITHM,
        "type": kind,
        "value": value,
        "part_count": part_count,
    }


def _hex_to_base64(digest: str) -> str | None:
    try:
        return base64.b64encode(bytes.fromhex(digest)).decode("ascii")
    except ValueError:
        return None
