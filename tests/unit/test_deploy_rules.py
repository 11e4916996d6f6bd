"""Pure rules behind deploys: what a stack update changes, names of functions and artifacts,
the account preflight's checks."""

from __future__ import annotations

import base64
import hashlib

import pytest

from filegate import template as cfn
from filegate.errors import LocalStackError
from filegate.local.cfn_template_size import refusal
from filegate.local.change_sets import references, resource_diff
from filegate.local.lambda_account import account_settings, reservation_refused
from filegate.local.provision import split_function
from filegate.local.runtime import code_key_for
from filegate.ops import preflight
from filegate.ops.artifacts import template_key, template_url
from filegate.ops.deploy import StackEvent, failure_message, template_reservations

FUNCTION = {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": {"Ref": "CodeKey"}}}}
VERSION = {
    "Type": "AWS::Lambda::Version",
    "Properties": {"FunctionName": {"Ref": "Fn"}, "Description": {"Fn::Sub": "code ${CodeKey}"}},
}
ALIAS = {
    "Type": "AWS::Lambda::Alias",
    "Properties": {"FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}, "Name": "live"},
}
MAPPING = {
    "Type": "AWS::Lambda::EventSourceMapping",
    "Properties": {"FunctionName": {"Ref": "Alias"}},
}
BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Ref": "BucketName"}}}
RESOURCES = {
    "Fn": FUNCTION,
    "Version": VERSION,
    "Alias": ALIAS,
    "Mapping": MAPPING,
    "Bucket": BUCKET,
}


def test_references_see_ref_getatt_and_sub_variables() -> None:
    fragment = {"A": [{"Ref": "X"}, {"Fn::GetAtt": "Y.Arn"}, {"Fn::Sub": "${Z}-${W.Arn}"}]}
    assert references(fragment) == {"X", "Y", "Z", "W"}
    assert references({"Fn::Sub": ["${V}", {"V": {"Ref": "P"}}]}) == {"V", "P"}


def test_new_code_updates_function_replaces_version_and_moves_alias_only() -> None:
    diff = resource_diff(RESOURCES, RESOURCES, changed_parameters={"CodeKey"})
    assert diff == {"Add": [], "Modify": ["Fn", "Version", "Alias"], "Remove": []}


def test_nothing_changed_means_no_changes() -> None:
    assert resource_diff(RESOURCES, RESOURCES, set()) == {"Add": [], "Modify": [], "Remove": []}


def test_template_edits_add_remove_and_modify() -> None:
    old = {"Bucket": BUCKET, "Mapping": MAPPING}
    edited = {**MAPPING, "Properties": {"FunctionName": {"Ref": "Alias"}, "BatchSize": 5}}
    new = {"Mapping": edited, "Alias": ALIAS}
    assert resource_diff(old, new, set()) == {
        "Add": ["Alias"],
        "Modify": ["Mapping"],
        "Remove": ["Bucket"],
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("filegate-ingest", ("filegate-ingest", None)),
        ("filegate-ingest:live", ("filegate-ingest", "live")),
        (
            "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest",
            ("filegate-ingest", None),
        ),
        (
            "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest:3",
            ("filegate-ingest", "3"),
        ),
    ],
)
def test_split_function(given: str, expected: tuple[str, str | None]) -> None:
    assert split_function(given) == expected


def test_code_key_from_lambda_digest_or_hex() -> None:
    digest = hashlib.sha256(b"zip bytes")
    from_lambda = base64.b64encode(digest.digest()).decode()
    assert code_key_for(from_lambda) == f"lambda/{digest.hexdigest()}.zip"
    assert code_key_for(digest.hexdigest()) == f"lambda/{digest.hexdigest()}.zip"
    with pytest.raises(LocalStackError, match="not a SHA-256 digest"):
        code_key_for("not base64!")


def test_a_failed_update_names_each_failed_resource_and_its_reason() -> None:
    events = [
        StackEvent("t1", "IngestFunction", "AWS::Lambda::Function", "UPDATE_IN_PROGRESS"),
        StackEvent("t2", "IngestFunction", "AWS::Lambda::Function", "UPDATE_FAILED", "No access"),
        StackEvent("t3", "LedgerTable", "AWS::DynamoDB::Table", "UPDATE_FAILED", ""),
        StackEvent("t4", "stack", "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE"),
    ]
    message = failure_message("stack", "UPDATE_ROLLBACK_COMPLETE", events)
    assert message == "stack stack ended in UPDATE_ROLLBACK_COMPLETE: IngestFunction: No access"
    assert "describe-stack-events --stack-name s" in failure_message("s", "ROLLBACK_COMPLETE", [])


def test_a_rolled_back_create_says_the_next_deploy_retries_it() -> None:
    events = [StackEvent("t", "UploadBucket", "AWS::S3::Bucket", "CREATE_FAILED", "exists")]
    message = failure_message("s", "ROLLBACK_COMPLETE", events)
    assert message.startswith("stack s ended in ROLLBACK_COMPLETE: UploadBucket: exists.")
    assert "run `filegate deploy` again: it deletes the empty stack s" in message


# ---------------------------------------------------------------- the account preflight

RESERVING = {
    "Parameters": {
        "ApiReserved": {"Type": "Number", "Default": "-1"},
        "IngestReserved": {"Type": "Number", "Default": 20},
    },
    "Conditions": {"ApiReserves": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReserved"}, "-1"]}]}},
    "Resources": {
        "Plain": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"ReservedConcurrentExecutions": 5},
        },
        "Ingest": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"ReservedConcurrentExecutions": {"Ref": "IngestReserved"}},
        },
        "Api": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "ReservedConcurrentExecutions": {
                    "Fn::If": ["ApiReserves", {"Ref": "ApiReserved"}, {"Ref": "AWS::NoValue"}]
                }
            },
        },
        "Unreserved": {"Type": "AWS::Lambda::Function", "Properties": {}},
    },
}


