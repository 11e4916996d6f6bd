"""The upload API as the e2e tests call it by hand: declare, read an upload's view, wait for
its verdict, and stage a REJECTED upload (declared bytes, other bytes put in their place)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import urllib3

from tests.e2e.conftest import Stack, wait_for


def declare_upload(stack: Stack, key: str, size: int, sha256: str) -> dict[str, Any]:
    """POST /uploads for a file of ``size`` bytes and that SHA-256; the plan (201 asserted)."""
    answer = urllib3.PoolManager().request(
        "POST",
        stack.env["upload_api_url"] + "uploads",
        headers={"x-api-key": key},
        body=json.dumps(
            {
                "filename": "x.bin",
                "size": size,
                "sha256": sha256,
                "content_type": "application/octet-stream",
            }
        ).encode(),
    )
    assert answer.status == 201, answer.data
    return dict(json.loads(answer.data))


def upload_view(stack: Stack, key: str, upload_id: str) -> dict[str, Any]:
    """GET /uploads/{id}: the upload as the API shows it now."""
    answer = urllib3.PoolManager().request(
        "GET", stack.env["upload_api_url"] + f"uploads/{upload_id}", headers={"x-api-key": key}
    )
    return dict(json.loads(answer.data))


def await_verdict(stack: Stack, key: str, upload_id: str) -> dict[str, Any]:
    """The upload's view once it is no longer PENDING."""

    def final() -> dict[str, Any] | None:
        now = upload_view(stack, key, upload_id)
        return now if now["status"] != "PENDING" else None

    return dict(wait_for(final, timeout=15))


def rejected_upload(stack: Stack, partner: dict[str, Any]) -> dict[str, Any]:
    """A declared upload whose key then receives other bytes of the same size, judged
    REJECTED (asserted); its plan."""
    declared, other = b"declared!", b"other one"
    plan = declare_upload(
        stack, partner["api_key"], len(declared), hashlib.sha256(declared).hexdigest()
    )
    stack.s3.put_object(
        Bucket=stack.bucket,
        Key=plan["key"],
        Body=other,
        ContentType="application/octet-stream",
        ChecksumAlgorithm="SHA256",
    )
    assert await_verdict(stack, partner["api_key"], plan["upload_id"])["status"] == "REJECTED"
    return plan
