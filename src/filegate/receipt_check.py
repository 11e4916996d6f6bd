"""Checking a receipt offline: its signature against the receipt key's public key.

``check`` verifies KMS's ECDSA_SHA_256 signature (DER, over the exact payload bytes, which are
never re-encoded) with the ``cryptography`` library: no AWS call and no credentials, so a
partner can check a receipt anywhere. The public key comes as PEM or DER (what ``filegate
receipt verify --public-key`` reads, or what ``signing.ReceiptKey.public_key`` fetched).
A receipt that names another key than the one given, another algorithm, or whose signature
does not match is invalid (``Verdict.valid`` False, with the reason); a public key that cannot
be read is a ``ReceiptError``. Used by the CLI only (the Lambda never checks receipts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from filegate.errors import ReceiptError
from filegate.receipts import SIGNING_ALGORITHM, Receipt, parse_receipt


@dataclass(frozen=True)
class Verdict:
    """Whether a receipt's signature holds, and why not when it does not."""

    valid: bool
    reason: str = ""


@dataclass(frozen=True)
class FileCheck:
    """One receipt file checked: the verdict, the key it names, and what it states."""

    file: str
    verdict: Verdict
    key_id: str
    statement: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "valid": self.verdict.valid,
            "reason": self.verdict.reason or None,
            "key_id": self.key_id,
            "receipt": self.statement,
        }


def read_receipt(path: Path) -> Receipt:
    """The receipt in ``path``; ReceiptError when it cannot be read or is not a receipt."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ReceiptError(f"cannot read receipt {path}: {exc.strerror or exc}") from exc
    try:
        return parse_receipt(text)
    except ReceiptError as exc:
        raise ReceiptError(f"{path}: {exc}") from exc


def read_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """The public key in ``path`` (PEM or DER)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReceiptError(f"cannot read public key {path}: {exc.strerror or exc}") from exc
    return load_public_key(data, str(path))


def check_file(
    path: Path, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None
) -> FileCheck:
    """The receipt in ``path`` checked against ``public_key`` (and the key's ARN, if given)."""
    receipt = read_receipt(path)
    verdict = check(receipt, public_key, key_id)
    try:
        statement: dict[str, Any] | None = receipt.statement()
    except ReceiptError:
        statement = None  # a changed payload need not be JSON any more: the verdict says so
    return FileCheck(str(path), verdict, receipt.key_id, statement)


def load_public_key(data: bytes, source: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM or DER bytes (``source`` names them in errors)."""
    try:
        key = load_pem_public_key(data) if b"-----BEGIN" in data else load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ReceiptError(
            f"{source} is not a public key (PEM or DER SubjectPublicKeyInfo): {exc}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ReceiptError(f"{source} is not a NIST P-256 (ECC_NIST_P256) public key")
    return key


def check(
    receipt: Receipt, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None
) -> Verdict:
    """The receipt's signature against ``public_key`` (and, if given, its key's ARN)."""
    if receipt.signing_algorithm != SIGNING_ALGORITHM:
        return Verdict(False, f"signing algorithm {receipt.signing_algorithm}, not ECDSA_SHA_256")
    if key_id is not None and receipt.key_id != key_id:
        return Verdict(False, f"signed by key {receipt.key_id}, not by {key_id}")
    try:
        public_key.verify(receipt.signature, receipt.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return Verdict(False, "the signature does not match the payload")
    return Verdict(True)
