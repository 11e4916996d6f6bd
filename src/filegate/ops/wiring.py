"""Reading what connects the pipeline's pieces: queue policy statements, ARNs, the ledger's
stream and the events mapping (pure).

S3 never invokes the function here: it notifies the SQS queue (which must let the bucket send)
and the event source mapping invokes the function (or an alias of it). Verdict events leave
through the ledger table's stream (``NEW_AND_OLD_IMAGES``: the publisher compares both images)
and a second mapping, whose on-failure destination keeps what could not be published
(docs/events.md). ``ops.verify`` asks the services for these documents; this module says what
they mean.
"""

from __future__ import annotations

import fnmatch
from typing import Any

S3_SERVICE = "s3.amazonaws.com"
STREAM_VIEW = "NEW_AND_OLD_IMAGES"  # what the template declares and the publisher needs
_SOURCE_ARN_OPERATORS = ("ArnLike", "ArnEquals", "StringLike", "StringEquals")


def policy_lets_bucket_send(policy: dict[str, Any], bucket_arn: str) -> bool:
    """True when a statement of the queue policy allows S3 to send messages from the bucket."""
    return any(_statement_lets_bucket_send(s, bucket_arn) for s in _statements(policy))


def bucket_arn(bucket: str, any_arn_in_partition: str) -> str:
    return f"arn:{partition(any_arn_in_partition)}:s3:::{bucket}"


def partition(arn: str) -> str:
    """``arn:aws-cn:...`` -> ``aws-cn``; ``aws`` when the ARN does not say."""
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else "aws"


def function_name(function_arn: str) -> str:
    """``arn:...:function:NAME[:QUALIFIER]`` -> NAME (a mapping may target an alias)."""
    return function_arn.split(":function:", 1)[-1].split(":", 1)[0]


def stream_view(table: dict[str, Any]) -> str | None:
    """The view type of a DescribeTable's enabled stream; None when it has none enabled."""
    spec = table.get("StreamSpecification") or {}
    return str(spec.get("StreamViewType")) if spec.get("StreamEnabled") else None


def reads_stream_of(mapping: dict[str, Any], table_arn: str) -> bool:
    """True when the mapping reads one of the table's streams (``<table arn>/stream/<label>``)."""
    return str(mapping.get("EventSourceArn", "")).startswith(f"{table_arn}/stream/")


def on_failure_destination(mapping: dict[str, Any]) -> str:
    """The mapping's ``DestinationConfig.OnFailure.Destination``; "" when it has none."""
    config = mapping.get("DestinationConfig") or {}
    return str((config.get("OnFailure") or {}).get("Destination") or "")


def events_mapping_problems(
    mapping: dict[str, Any], latest_stream: str, dlq_arn: str, local_runner: bool = False
) -> list[str]:
    """What is wrong with the publisher's mapping, each with what mends it; [] when nothing.

    It must be Enabled, read the table's current stream (a stream disabled and enabled again
    is a new one, with a new ARN, and the old mapping reads nothing new) and send what it gives
    up on to the events dead-letter queue. ``local_runner``: the local stack's runner feeds
    the function instead of the emulator's mapping (disabled on purpose), and reads the
    table's current stream itself (local/streams.py).
    """
    uuid, state = mapping.get("UUID"), str(mapping.get("State"))
    problems = []
    if state != "Enabled" and not (state == "Disabled" and local_runner):
        problems.append(
            f"{state}: enable it (aws lambda update-event-source-mapping --uuid {uuid} --enabled)"
        )
    source = mapping.get("EventSourceArn")
    if not local_runner and source != latest_stream:
        problems.append(
            f"it reads {source}, not the table's current stream {latest_stream}: create a"
            " mapping on the current one and delete this one"
        )
    destination = on_failure_destination(mapping)
    if destination != dlq_arn:
        problems.append(
            f"its on-failure destination is {destination or 'none'}, not {dlq_arn}, so a batch"
            f" given up on would be lost; set it (aws lambda update-event-source-mapping --uuid"
            f" {uuid} --destination-config OnFailure={{Destination={dlq_arn}}})"
        )
    return problems


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _statement_lets_bucket_send(statement: dict[str, Any], bucket: str) -> bool:
    principal = statement.get("Principal", {})
    services = _listed(principal.get("Service", [])) if isinstance(principal, dict) else []
    if statement.get("Effect") != "Allow" or S3_SERVICE not in services:
        return False
    actions = _listed(statement.get("Action", []))
    if not any(fnmatch.fnmatchcase("sqs:SendMessage", action) for action in actions):
        return False
    conditions = statement.get("Condition", {})
    patterns = [
        pattern
        for operator in _SOURCE_ARN_OPERATORS
        for pattern in _listed(conditions.get(operator, {}).get("aws:SourceArn", []))
    ]
    return not patterns or any(fnmatch.fnmatchcase(bucket, p) for p in patterns)