def test_reservations_are_read_from_the_resolved_template() -> None:
    reserved, knobs = template_reservations(RESERVING, {}, "eu-central-1")
    assert reserved == {"Plain": 5, "Ingest": 20}  # the API's resolves to AWS::NoValue: none
    assert knobs == ["ApiReserved", "IngestReserved"]
    given = {"ApiReserved": "10", "IngestReserved": "3"}
    assert template_reservations(RESERVING, given, "eu-central-1")[0] == {
        "Plain": 5,
        "Ingest": 3,
        "Api": 10,
    }


def test_the_shipped_template_reservations_resolve() -> None:
    reserved, _ = template_reservations(cfn.load(), {}, "us-east-1")
    assert all(isinstance(count, int) and count >= 0 for count in reserved.values())


class _Account:
    def __init__(self, limit: int, reserved: int = 0) -> None:
        self.answer = {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": limit - reserved,
            }
        }

    def get_account_settings(self) -> dict[str, object]:
        return self.answer


@pytest.mark.parametrize(
    ("limit", "reserved_elsewhere", "already", "passed"),
    [
        (1000, 0, 0, True),
        (130, 0, 0, True),  # 130 - 30 = 100 stays unreserved: the least Lambda allows
        (129, 0, 0, False),
        (50, 0, 0, False),  # a new account's quota
        (1000, 871, 0, False),  # other functions of the account reserve the room
        (130, 30, 30, True),  # an update: this stack's own reservations are counted back
    ],
)
def test_unreserved_concurrency_must_stay_at_least_100(
    limit: int, reserved_elsewhere: int, already: int, passed: bool
) -> None:
    account = _Account(limit, reserved_elsewhere)
    now = {"Ingest": already} if already else {}
    check = preflight.unreserved_concurrency(account, {"Ingest": 20, "Api": 10}, now, ["X"])
    assert check.passed is passed
    assert ("--parameter X" in check.remedy) is (not passed)


