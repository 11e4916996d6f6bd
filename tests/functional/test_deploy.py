"""`filegate deploy`, releases and rollback against in-process moto: the AWS code path.

With no endpoint, the deploy takes the path it takes on AWS: a CREATE change set built from
--parameter values, then UPDATE change sets keeping every other parameter. moto's
CloudFormation gets the models and change-set fixes the local emulator runs with
(``cfn_models.installed``). The deploys name their artifact bucket (--artifact-bucket): moto
does not evaluate ``aws:SecureTransport``, so the default bucket's TLS-only policy refuses
every request here; that bucket's creation is tested on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from builders import REGION

from filegate.aws import Target
from filegate.errors import DeployError, ReleaseError
from filegate.local import cfn_models
from filegate.ops import releases
from filegate.ops.artifacts import ArtifactStore, default_bucket_name
from filegate.ops.deploy import DeployOptions, DeployResult, StackEvent, deploy
from filegate.stackref import StackLocation, StackRef

STACK = "filegate-deploy-test"
ACCOUNT = "123456789012"
ARTIFACTS = "filegate-deploy-artifacts"
DEFAULT_ARTIFACTS = f"filegate-artifacts-{ACCOUNT}-{REGION}"
PARAMETERS = {
    "BucketName": "filegate-deploy-uploads",
    "LambdaName": "filegate-deploy-ingest",
    "DynamoTableName": "filegate-deploy-ledger",
}

# moto warns once per resource type it does not emulate; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


class Recorder:
    """A deploy observer that keeps what it was told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.events: list[StackEvent] = []

    def step(self, message: str) -> None:
        self.steps.append(message)

    def executing(self, changes: list[Any]) -> None:
        self.steps.append(f"{len(changes)} changes")

    def event(self, event: StackEvent) -> None:
        self.events.append(event)


@pytest.fixture
def cloud(aws: None) -> Iterator[StackLocation]:
    with cfn_models.installed():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield StackLocation(Target(region=REGION), STACK)


def code_zip(tmp_path: Path, marker: str) -> Path:
    path = tmp_path / f"{marker}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("filegate/ingest/handler.py", f"# {marker}\ndef lambda_handler(e, c):\n")
    return path


def run(location: StackLocation, package: Path, **options: Any) -> DeployResult:
    parameters = options.pop("parameters", PARAMETERS)
    options.setdefault("artifact_bucket", ARTIFACTS)
    return deploy(
        location,
        DeployOptions(package=package, parameters=parameters, **options),
        Recorder(),
        sleep=lambda _: None,
    )


def stack_ref(location: StackLocation) -> StackRef:
    cfn = boto3.client("cloudformation", region_name=REGION)
    outputs = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    return StackRef(location.target, STACK, {o["OutputKey"]: o["OutputValue"] for o in outputs})


def live_version() -> str:
    alias = boto3.client("lambda", region_name=REGION).get_alias(
        FunctionName=PARAMETERS["LambdaName"], Name="live"
    )
    return str(alias["FunctionVersion"])


def test_first_deploy_creates_the_stack_with_version_one_live(
    cloud: StackLocation, tmp_path: Path
) -> None:
    recorder = Recorder()
    package = code_zip(tmp_path, "one")
    options = DeployOptions(package=package, parameters=PARAMETERS, artifact_bucket=ARTIFACTS)
    result = deploy(cloud, options, recorder, sleep=lambda _: None)

    assert (result.outcome, result.change_set_type, result.stack_status) == (
        "deployed",
        "CREATE",
        "CREATE_COMPLETE",
    )
    assert result.outputs["FunctionName"] == PARAMETERS["LambdaName"]
    assert result.live_version == live_version() == "1"
    assert {c.action for c in result.changes} == {"Add"}
    assert "IngestFunctionAlias" in {e.logical_id for e in recorder.events}
    assert recorder.events[-1].status == "CREATE_COMPLETE"
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.list_change_sets(StackName=STACK)["Summaries"][0]["ExecutionStatus"] == (
        "EXECUTE_COMPLETE"
    )


