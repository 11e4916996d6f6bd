"""ARNs built by hand follow the region's partition: aws, aws-cn (China), aws-us-gov (GovCloud).

The template says ``${AWS::Partition}``; everything filegate builds itself goes through
``filegate.aws.arn``. Pure: botocore's endpoint data, no network.
"""

from __future__ import annotations

import pytest

from filegate.aws import Target, arn, partition
from filegate.local.provision import _AttributeLookup
from filegate.ops.artifacts import tls_only

PARTITIONS = [
    ("us-east-1", "aws"),
    ("eu-central-1", "aws"),
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"),
    ("us-gov-east-1", "aws-us-gov"),
]


@pytest.mark.parametrize(("region", "expected"), PARTITIONS)
def test_partition_of_a_region(region: str, expected: str) -> None:
    assert partition(region) == expected


def test_a_region_botocore_does_not_know_is_in_aws() -> None:
    assert partition("xx-nowhere-1") == "aws"


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("cn-north-1", "arn:aws-cn:sqs:cn-north-1:123456789012:q"),
        ("us-gov-west-1", "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q"),
        ("eu-west-1", "arn:aws:sqs:eu-west-1:123456789012:q"),
    ],
)
def test_regional_arn(region: str, expected: str) -> None:
    assert arn("sqs", region, "q", "123456789012") == expected


def test_global_arns_name_no_region_but_keep_the_partition() -> None:
    assert arn("s3", "cn-north-1", "bucket", regional=False) == "arn:aws-cn:s3:::bucket"
    assert arn("iam", "us-gov-west-1", "role/r", "123456789012", regional=False) == (
        "arn:aws-us-gov:iam::123456789012:role/r"
    )


@pytest.mark.parametrize(
    ("region", "expected"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_the_artifact_bucket_policy_names_the_bucket_in_its_partition(
    region: str, expected: str
) -> None:
    (statement,) = tls_only("artifacts", region)["Statement"]
    assert statement["Resource"] == [
        f"arn:{expected}:s3:::artifacts",
        f"arn:{expected}:s3:::artifacts/*",
    ]


@pytest.mark.parametrize(
    ("region", "expected"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_the_local_stack_resolves_get_att_arns_in_the_regions_partition(
    region: str, expected: str
) -> None:
    types = {
        "Queue": "AWS::SQS::Queue",
        "Bucket": "AWS::S3::Bucket",
        "Function": "AWS::Lambda::Function",
        "Table": "AWS::DynamoDB::Table",
        "Key": "AWS::KMS::Key",
        "Role": "AWS::IAM::Role",
        "Logs": "AWS::Logs::LogGroup",
    }
    physical = {name: name.lower() for name in types}
    physical["Queue"] = "https://sqs/123456789012/queue"
    lookup = _AttributeLookup(
        Target(region=region), types, physical, {"AWS::AccountId": "123456789012"}
    )
    for logical_id in types:
        assert lookup(logical_id, "Arn").startswith(f"arn:{expected}:"), logical_id
