"""How the evidence is written down: file names, API responses as JSON, AWS CLI command lines.

The evidence names its files ``dynamodb_item_<key>.json`` and ``lambda_logs_<key>.json``; a key's
characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_`` there. Responses are
printed as the AWS CLI prints them (indented, ISO datetimes, no ResponseMetadata), and every
call is shown as the AWS CLI command that makes it against the same target.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from filegate.stackref import StackRef

# The parts of GetFunctionConfiguration and DescribeTable the run record quotes.
FUNCTION_FIELDS = (
    "FunctionName",
    "FunctionArn",
    "Runtime",
    "Role",
    "Handler",
    "CodeSize",
    "Timeout",
    "MemorySize",
    "LastModified",
    "CodeSha256",
    "Version",
    "State",
    "LastUpdateStatus",
    "Environment",
)
TABLE_FIELDS = ("TableName", "TableStatus", "KeySchema", "BillingModeSummary", "SSEDescription")


def item_file(key: str) -> str:
    return f"dynamodb_item_{_safe(key)}.json"


def logs_file(key: str) -> str:
    return f"lambda_logs_{_safe(key)}.json"


def _safe(key: str) -> str:
    """A key as part of a file name (see the module docstring)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def aws_json(response: Any) -> str:
    """An API response as the AWS CLI prints it: no ResponseMetadata, ISO datetimes."""
    if isinstance(response, dict):
        response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return json.dumps(response, indent=4, default=_iso) + "\n"


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class AwsCli:
    """The AWS CLI command equivalent to one call against this stack's target."""

    def __init__(self, ref: StackRef) -> None:
        target = ref.target
        self._tail = ["--region", target.region]
        if target.profile:
            self._tail += ["--profile", target.profile]
        if target.endpoint_url:
            self._tail += ["--endpoint-url", target.endpoint_url]

    def __call__(self, *words: str) -> str:
        return " ".join(["aws", *(shlex.quote(w) for w in (*words, *self._tail))])


def pick(document: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The given fields of a document, in that order, leaving out those it lacks."""
    return {name: document[name] for name in fields if name in document}
