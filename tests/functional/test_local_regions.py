"""The local stack's artifact bucket in any region: CreateBucket's location rule, as S3 has it.

S3 refuses ``LocationConstraint=us-east-1`` (InvalidLocationConstraint) and requires a
constraint everywhere else; `filegate local up --region us-east-1` died on it.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from filegate.aws import Target
from filegate.local.provision import Provisioner
from filegate.package import Package


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-southeast-1"])
def test_the_artifact_bucket_is_created_in_the_stack_region(
    aws_env: None, tmp_path: Path, region: str
) -> None:
    zipped = tmp_path / "lambda.zip"
    zipped.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with mock_aws():
        provisioner = Provisioner(Target(region=region), "stack")

        provisioner.upload_package(Package(zipped, "0" * 64, 22), "artifacts", "lambda/code.zip")

        s3 = boto3.client("s3", region_name=region)
        location = s3.get_bucket_location(Bucket="artifacts")["LocationConstraint"]
        assert (location or "us-east-1") == region
        assert s3.head_object(Bucket="artifacts", Key="lambda/code.zip")["ContentLength"] == 22
