"""moto's per-request framework work, patched (patches/framework.py), answers as moto does."""

from __future__ import annotations

import re

import boto3
from moto import mock_aws
from moto.core import responses, utils
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api._internal import mock_random
from moto.s3.responses import S3Response
from moto.sqs.responses import SQSResponse

from filegate.local import patches
from filegate.local.patches import framework

REGION = "eu-central-1"


def test_the_cached_method_list_is_moto_s(aws_env: None) -> None:
    patches.apply()
    for response_class in (DynamoHandler, S3Response, SQSResponse):
        # moto's own function (the patch replaces the name where moto calls it, not here)
        assert responses.method_names_from_class(response_class) == (
            utils.method_names_from_class(response_class)
        )


def test_responses_carry_request_ids_of_moto_s_shape(aws_env: None) -> None:
    patches.apply()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ids = [ddb.list_tables()["ResponseMetadata"]["RequestId"] for _ in range(20)]
    assert all(re.fullmatch(r"[A-Za-z0-9]{52}", request_id) for request_id in ids), ids
    assert len(set(ids)) == len(ids)


def test_request_ids_follow_moto_s_seed() -> None:
    mock_random.seed(7)
    first = [framework.request_id() for _ in range(3)]
    mock_random.seed(7)
    again = [framework.request_id() for _ in range(3)]
    assert first == again
    assert len(set(first)) == 3


def test_the_request_id_lands_in_the_headers_given() -> None:
    headers: dict[str, str] = {}
    request_id = framework.request_id(headers)
    assert headers == {"x-amzn-requestid": request_id}
