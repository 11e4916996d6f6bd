"""The stack's DynamoDB tables as CreateTable requests, from the template's properties.

The local stack runs DynamoDB in a process of its own (``dynamodb_process``); moto's
CloudFormation creates its tables in the main emulator, where no request reads them. The
local stack creates them in the DynamoDB process itself, after the stack's create or update
(``provision``: from the template's ``AWS::DynamoDB::Table`` resources, resolved against the
stack). A failed create, rolled back, never reaches that step, so the tables never exist
there; and the template keeps its tables on a stack's delete and on a replacement
(``DeletionPolicy: RetainExceptOnCreate``, ``UpdateReplacePolicy: Retain``), so nothing is
deleted there either.
"""

from __future__ import annotations

from typing import Any

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
