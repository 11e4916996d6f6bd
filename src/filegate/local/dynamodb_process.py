"""DynamoDB in an emulator process of its own: the main emulator forwards to it.

On AWS, S3, SQS and DynamoDB do not share anything with each other or with the client. One
moto process serves every service under one GIL: in a burst, the uploader's S3 puts and the
function's ledger writes take turns at it (docs/benchmarks.md). The local stack therefore runs
DynamoDB in a second emulator process and, in the main one (``FILEGATE_EMULATOR_DYNAMODB_URL``
names the second):

- every DynamoDB and DynamoDB Streams request (``X-Amz-Target: DynamoDB_20120810.*`` or
  ``DynamoDBStreams_20120810.*``) is forwarded there as it came, and its answer returned as it
  is, so any client of the main endpoint (the AWS CLI, filegate's commands) sees one emulator
  (:class:`DynamoDBForwarding`, WSGI middleware around moto's app: ``emulator.application``);
- the stack's tables (``AWS::DynamoDB::Table``) are created there by the local stack itself,
  after the stack is deployed, from the template's properties (``provision``,
  ``stack_tables``); moto's CloudFormation keeps its own copy in the main emulator for the
  stack's bookkeeping (physical id, ``Fn::GetAtt``), which no request reads.
The function's workers get ``AWS_ENDPOINT_URL_DYNAMODB`` and reach the second process directly.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

FORWARDED_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_TIMEOUT_SECONDS = 60.0


def is_forwarded(environ: dict[str, Any]) -> bool:
    return str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(FORWARDED_TARGETS)


class Forwarder:
    """Sends a WSGI request to the DynamoDB process and hands back its answer unchanged."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name[5:].replace("_", "-"): value
            for name, value in environ.items()
            if name.startswith("HTTP_") and name[5:].replace("_", "-").lower() not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        path = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
        connection = http.client.HTTPConnection(self._host, self._port, timeout=_TIMEOUT_SECONDS)
        try:
            connection.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as exc:
            logger.warning("the DynamoDB emulator process did not answer: %s", exc)
            start_response(
                "500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.0")]
            )
            return [_error_body(f"the local DynamoDB emulator did not answer: {exc}")]
        finally:
            connection.close()
        start_response(
            f"{response.status} {response.reason}",
            [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP],
        )
        return [data]


def _error_body(message: str) -> bytes:
    document = {
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": message,
    }
    return json.dumps(document).encode()


class DynamoDBForwarding:
    """WSGI middleware: DynamoDB (and Streams) requests to the DynamoDB process, the rest to
    ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], base_url: str) -> None:
        self._app = app
        self._forward = Forwarder(base_url)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if is_forwarded(environ):
            return self._forward(environ, start_response)
        return self._app(environ, start_response)
