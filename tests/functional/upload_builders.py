"""Builders for the upload API tests: Function URL 2.0 events and the tables the API uses.

Events start from tests/events/function_url_request.json and vary method, path, key and body.
The tables have the template's key schemas (ledger: s3_key plus the two GSIs; partners:
partner_id).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from builders import load_event

from filegate.ledger import PREFIX_INDEX, UPLOAD_INDEX

PARTNERS_TABLE = "filegate-partners-test"
UPLOAD_BUCKET = "filegate-uploads-api-test"
NO_KEY = object()  # send no x-api-key header at all


def http_event(
    method: str,
    path: str,
    *,
    api_key: Any = NO_KEY,
    body: Any = None,
    raw_body: str | bytes | None = None,
) -> dict[str, Any]:
    """A Function URL event; ``body`` is sent as JSON, ``raw_body`` as is (bytes: base64)."""
    event: dict[str, Any] = copy.deepcopy(load_event("function_url_request.json"))
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    del event["headers"]["x-api-key"]
    if api_key is not NO_KEY:
        event["headers"]["x-api-key"] = api_key
    event["body"], event["isBase64Encoded"] = _body(body, raw_body)
    return event


def _body(body: Any, raw_body: str | bytes | None) -> tuple[str | None, bool]:
    if isinstance(raw_body, bytes):
        return base64.b64encode(raw_body).decode("ascii"), True
    if raw_body is not None:
        return raw_body, False
    return (None if body is None else json.dumps(body)), False


def declaration(
    content: bytes = b"hello world",
    *,
    filename: str = "report.csv",
    content_type: str = "text/csv",
    size: int | None = None,
) -> dict[str, Any]:
    """A valid POST /uploads body for ``content``."""
    return {
        "filename": filename,
        "size": len(content) if size is None else size,
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": content_type,
    }


def create_partners_table(client: Any, name: str = PARTNERS_TABLE) -> str:
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "partner_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "partner_id", "AttributeType": "S"}],
    )
    return name


def create_upload_ledger(client: Any, name: str) -> str:
    """The ledger table with both GSIs: prefix-event_time-index and upload_id-index."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in ("s3_key", "prefix", "event_time", "upload_id")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PREFIX_INDEX,
                "KeySchema": [
                    {"AttributeName": "prefix", "KeyType": "HASH"},
                    {"AttributeName": "event_time", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": UPLOAD_INDEX,
                "KeySchema": [{"AttributeName": "upload_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    return name