def test_a_template_that_reserves_nothing_needs_no_headroom() -> None:
    check = preflight.unreserved_concurrency(_Account(10), {}, {}, [])
    assert (check.passed, check.detail) == (True, "the template reserves no concurrency")


def test_a_template_read_through_templateurl_may_have_1_mb_not_51200_bytes() -> None:
    assert preflight.template_size("x" * 51_201).passed  # over the inline limit: irrelevant
    assert preflight.template_size("x" * 1_000_000).passed
    too_big = preflight.template_size("é" * 500_001)  # 1,000,002 bytes: the limit is in bytes
    assert not too_big.passed
    assert "TemplateURL" in too_big.detail
    assert "nested" in too_big.remedy


@pytest.mark.parametrize(
    ("region", "passed"),
    [("eu-central-1", True), ("us-east-1", True), ("eu-central-2", False), ("il-central-1", False)],
)
def test_function_urls_exist_only_in_some_regions(region: str, passed: bool) -> None:
    assert preflight.function_urls(region, cfn.load()).passed is passed
    assert preflight.function_urls(region, {"Resources": {}}).passed


def test_the_twin_reports_account_settings_as_lambda_does() -> None:
    functions = [
        {"FunctionName": "a", "ReservedConcurrentExecutions": 20, "CodeSize": 100},
        {"FunctionName": "b", "CodeSize": 50},
    ]
    answer = account_settings(functions, 1000)
    assert answer["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert answer["AccountLimit"]["UnreservedConcurrentExecutions"] == 980
    assert answer["AccountUsage"] == {"TotalCodeSize": 150, "FunctionCount": 2}


def test_the_twin_refuses_a_reservation_as_lambda_does() -> None:
    account = {"other": 30, "again": 5, "free": 0}
    assert reservation_refused(account, "new", 10, 145) is None  # 145 - 35 - 10 = 100
    assert "minimum value of [100]" in str(reservation_refused(account, "new", 11, 145))
    assert reservation_refused(account, "again", 15, 145) is None  # its own 5 is replaced
    assert reservation_refused(account, "new", 0, 10) is None  # no reservation, no check


def test_the_template_is_sent_with_its_comments_and_fits_templateurl() -> None:
    text = cfn.template_text()

    assert [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert preflight.template_size(text).passed


@pytest.mark.parametrize(
    ("bucket", "region", "url"),
    [
        ("code", "us-east-1", "https://code.s3.us-east-1.amazonaws.com/k.yml"),
        ("code", "eu-central-1", "https://code.s3.eu-central-1.amazonaws.com/k.yml"),
        ("code", "cn-north-1", "https://code.s3.cn-north-1.amazonaws.com.cn/k.yml"),
        ("code", "us-gov-west-1", "https://code.s3.us-gov-west-1.amazonaws.com/k.yml"),
        ("my.code", "eu-west-1", "https://s3.eu-west-1.amazonaws.com/my.code/k.yml"),
    ],
)
def test_the_template_url_is_the_objects_regional_https_url(
    bucket: str, region: str, url: str
) -> None:
    # virtual-hosted and regional in every region, us-east-1 included; path-style for a
    # dotted bucket, which S3's wildcard certificate does not match
    assert template_url(bucket, region, "k.yml") == url


def test_the_template_key_is_its_sha256() -> None:
    text = cfn.template_text().encode()
    assert template_key(hashlib.sha256(text).hexdigest()) == (
        f"filegate/templates/{hashlib.sha256(text).hexdigest()}.yml"
    )


def test_the_twin_counts_an_inline_template_in_bytes_as_cloudformation_does() -> None:
    assert refusal("é" * 25_600) is None  # 51,200 bytes
    message = refusal("é" * 25_601)  # 51,202 bytes, 25,601 characters
    assert message is not None
    assert message.startswith("1 validation error detected: Value '")
    assert message.endswith(
        "at 'templateBody' failed to satisfy constraint: Member must have length less than or"
        " equal to 51200"
    )
