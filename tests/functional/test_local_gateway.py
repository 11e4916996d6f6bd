"""The local Function URL gateway: HTTP in, Lambda function URL events out, and back."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError

import pytest

from filegate.aws import Target
from filegate.local.gateway import FunctionUrlGateway, cors_headers, function_url_event
from filegate.local.runtime import FunctionSpec, Worker, runtime_packages_dir
from tests.e2e.conftest import free_port

ECHO = """
import base64, json
def handler(event, context):
    if event["rawPath"] == "/boom":
        raise RuntimeError("boom")
    if event["rawPath"] == "/plain":
        return {"plain": True}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return {"statusCode": 201, "headers": {"content-type": "application/json", "x-echo": "1"},
            "body": json.dumps({"method": event["requestContext"]["http"]["method"],
                                "path": event["rawPath"], "query": event.get("rawQueryString"),
                                "key": event["headers"].get("x-api-key"), "body": body})}
"""
CORS = {
    "AllowOrigins": ["*"],
    "AllowMethods": ["GET", "POST"],
    "AllowHeaders": ["content-type", "x-api-key"],
    "MaxAge": 300,
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "echo.py").write_text(ECHO)
    spec = FunctionSpec(
        "api",
        "arn:aws:lambda:eu-central-1:123456789012:function:api",
        "echo.handler",
        5,
        128,
        {},
        code,
        runtime_packages_dir(tmp_path),
    )
    worker = Worker(spec, Target(region="eu-central-1", endpoint_url="http://127.0.0.1:9"))
    worker.start()
    server = FunctionUrlGateway([worker], free_port(), CORS, "api.lambda-url.localhost")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        worker.stop()


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(prepared, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_a_request_becomes_an_event_and_the_answer_a_response(gateway: str) -> None:
    status, headers, body = request(
        gateway + "uploads?x=1",
        "POST",
        b'{"a": 1}',
        {"content-type": "application/json", "x-api-key": "k", "origin": "http://page"},
    )
    assert status == 201
    assert headers["x-echo"] == "1"
    assert headers["access-control-allow-origin"] == "*"
    assert json.loads(body) == {
        "method": "POST",
        "path": "/uploads",
        "query": "x=1",
        "key": "k",
        "body": '{"a": 1}',
    }


def test_binary_bodies_arrive_base64_encoded(gateway: str) -> None:
    _, _, body = request(
        gateway + "bin", "POST", b"\x00\x01abc", {"content-type": "application/octet-stream"}
    )
    assert json.loads(body)["body"] == "\x00\x01abc"


def test_plain_json_results_are_200(gateway: str) -> None:
    status, _, body = request(gateway + "plain")
    assert status == 200
    assert json.loads(body) == {"plain": True}


def test_a_failing_function_answers_502(gateway: str) -> None:
    status, _, body = request(gateway + "boom")
    assert status == 502
    assert json.loads(body) == {"Message": "Internal Server Error"}


def test_preflight_is_answered_from_the_url_cors_config(gateway: str) -> None:
    status, headers, body = request(
        gateway + "uploads",
        "OPTIONS",
        None,
        {"origin": "http://page", "access-control-request-method": "POST"},
    )
    assert status == 204
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-allow-headers"] == "content-type,x-api-key"
    assert headers["access-control-max-age"] == "300"
    assert body == b""


def test_cors_only_for_allowed_origins() -> None:
    cors = {"AllowOrigins": ["https://partners.example.com"]}
    assert cors_headers(cors, "https://evil.example.com", preflight=False) == {}
    assert cors_headers(cors, "https://partners.example.com", preflight=False) == {
        "access-control-allow-origin": "https://partners.example.com"
    }
    assert cors_headers(cors, None, preflight=False) == {}


def test_event_shape_is_payload_format_2() -> None:
    event = function_url_event(
        "GET",
        "/uploads/up-1?a=b&c=",
        {"X-Api-Key": "k"},
        b"",
        "127.0.0.1",
        "abc.lambda-url.localhost",
    )
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/uploads/up-1"
    assert event["queryStringParameters"] == {"a": "b", "c": ""}
    assert event["headers"] == {"x-api-key": "k"}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["domainPrefix"] == "abc"
    assert "body" not in event
