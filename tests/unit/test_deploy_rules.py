"""Pure rules behind deploys: what a stack update changes, names of functions and artifacts."""

from __future__ import annotations

import base64
import hashlib

import pytest

from filegate.errors import LocalStackError
from filegate.local.cfn_models import references, resource_diff
from filegate.local.provision import split_function
from filegate.local.runtime import code_key_for
from filegate.ops.deploy import StackEvent, failure_message

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