def test_the_default_artifact_bucket_is_encrypted_private_and_tls_only(aws: None) -> None:
    target = Target(region=REGION)
    store = ArtifactStore(target, default_bucket_name(ACCOUNT, REGION))

    store.ensure(secure=True)
    store.ensure(secure=True)  # a second deploy finds it

    s3 = boto3.client("s3", region_name=REGION)
    assert store.bucket == DEFAULT_ARTIFACTS
    rules = s3.get_bucket_encryption(Bucket=DEFAULT_ARTIFACTS)["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=DEFAULT_ARTIFACTS)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=DEFAULT_ARTIFACTS)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_named_artifact_bucket_must_exist(cloud: StackLocation, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="artifact bucket no-such-bucket cannot be used"):
        run(cloud, code_zip(tmp_path, "one"), artifact_bucket="no-such-bucket")


def test_the_package_is_stored_under_its_digest(cloud: StackLocation, tmp_path: Path) -> None:
    package = code_zip(tmp_path, "one")

    result = run(cloud, package)

    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=ARTIFACTS, Key=result.artifact.key
    )
    assert stored["Body"].read() == package.read_bytes()
    assert result.artifact.key == f"lambda/{hashlib.sha256(package.read_bytes()).hexdigest()}.zip"


def test_the_same_code_again_changes_nothing(cloud: StackLocation, tmp_path: Path) -> None:
    package = code_zip(tmp_path, "one")
    run(cloud, package)

    again = run(cloud, package, parameters={})

    assert (again.outcome, again.changes, again.live_version) == ("no-changes", [], "1")
    cfn = boto3.client("cloudformation", region_name=REGION)
    summaries = cfn.list_change_sets(StackName=STACK)["Summaries"]
    assert [s["ExecutionStatus"] for s in summaries] == ["EXECUTE_COMPLETE"]  # none left over


def test_new_code_publishes_version_two_and_moves_live(
    cloud: StackLocation, tmp_path: Path
) -> None:
    run(cloud, code_zip(tmp_path, "one"))

    second = run(cloud, code_zip(tmp_path, "two"), parameters={})

    assert (second.outcome, second.change_set_type, second.stack_status) == (
        "deployed",
        "UPDATE",
        "UPDATE_COMPLETE",
    )
    changed = {c.logical_id: c.replacement for c in second.changes}
    assert changed["IngestFunctionVersion"] == "True"
    assert {"IngestFunction", "IngestFunctionAlias"} <= set(changed)
    assert "UploadBucket" not in changed  # an unchanged bucket is left alone
    assert second.live_version == live_version() == "2"
    parameters = boto3.client("cloudformation", region_name=REGION).describe_stacks(
        StackName=STACK
    )["Stacks"][0]["Parameters"]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in parameters}
    assert values["CodeKey"] == second.artifact.key
    assert values["BucketName"] == PARAMETERS["BucketName"]  # kept from the first deploy


def memory(qualifier: str) -> int:
    configuration = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=PARAMETERS["LambdaName"], Qualifier=qualifier
    )
    return int(configuration["MemorySize"])


def test_a_configuration_change_alone_publishes_a_version_and_moves_live(
    cloud: StackLocation, tmp_path: Path
) -> None:
    """Same code, more memory: the live alias must run the new memory, not keep version 1."""
    package = code_zip(tmp_path, "one")
    first = run(cloud, package)

    second = run(cloud, package, parameters={"IngestMemorySize": "512"})

    assert (second.outcome, second.artifact.key) == ("deployed", first.artifact.key)
    changed = {c.logical_id: c.replacement for c in second.changes}
    assert changed["IngestFunctionVersion"] == "True"
    assert second.live_version == live_version() == "2"
    assert (memory("1"), memory("2"), memory("live")) == (256, 512, 512)
    found = releases.list_releases(stack_ref(cloud))
    assert [(r.version, r.live) for r in found.versions] == [("1", False), ("2", True)]
    assert found.versions[0].description != found.versions[1].description
    again = run(cloud, package, parameters={})  # the same memory again: nothing to publish
    assert (again.outcome, again.live_version) == ("no-changes", "2")


