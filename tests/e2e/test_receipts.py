"""Signed receipts on the local stack (issue 12, item 3): an upload ACCEPTED, its receipt
fetched from the upload API (signed by the stack's KMS key, with the upload API's role
credentials, which the twin checks), verified by `filegate receipt verify` (exit 0) and by
KMS's Verify; the same receipt with one byte of its payload or signature changed exits 1.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BIN, Stack, cli_env, filegate


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    done = filegate(stack.state_dir, "partner", "add", "receipts partner", "--output", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["api_key"])


def partner_cli(stack: Stack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "filegate"), *args],
        capture_output=True,
        text=True,
        env=cli_env(stack.state_dir, FILEGATE_API_KEY=key),
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def receipt_file(stack: Stack, api_key: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("receipts")
    source = folder / "invoice.csv"
    source.write_bytes(b"id,amount\n1,100\n2,250\n")
    sent = partner_cli(stack, api_key, "upload", str(source), "--wait", "--output", "json")
    assert sent.returncode == 0, sent.stderr
    (result,) = json.loads(sent.stdout)
    assert result["status"] == "ACCEPTED"
    path = folder / "receipt.json"
    got = partner_cli(stack, api_key, "receipt", "get", result["upload_id"], "--out", str(path))
    assert got.returncode == 0, got.stderr
    return path


def tampered(path: Path, field: str) -> Path:
    document = json.loads(path.read_text())
    data = bytearray(base64.b64decode(document[field]))
    data[len(data) // 2] ^= 0x01
    changed = path.with_name(f"receipt-{field}-changed.json")
    changed.write_text(json.dumps({**document, field: base64.b64encode(data).decode()}))
    return changed


def test_a_receipt_verifies_against_the_stacks_key(stack: Stack, receipt_file: Path) -> None:
    done = filegate(stack.state_dir, "receipt", "verify", str(receipt_file), "--output", "json")

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["valid"] is True
    assert result["key_id"] == stack.env["ReceiptKeyArn"]
    assert result["receipt"]["status"] == "ACCEPTED"
    assert result["receipt"]["verified"]["checksum"]["type"] == "FULL_OBJECT"


def test_kms_verify_accepts_the_receipt_and_refuses_a_changed_one(
    stack: Stack, receipt_file: Path
) -> None:
    kms = stack.target.client("kms")
    document: dict[str, Any] = json.loads(receipt_file.read_text())

    def kms_verify(receipt: dict[str, Any]) -> bool:
        answer = kms.verify(
            KeyId=receipt["key_id"],
            Message=base64.b64decode(receipt["payload"]),
            MessageType="RAW",
            Signature=base64.b64decode(receipt["signature"]),
            SigningAlgorithm=receipt["signing_algorithm"],
        )
        return bool(answer["SignatureValid"])

    assert kms_verify(document) is True
    changed = json.loads(tampered(receipt_file, "payload").read_text())
    assert kms_verify(changed) is False


@pytest.mark.parametrize("field", ["payload", "signature"])
def test_a_changed_receipt_exits_1(stack: Stack, receipt_file: Path, field: str) -> None:
    done = filegate(stack.state_dir, "receipt", "verify", str(tampered(receipt_file, field)))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID" in done.stdout


def test_a_partner_verifies_with_the_public_key_the_api_hands_out(
    stack: Stack, api_key: str, receipt_file: Path
) -> None:
    pem = receipt_file.with_name("receipt-key.pem")
    got = partner_cli(stack, api_key, "receipt", "public-key", "--out", str(pem))
    assert got.returncode == 0, got.stderr

    good = partner_cli(
        stack, api_key, "receipt", "verify", str(receipt_file), "--public-key", str(pem)
    )
    bad = partner_cli(
        stack,
        api_key,
        "receipt",
        "verify",
        str(tampered(receipt_file, "signature")),
        "--public-key",
        str(pem),
    )

    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode == 1, bad.stdout + bad.stderr
