"""What connects the bucket to the function: queue policies and ARNs, read without AWS."""

from __future__ import annotations

from typing import Any

import pytest

from filegate.ops.wiring import (
    bucket_arn,
    events_mapping_problems,
    function_name,
    on_failure_destination,
    partition,
    policy_lets_bucket_send,
    reads_stream_of,
    stream_view,
)

BUCKET = "arn:aws:s3:::filegate-uploads"


def statement(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:eu-central-1:123456789012:q",
        "Condition": {"ArnLike": {"aws:SourceArn": BUCKET}},
    }
    base.update(overrides)
    return base


def test_the_templates_statement_lets_the_bucket_send() -> None:
    assert policy_lets_bucket_send({"Statement": [statement()]}, BUCKET)


@pytest.mark.parametrize(
    "overrides",
    [
        {"Effect": "Deny"},
        {"Principal": {"Service": "sns.amazonaws.com"}},
        {"Principal": "*"},
        {"Action": "sqs:ReceiveMessage"},
        {"Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::another-bucket"}}},
    ],
)
def test_statements_that_do_not_let_this_bucket_send(overrides: dict[str, Any]) -> None:
    assert not policy_lets_bucket_send({"Statement": [statement(**overrides)]}, BUCKET)


@pytest.mark.parametrize(
    "overrides",
    [
        {"Action": ["sqs:*"]},
        {"Principal": {"Service": ["sns.amazonaws.com", "s3.amazonaws.com"]}},
        {"Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::filegate-*"}}},
        {"Condition": {}},
    ],
)
def test_wildcards_lists_and_no_condition_still_let_it_send(overrides: dict[str, Any]) -> None:
    assert policy_lets_bucket_send({"Statement": statement(**overrides)}, BUCKET)


def test_no_policy_lets_nothing_send() -> None:
    assert not policy_lets_bucket_send({}, BUCKET)


def test_arns() -> None:
    assert partition("arn:aws-cn:sqs:cn-north-1:1:q") == "aws-cn"
    assert partition("not-an-arn") == "aws"
    assert bucket_arn("b", "arn:aws-us-gov:sqs:us-gov-west-1:1:q") == "arn:aws-us-gov:s3:::b"
    assert function_name("arn:aws:lambda:eu-central-1:1:function:fg-ingest:live") == "fg-ingest"
    assert function_name("arn:aws:lambda:eu-central-1:1:function:fg-ingest") == "fg-ingest"


TABLE = "arn:aws:dynamodb:eu-central-1:123456789012:table/ledger"
STREAM = f"{TABLE}/stream/2026-12-07T00:00:00.000"
EVENTS_DLQ = "arn:aws:sqs:eu-central-1:123456789012:ingest-events-dlq"


def mapping(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "UUID": "u-1",
        "State": "Enabled",
        "EventSourceArn": STREAM,
        "DestinationConfig": {"OnFailure": {"Destination": EVENTS_DLQ}},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("table", "view"),
    [
        (
            {
                "StreamSpecification": {
                    "StreamEnabled": True,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                }
            },
            "NEW_AND_OLD_IMAGES",
        ),
        (
            {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}},
            "KEYS_ONLY",
        ),
        ({"StreamSpecification": {"StreamEnabled": False}}, None),
        ({}, None),
    ],
)
def test_a_tables_stream_view_is_read_only_when_enabled(
    table: dict[str, Any], view: str | None
) -> None:
    assert stream_view(table) == view


def test_the_publishers_mapping_as_the_template_leaves_it_has_no_problem() -> None:
    assert reads_stream_of(mapping(), TABLE)
    assert not reads_stream_of(mapping(), f"{TABLE}-partners")
    assert on_failure_destination(mapping()) == EVENTS_DLQ
    assert events_mapping_problems(mapping(), STREAM, EVENTS_DLQ) == []


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (mapping(State="Disabled"), "Disabled: enable it"),
        (
            mapping(EventSourceArn=f"{TABLE}/stream/2026-01-01T00:00:00.000"),
            "not the table's current stream",
        ),
        (mapping(DestinationConfig={"OnFailure": {}}), "on-failure destination is none"),
        (mapping(DestinationConfig=None), "on-failure destination is none"),
        (
            mapping(DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:x:1:other"}}),
            "is arn:aws:sqs:x:1:other, not",
        ),
    ],
)
def test_each_problem_of_the_publishers_mapping_is_named_with_what_mends_it(
    broken: dict[str, Any], says: str
) -> None:
    (problem,) = events_mapping_problems(broken, STREAM, EVENTS_DLQ)
    assert says in problem
    assert "aws lambda" in problem or "create a mapping" in problem


def test_the_local_runner_stands_for_a_disabled_mapping_and_reads_the_current_stream() -> None:
    local = mapping(State="Disabled", EventSourceArn=f"{TABLE}/stream/moto-copy")
    assert events_mapping_problems(local, STREAM, EVENTS_DLQ, local_runner=True) == []
    without = mapping(State="Disabled", DestinationConfig={"OnFailure": {}})
    (problem,) = events_mapping_problems(without, STREAM, EVENTS_DLQ, local_runner=True)
    assert "on-failure destination is none" in problem