def test_a_reservation_alone_changes_the_function_but_publishes_no_version(
    cloud: StackLocation, tmp_path: Path
) -> None:
    """Reserved concurrency is the function's, not a version's: Lambda would refuse to
    publish an unchanged version ("A version for this Lambda function exists")."""
    package = code_zip(tmp_path, "one")
    run(cloud, package)

    reserved = run(cloud, package, parameters={"IngestReservedConcurrency": "20"})

    assert reserved.outcome == "deployed"
    changed = {c.logical_id for c in reserved.changes}
    assert "IngestFunction" in changed
    assert "IngestFunctionVersion" not in changed
    # moto's stack update does not apply ReservedConcurrentExecutions to the function (its
    # update_configuration has no such key); what matters here is that nothing is published.
    assert reserved.live_version == live_version() == "1"
    versions = boto3.client("lambda", region_name=REGION).list_versions_by_function(
        FunctionName=PARAMETERS["LambdaName"]
    )["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]


def test_dry_run_shows_the_changes_and_changes_nothing(
    cloud: StackLocation, tmp_path: Path
) -> None:
    run(cloud, code_zip(tmp_path, "one"))

    planned = run(cloud, code_zip(tmp_path, "two"), parameters={}, dry_run=True)

    assert planned.outcome == "dry-run"
    assert "IngestFunctionVersion" in {c.logical_id for c in planned.changes}
    assert live_version() == "1"
    versions = boto3.client("lambda", region_name=REGION).list_versions_by_function(
        FunctionName=PARAMETERS["LambdaName"]
    )["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert len(cfn.list_change_sets(StackName=STACK)["Summaries"]) == 1  # the first deploy's


def test_a_dry_run_of_a_new_stack_leaves_no_stack(cloud: StackLocation, tmp_path: Path) -> None:
    planned = run(cloud, code_zip(tmp_path, "one"), dry_run=True)

    assert (planned.outcome, planned.change_set_type) == ("dry-run", "CREATE")
    cfn = boto3.client("cloudformation", region_name=REGION)
    live = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []


def test_a_new_stack_needs_its_required_parameters(cloud: StackLocation, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"--parameter BucketName=.*--parameter LambdaName="):
        run(cloud, code_zip(tmp_path, "one"), parameters={"DynamoTableName": "t"})

    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.list_stacks()["StackSummaries"] == []
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=ARTIFACTS)
    assert listed.get("Contents", []) == []  # refused before anything was uploaded


def test_an_unknown_parameter_is_refused(cloud: StackLocation, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no parameter Colour"):
        run(cloud, code_zip(tmp_path, "one"), parameters={**PARAMETERS, "Colour": "blue"})


def test_a_package_that_is_not_a_zip_is_refused(cloud: StackLocation, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a zip")

    with pytest.raises(DeployError, match="is not a zip file"):
        run(cloud, text)
    with pytest.raises(DeployError, match="does not exist"):
        run(cloud, tmp_path / "missing.zip")

    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=ARTIFACTS)
    assert listed.get("Contents", []) == []


def test_releases_list_every_version_and_the_live_one(cloud: StackLocation, tmp_path: Path) -> None:
    run(cloud, code_zip(tmp_path, "one"))
    second = run(cloud, code_zip(tmp_path, "two"), parameters={})

    found = releases.list_releases(stack_ref(cloud))

    assert [(r.version, r.live) for r in found.versions] == [("1", False), ("2", True)]
    assert found.versions[1].description.endswith(f", code {second.artifact.key}")
    assert re.search(r"configuration [0-9a-f]{16},", found.versions[1].description)
    assert found.live_version == "2"


def test_rollback_moves_live_to_the_previous_version_then_refuses(
    cloud: StackLocation, tmp_path: Path
) -> None:
    run(cloud, code_zip(tmp_path, "one"))
    run(cloud, code_zip(tmp_path, "two"), parameters={})
    ref = stack_ref(cloud)

    done = releases.rollback(ref)

    assert (done.from_version, done.to_version, done.changed) == ("2", "1", True)
    assert live_version() == "1"
    with pytest.raises(ReleaseError, match=r"no version .* is older than the live one"):
        releases.rollback(ref)
    assert live_version() == "1"


def test_rollback_to_a_chosen_version(cloud: StackLocation, tmp_path: Path) -> None:
    run(cloud, code_zip(tmp_path, "one"))
    run(cloud, code_zip(tmp_path, "two"), parameters={})
    run(cloud, code_zip(tmp_path, "three"), parameters={})
    ref = stack_ref(cloud)

    assert releases.rollback(ref, to="1").to_version == "1"
    assert releases.rollback(ref, to="3").as_dict()["changed"] is True
    assert releases.rollback(ref, to="3").changed is False  # already live: nothing moves
    for wrong in ("99", "0", "$LATEST", "live"):
        with pytest.raises(ReleaseError, match=re.escape(f"has no version '{wrong}'")):
            releases.rollback(ref, to=wrong)
    assert live_version() == "3"


def test_a_new_deploy_after_a_rollback_moves_live_forward(
    cloud: StackLocation, tmp_path: Path
) -> None:
    run(cloud, code_zip(tmp_path, "one"))
    run(cloud, code_zip(tmp_path, "two"), parameters={})
    releases.rollback(stack_ref(cloud))

    third = run(cloud, code_zip(tmp_path, "three"), parameters={})

    assert third.live_version == live_version() == "3"
