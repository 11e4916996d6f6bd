"""Every KMS call filegate makes, behind ``ReceiptKey``: the key that signs upload receipts.

``sign`` (the upload API: Sign with ECDSA_SHA_256 over the raw payload; KMS hashes it, and
answers the DER-encoded signature and the key's ARN), ``public_key`` (GetPublicKey: the
DER SubjectPublicKeyInfo that checks receipts offline, also as PEM) and ``verify`` (KMS's own
Verify: the operator's second opinion, and the tests'). botocore errors become
``ReceiptError`` here and nowhere else, naming the key and what to do. KMS's Sign takes at
most 4096 bytes of RAW message (AWS KMS API reference, Sign, ``Message``); a receipt's payload
is a few hundred bytes. Standard library and botocore only: the upload API Lambda ships this
module.
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import ReceiptError, error_code
from filegate.receipts import SIGNING_ALGORITHM, Receipt

MAX_RAW_MESSAGE = 4096  # AWS KMS API reference, Sign: a RAW message up to 4096 bytes


@dataclass(frozen=True)
class PublicKey:
    """A KMS key's public half: its ARN, spec and SubjectPublicKeyInfo (DER)."""

    key_id: str
    key_spec: str
    der: bytes

    @property
    def pem(self) -> str:
        """The key as PEM (``-----BEGIN PUBLIC KEY-----``), as openssl reads it."""
        body = "\n".join(textwrap.wrap(base64.b64encode(self.der).decode("ascii"), 64))
        return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"

    def as_dict(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "key_spec": self.key_spec,
            "signing_algorithm": SIGNING_ALGORITHM,
            "public_key_pem": self.pem,
        }


class ReceiptKey:
    """One asymmetric KMS key (id, ARN or alias), through an injected KMS client."""

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self.key_id = key_id
        self._kms = kms_client

    def sign(self, payload: bytes) -> Receipt:
        """A receipt for ``payload``, signed by the key (ECDSA_SHA_256, RAW)."""
        if len(payload) > MAX_RAW_MESSAGE:
            raise ReceiptError(f"a receipt payload of {len(payload)} bytes is over KMS's 4096")
        response = self._call(
            "Sign",
            KeyId=self.key_id,
            Message=payload,
            MessageType="RAW",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        return Receipt(payload, bytes(response["Signature"]), str(response["KeyId"]))

    def public_key(self) -> PublicKey:
        """GetPublicKey: what checks this key's signatures without AWS credentials."""
        response = self._call("GetPublicKey", KeyId=self.key_id)
        algorithms = response.get("SigningAlgorithms") or []
        if SIGNING_ALGORITHM not in algorithms:
            raise ReceiptError(
                f"KMS key {self.key_id} does not sign with {SIGNING_ALGORITHM}"
                f" (it offers {', '.join(algorithms) or 'no signing'}): receipts need an"
                " ECC_NIST_P256 SIGN_VERIFY key, as the template's ReceiptKey"
            )
        # KeySpec, and its deprecated twin CustomerMasterKeySpec, which is all moto 5.2.5 sends
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec", "")
        return PublicKey(self._arn(str(response["KeyId"])), str(spec), response["PublicKey"])

    def _arn(self, answered: str) -> str:
        """GetPublicKey answers the key's ARN (AWS KMS API reference, GetPublicKey, response
        ``KeyId``); moto 5.2.5 answers the bare key id, which is the ARN asked for when that
        ARN ends with it (docs/aws-fidelity.md, "KMS and receipts")."""
        if not answered.startswith("arn:") and self.key_id.endswith(f":key/{answered}"):
            return self.key_id
        return answered

    def verify(self, receipt: Receipt) -> bool:
        """KMS's Verify of ``receipt``: True when valid, False when KMS says it is not."""
        try:
            response = self._kms.verify(
                KeyId=self.key_id,
                Message=receipt.payload,
                MessageType="RAW",
                Signature=receipt.signature,
                SigningAlgorithm=receipt.signing_algorithm,
            )
        except ClientError as exc:
            if error_code(exc) == "KMSInvalidSignatureException":
                return False
            raise self._failure("Verify", exc) from exc
        except BotoCoreError as exc:
            raise self._failure("Verify", exc) from exc
        return bool(response.get("SignatureValid"))

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        method = {"Sign": self._kms.sign, "GetPublicKey": self._kms.get_public_key}[operation]
        try:
            response: dict[str, Any] = method(**arguments)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(operation, exc) from exc
        return response

    def _failure(self, operation: str, exc: Exception) -> ReceiptError:
        return ReceiptError(
            f"KMS {operation} on key {self.key_id} failed ({error_code(exc)}): check that the key"
            f" exists, is enabled and lets the caller kms:{operation}"
        )
