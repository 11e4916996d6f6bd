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
- a table that CloudFormation creates (``AWS::DynamoDB::Table``) is created there too, from
  the same properties, and deleted there with the stack (or the rollback of its create): the
  one seam into moto here, :func:`mirror_cloudformation_tables`. moto keeps its own copy
  for the stack's bookkeeping (physical id, ``Fn::GetAtt``); no request ever reads it.

The function's workers get ``AWS_ENDPOINT_URL_DYNAMODB`` and reach the second process directly.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from filegate.local.patches.seams import Seams
from filegate.settings import LOCAL_ACCESS_KEY

logger = logging.getLogger(__name__)

FORWARDED_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_TIMEOUT_SECONDS = 60.0

# CloudFormation's table properties that CreateTable takes as they are.
_CREATE_TABLE_AS_IS = (
    "AttributeDefinitions",
    "KeySchema",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "Tags",
    "TableClass",
    "DeletionProtectionEnabled",
    "OnDemandThroughput",
    "WarmThroughput",
)
_INDEX_KEYS = (
    "IndexName",
    "KeySchema",
    "Projection",
    "ProvisionedThroughput",
    "OnDemandThroughput",
)


def create_table_request(table_name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request for a CloudFormation ``AWS::DynamoDB::Table``'s properties.

    Point-in-time recovery and time to live are not CreateTable's: the local stack applies
    them with their own calls after the deployment, through the main endpoint.
    """
    request: dict[str, Any] = {"TableName": table_name}
    request.update({k: properties[k] for k in _CREATE_TABLE_AS_IS if k in properties})
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {k: index[k] for k in _INDEX_KEYS if k in index}
            for index in properties["GlobalSecondaryIndexes"]
        ]
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            "Enabled": _truthy(sse.get("SSEEnabled", False)),
            **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
        }
    stream = properties.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    if "DeletionProtectionEnabled" in request:
        request["DeletionProtectionEnabled"] = _truthy(request["DeletionProtectionEnabled"])
    return request


def _truthy(value: Any) -> bool:
    # CloudFormation hands template booleans over as they were written: true or "true".
    return value is True or str(value).lower() == "true"


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


def mirror_cloudformation_tables(seams: Seams, base_url: str) -> None:
    """The seam: a table CloudFormation creates (or deletes) in moto is created (or deleted)
    in the DynamoDB process at ``base_url`` too."""
    from moto.dynamodb.models.table import Table

    table_class: Any = Table
    create = table_class.create_from_cloudformation_json.__func__
    delete = table_class.delete_from_cloudformation_json.__func__

    @functools.cache
    def client(region: str) -> Any:
        """A client of the DynamoDB process in one region, made when first needed."""
        import boto3

        return boto3.session.Session().client(
            "dynamodb",
            region_name=region,
            endpoint_url=base_url,
            aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_ACCESS_KEY,
        )

    def create_both(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        table = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        request = create_table_request(table.name, cloudformation_json.get("Properties", {}))
        client(region_name).create_table(**request)
        return table

    def drop(region_name: str, table_name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            client(region_name).delete_table(TableName=table_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise

    def delete_both(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        delete(cls, resource_name, cloudformation_json, account_id, region_name)
        drop(region_name, resource_name)

    # A stack delete, or the rollback of a failed create, deletes through the table's own
    # ``delete``, not ``delete_from_cloudformation_json``: mirror that path too, or the retry
    # of a rolled-back create finds its tables still there.
    delete_instance = table_class.delete

    def delete_instance_both(self: Any, account_id: str, region_name: str) -> None:
        delete_instance(self, account_id, region_name)
        drop(region_name, self.name)

    seams.replace(table_class, "create_from_cloudformation_json", classmethod(create_both))
    seams.replace(table_class, "delete_from_cloudformation_json", classmethod(delete_both))
    seams.replace(table_class, "delete", delete_instance_both)
