"""What connects the bucket to the function: queue policies and ARNs, read without AWS."""

from __future__ import annotations

from typing import Any

import pytest

from filegate.ops.wiring import bucket_arn, function_name, partition, policy_lets_bucket_send

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
