"""`filegate deploy`, releases and rollback against in-process moto: the AWS code path.

With no endpoint, the deploy takes the path it takes on AWS: a CREATE change set built from
--parameter values, then UPDATE change sets keeping every other parameter. CloudFormation is
the emulator's (``twin``): moto's app in filegate's middleware, which serves the change sets,
with the models and seams the local emulator runs with (``cfn_models.installed``). The
deploys name their artifact bucket (--artifact-bucket): moto does not evaluate
``aws:SecureTransport``, so the default bucket's TLS-only policy refuses every request here;
that bucket's creation is tested on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from builders import REGION
from werkzeug.serving import make_server

from filegate import template as cfn_template
from filegate.aws import Target
from filegate.errors import DeployError, ReleaseError
from filegate.local import cfn_models
from filegate.local.emulator import application
from filegate.local.moto_server import moto_application
from filegate.local.processes import free_port
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

# The reservations a user opts into (nothing is reserved by default): 20 + 10 executions.
RESERVING = {**PARAMETERS, "IngestReservedConcurrency": "20", "UploadApiReservedConcurrency": "10"}

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
def twin(aws: None) -> Iterator[str]:
    """The emulator's composed app (moto's app and filegate's middleware) served in this
    process, on moto with the models and seams the local emulator runs with
    (``cfn_models.installed``): CloudFormation's change sets are middleware
    (``local/cfn_change_sets.py``), and GetAccountSettings, which moto lacks, too
    (``local/lambda_account.py``)."""
    with cfn_models.installed():
        app = application(moto_application())
        server = make_server("127.0.0.1", free_port(), app, threaded=True)
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, each test
        serving = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        serving.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()


@pytest.fixture
def cloud(twin: str, monkeypatch: pytest.MonkeyPatch) -> StackLocation:
    """The AWS code path: no endpoint; CloudFormation (every client of it, the tests' own
    too) reaches the composed app, every other service in-process moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", twin)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
    return StackLocation(Target(region=REGION), STACK)


@pytest.fixture
def served(cloud: StackLocation, twin: str) -> StackLocation:
    """The same cloud with every service through the composed app."""
    return StackLocation(Target(region=REGION, endpoint_url=twin), STACK)


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


def test_an_executed_change_set_gives_the_stack_its_template_s_outputs(
    cloud: StackLocation, tmp_path: Path
) -> None:
    # moto left a stack created through a change set without outputs, and an updated one with
    # its old outputs and parameters; CloudFormation gives it the template's.
    run(cloud, code_zip(tmp_path, "one"))
    stack = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=STACK)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}
    assert outputs["FunctionName"] == PARAMETERS["LambdaName"]
    assert outputs["BucketName"] == PARAMETERS["BucketName"]


def test_each_resource_a_change_set_creates_gets_its_own_stack_event(
    cloud: StackLocation, tmp_path: Path
) -> None:
    # moto wrote only the stack's own events; CloudFormation writes one per resource, before
    # the stack's CREATE_COMPLETE.
    run(cloud, code_zip(tmp_path, "one"))
    events = stack_events()
    assert {("IngestFunction", "CREATE_COMPLETE"), ("LedgerTable", "CREATE_COMPLETE")} <= set(
        events
    )
    assert events[-1] == (STACK, "CREATE_COMPLETE")


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


# ---------------------------------------------------------------- a failed first create


def stack_events(stack: str = STACK) -> list[tuple[str, str]]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"]) for e in reversed(events)]


def test_a_failed_first_create_rolls_back_and_deleting_it_lets_the_retry_create(
    cloud: StackLocation, tmp_path: Path
) -> None:
    # GIVEN a bucket of the chosen name that exists outside the stack
    s3 = boto3.client("s3", region_name=REGION)
    taken = {"LocationConstraint": REGION}
    s3.create_bucket(Bucket=PARAMETERS["BucketName"], CreateBucketConfiguration=taken)

    # WHEN the first deploy runs, THEN the create fails on the bucket and is rolled back
    with pytest.raises(DeployError, match=r"ROLLBACK_COMPLETE: UploadBucket: .*not available"):
        run(cloud, code_zip(tmp_path, "one"))
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    events = stack_events()
    assert ("UploadBucket", "CREATE_FAILED") in events
    assert events.index((STACK, "ROLLBACK_IN_PROGRESS")) < events.index(
        ("IngestQueue", "DELETE_COMPLETE")
    )
    assert events[-1] == (STACK, "ROLLBACK_COMPLETE")
    # what the create had made is gone: the retry's names are free
    assert boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", []) == []
    aliases = boto3.client("kms", region_name=REGION).list_aliases()["Aliases"]
    assert not [a for a in aliases if a["AliasName"].startswith("alias/filegate/")]
    assert cfn.describe_stack_resources(StackName=STACK)["StackResources"] == []

    # WHEN the obstacle is removed and the same deploy runs again
    s3.delete_bucket(Bucket=PARAMETERS["BucketName"])
    recorder = Recorder()
    options = DeployOptions(code_zip(tmp_path, "one"), PARAMETERS, ARTIFACTS)
    retried = deploy(cloud, options, recorder, sleep=lambda _: None)

    # THEN the rolled-back stack was deleted and the stack created anew
    assert (retried.stack_status, retried.replaced_failed_create, retried.live_version) == (
        "CREATE_COMPLETE",
        True,
        "1",
    )
    assert any("ROLLBACK_COMPLETE: its first create failed" in s for s in recorder.steps)
    statuses = [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]]
    assert sorted(statuses) == ["CREATE_COMPLETE", "DELETE_COMPLETE"]


def test_a_dry_run_on_a_failed_create_says_what_a_deploy_would_do_and_deletes_nothing(
    cloud: StackLocation, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    taken = {"LocationConstraint": REGION}
    s3.create_bucket(Bucket=PARAMETERS["BucketName"], CreateBucketConfiguration=taken)
    with pytest.raises(DeployError, match="ROLLBACK_COMPLETE"):
        run(cloud, code_zip(tmp_path, "one"))

    planned = run(cloud, code_zip(tmp_path, "one"), dry_run=True)

    assert (planned.outcome, planned.replaced_failed_create) == ("dry-run", True)
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"


def test_a_stack_that_once_completed_is_never_deleted(cloud: StackLocation, tmp_path: Path) -> None:
    # A stack can only be ROLLBACK_COMPLETE after a failed create; were its events to show a
    # completed create anyway, the deploy refuses rather than delete it.
    run(cloud, code_zip(tmp_path, "one"))
    cfn_backend = _cfn_backend()
    (stack,) = cfn_backend.stacks.values()
    stack.status = "ROLLBACK_COMPLETE"

    with pytest.raises(DeployError, match="once completed CREATE_COMPLETE"):
        run(cloud, code_zip(tmp_path, "two"), parameters={})

    assert live_version() == "1"
    assert stack.stack_id in cfn_backend.stacks  # still there


def _cfn_backend() -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[ACCOUNT][REGION]


POLICY_TEMPLATE = """
Resources:
  KeptQueue:
    Type: AWS::SQS::Queue
    DeletionPolicy: Retain
    Properties: {QueueName: kept}
  NewQueue:
    Type: AWS::SQS::Queue
    DeletionPolicy: RetainExceptOnCreate
    Properties: {QueueName: retain-except-on-create}
  PlainQueue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: plain}
  Bucket:
    Type: AWS::S3::Bucket
    Properties: {BucketName: filegate-policy-test}
"""


def create_policy_stack(name: str, template: str = POLICY_TEMPLATE) -> str:
    cfn = boto3.client("cloudformation", region_name=REGION)
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=template
    )["Id"]
    cfn.execute_change_set(ChangeSetName=change_set)
    return str(cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])


def queue_names() -> set[str]:
    urls = boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}


def test_a_create_rollback_keeps_retain_and_deletes_retain_except_on_create(
    cloud: StackLocation,
) -> None:
    # AWS: RetainExceptOnCreate resources are deleted when the create that made them rolls
    # back; Retain ones are kept (DeletionPolicy attribute).
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="filegate-policy-test", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    assert create_policy_stack("policies") == "ROLLBACK_COMPLETE"

    assert queue_names() == {"kept"}
    events = stack_events("policies")
    assert ("KeptQueue", "DELETE_SKIPPED") in events
    assert {("NewQueue", "DELETE_COMPLETE"), ("PlainQueue", "DELETE_COMPLETE")} <= set(events)


def test_a_stack_delete_keeps_retain_except_on_create_resources(cloud: StackLocation) -> None:
    # AWS: RetainExceptOnCreate behaves like Retain for every stack operation but the create
    # that made the resource; moto deleted such resources with the stack.
    assert create_policy_stack("policies") == "CREATE_COMPLETE"

    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="policies")

    assert queue_names() == {"kept", "retain-except-on-create"}


def test_a_stack_delete_after_a_failed_update_keeps_retain_except_on_create_resources(
    cloud: StackLocation,
) -> None:
    # Only the rollback of the create that made a resource deletes it; an update whose added
    # resource failed is no such create.
    without_bucket = POLICY_TEMPLATE.split("  Bucket:", maxsplit=1)[0]
    assert create_policy_stack("policies", without_bucket) == "CREATE_COMPLETE"
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="filegate-policy-test", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    cfn = boto3.client("cloudformation", region_name=REGION)
    update = cfn.create_change_set(
        StackName="policies",
        ChangeSetName="c2",
        ChangeSetType="UPDATE",
        TemplateBody=POLICY_TEMPLATE,
    )["Id"]
    with pytest.raises(ClientError, match="BucketAlreadyExists"):
        cfn.execute_change_set(ChangeSetName=update)  # a failed update is not rolled back

    cfn.delete_stack(StackName="policies")

    assert queue_names() == {"kept", "retain-except-on-create"}


def test_a_rolled_back_stack_refuses_an_update_change_set(cloud: StackLocation) -> None:
    # AWS: ROLLBACK_COMPLETE exists only after a failed create, and only a delete is possible
    # (user guide, stack status codes); moto took an UPDATE change set on such a stack.
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="filegate-policy-test", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    assert create_policy_stack("policies") == "ROLLBACK_COMPLETE"
    cfn = boto3.client("cloudformation", region_name=REGION)

    with pytest.raises(ClientError) as refused:
        cfn.create_change_set(
            StackName="policies",
            ChangeSetName="c2",
            ChangeSetType="UPDATE",
            TemplateBody=POLICY_TEMPLATE,
        )

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert "is in ROLLBACK_COMPLETE state and can not be updated" in error["Message"]
    assert cfn.describe_stacks(StackName="policies")["Stacks"][0]["StackStatus"] == (
        "ROLLBACK_COMPLETE"
    )


def test_the_stack_id_a_create_change_set_gave_names_the_created_stack(
    cloud: StackLocation,
) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    created = cfn.create_change_set(
        StackName="policies",
        ChangeSetName="c1",
        ChangeSetType="CREATE",
        TemplateBody=POLICY_TEMPLATE,
    )
    reviewed = cfn.describe_stacks(StackName=created["StackId"])["Stacks"][0]
    assert reviewed["StackStatus"] == "REVIEW_IN_PROGRESS"

    cfn.execute_change_set(ChangeSetName=created["Id"])

    stack = cfn.describe_stacks(StackName=created["StackId"])["Stacks"][0]
    assert (stack["StackName"], stack["StackStatus"]) == ("policies", "CREATE_COMPLETE")
    assert queue_names() == {"kept", "retain-except-on-create", "plain"}


def test_a_change_set_s_tags_are_the_stack_s(cloud: StackLocation) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    tags = [{"Key": "team", "Value": "ingest"}]
    created = cfn.create_change_set(
        StackName="policies",
        ChangeSetName="c1",
        ChangeSetType="CREATE",
        TemplateBody=POLICY_TEMPLATE,
        Tags=tags,
    )

    cfn.execute_change_set(ChangeSetName=created["Id"])

    assert cfn.describe_stacks(StackName="policies")["Stacks"][0]["Tags"] == tags


# ---------------------------------------------------------------- the account preflight


def preflight_rows(result: DeployResult) -> dict[str, bool]:
    return {check.name: check.passed for check in result.preflight}


def nothing_was_created() -> bool:
    cfn = boto3.client("cloudformation", region_name=REGION)
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=ARTIFACTS)
    return cfn.list_stacks()["StackSummaries"] == [] and listed.get("Contents", []) == []


def test_a_dry_run_reports_the_preflight(served: StackLocation, tmp_path: Path) -> None:
    planned = run(served, code_zip(tmp_path, "one"), dry_run=True, parameters=RESERVING)

    assert preflight_rows(planned) == {
        "template size": True,
        "function URLs in region": True,
        "unreserved concurrency": True,
    }
    (concurrency,) = [c for c in planned.preflight if c.name == "unreserved concurrency"]
    assert "account limit 1000, unreserved 1000; the template reserves 30" in concurrency.detail


def test_an_account_without_concurrency_headroom_fails_the_preflight(
    served: StackLocation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a new account's concurrency limit (the twin reports what the variable says)
    monkeypatch.setenv("FILEGATE_LOCAL_LAMBDA_CONCURRENCY", "50")

    planned = run(served, code_zip(tmp_path, "one"), dry_run=True, parameters=RESERVING)

    assert planned.outcome == "preflight-failed"
    assert preflight_rows(planned)["unreserved concurrency"] is False
    (failed,) = [c for c in planned.preflight if not c.passed]
    assert "Concurrent executions" in failed.remedy
    with pytest.raises(DeployError, match=r"would fail to deploy.*unreserved concurrency"):
        run(served, code_zip(tmp_path, "one"), parameters=RESERVING)
    assert nothing_was_created()


def test_the_default_template_deploys_on_a_new_account(
    served: StackLocation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the smallest concurrency limit new accounts get; nothing is reserved by default
    monkeypatch.setenv("FILEGATE_LOCAL_LAMBDA_CONCURRENCY", "10")

    deployed = run(served, code_zip(tmp_path, "one"))

    assert (deployed.stack_status, preflight_rows(deployed)["unreserved concurrency"]) == (
        "CREATE_COMPLETE",
        True,
    )


def test_an_update_counts_back_what_the_stack_reserves_already(
    served: StackLocation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(served, code_zip(tmp_path, "one"), parameters=RESERVING)  # reserves 20 + 10
    monkeypatch.setenv("FILEGATE_LOCAL_LAMBDA_CONCURRENCY", "130")  # 100 left unreserved

    second = run(served, code_zip(tmp_path, "two"), parameters={})

    assert (second.stack_status, preflight_rows(second)["unreserved concurrency"]) == (
        "UPDATE_COMPLETE",
        True,
    )


def test_a_region_without_function_urls_is_refused_before_anything_is_created(
    aws: None, tmp_path: Path
) -> None:
    with cfn_models.installed():
        region = "eu-central-2"  # Zurich: no AWS::Lambda::Url
        s3 = boto3.client("s3", region_name=region)
        s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": region})
        location = StackLocation(Target(region=region), STACK)

        with pytest.raises(DeployError, match="AWS::Lambda::Url does not exist in eu-central-2"):
            run(location, code_zip(tmp_path, "one"))

        cfn = boto3.client("cloudformation", region_name=region)
        assert cfn.list_stacks()["StackSummaries"] == []
        assert s3.list_objects_v2(Bucket=ARTIFACTS).get("Contents", []) == []


RESERVING_TEMPLATE = """
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - {Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}
  Reserving:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: reserving
      Runtime: python3.12
      Handler: index.handler
      Role: !GetAtt Role.Arn
      Code: {ZipFile: "def handler(event, context):\\n    return None\\n"}
      ReservedConcurrentExecutions: 20
"""


@pytest.mark.parametrize(
    ("limit", "status"), [(120, "CREATE_COMPLETE"), (119, "ROLLBACK_COMPLETE")]
)
def test_a_reservation_the_account_cannot_give_fails_the_create(
    cloud: StackLocation, monkeypatch: pytest.MonkeyPatch, limit: int, status: str
) -> None:
    # AWS: Lambda keeps 100 unreserved, so reserving 20 needs an account limit of 120; the
    # twin refuses it as Lambda does, even for a stack created without filegate's preflight.
    monkeypatch.setenv("FILEGATE_LOCAL_LAMBDA_CONCURRENCY", str(limit))
    cfn = boto3.client("cloudformation", region_name=REGION)
    change_set = cfn.create_change_set(
        StackName="reserving",
        ChangeSetName="c1",
        ChangeSetType="CREATE",
        TemplateBody=RESERVING_TEMPLATE,
    )["Id"]

    cfn.execute_change_set(ChangeSetName=change_set)

    assert cfn.describe_stacks(StackName="reserving")["Stacks"][0]["StackStatus"] == status
    events = cfn.describe_stack_events(StackName="reserving")["StackEvents"]
    reasons = [
        e.get("ResourceStatusReason", "") for e in events if e["ResourceStatus"] == "CREATE_FAILED"
    ]
    if status == "ROLLBACK_COMPLETE":
        assert reasons == [
            "Specified ReservedConcurrentExecutions for function decreases account's"
            " UnreservedConcurrentExecution below its minimum value of [100]."
        ]
        functions = boto3.client("lambda", region_name=REGION).list_functions()["Functions"]
        assert functions == []
    else:
        assert reasons == []


# ---------------------------------------------------------------- the template through S3


def stored_template(text: str) -> tuple[str, bytes]:
    """The template's content-addressed key in the artifact bucket, and what that object holds."""
    key = f"filegate/templates/{hashlib.sha256(text.encode()).hexdigest()}.yml"
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=ARTIFACTS, Key=key)["Body"]
    return key, body.read()


def stack_template() -> str:
    cfn = boto3.client("cloudformation", region_name=REGION)
    return str(cfn.get_template(StackName=STACK)["TemplateBody"])


def test_the_change_set_reads_the_exact_template_from_the_artifact_bucket(
    served: StackLocation, tmp_path: Path
) -> None:
    text = cfn_template.template_text()

    result = run(served, code_zip(tmp_path, "one"))

    assert result.stack_status == "CREATE_COMPLETE"
    key, stored = stored_template(text)
    assert stored == text.encode()  # the exact bytes, comments included
    assert result.template is not None
    assert result.template.url == f"https://{ARTIFACTS}.s3.{REGION}.amazonaws.com/{key}"
    # CloudFormation read the stack's template from that object: the same text
    assert stack_template() == text


def test_a_template_over_51200_bytes_deploys_through_s3_on_the_twin(
    served: StackLocation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the template grown past the inline limit even without its comment lines
    # (Metadata is part of the document; comments alone would also do it now)
    grown = cfn_template.template_text() + "Metadata:\n  Notes: " + "n" * 52_000 + "\n"
    without_comments = [ln for ln in grown.splitlines() if not ln.lstrip().startswith("#")]
    assert len("\n".join(without_comments).encode()) > 51_200
    monkeypatch.setattr(cfn_template, "template_text", lambda: grown)

    result = run(served, code_zip(tmp_path, "one"))

    assert (result.outcome, result.stack_status) == ("deployed", "CREATE_COMPLETE")
    assert [c.passed for c in result.preflight if c.name == "template size"] == [True]
    assert stored_template(grown)[1] == grown.encode()
    assert stack_template() == grown
    assert result.outputs["FunctionName"] == PARAMETERS["LambdaName"]


def test_a_template_url_naming_no_object_is_refused_as_cloudformation_refuses_it(
    cloud: StackLocation,
) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    missing = f"https://{ARTIFACTS}.s3.{REGION}.amazonaws.com/filegate/templates/missing.yml"

    with pytest.raises(ClientError) as refused:
        cfn.create_change_set(
            StackName=STACK, ChangeSetName="c1", ChangeSetType="CREATE", TemplateURL=missing
        )

    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "ValidationError",
        "TemplateURL must reference a valid S3 object to which you have access.",
    )
    assert cfn.list_stacks()["StackSummaries"] == []


def test_the_twin_refuses_a_template_body_over_51200_bytes_as_cloudformation_does(
    served: StackLocation,
) -> None:
    cfn = served.target.client("cloudformation")
    small = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
    at_limit = small + "#" * (51_200 - len(small))
    over = at_limit + "#"

    with pytest.raises(ClientError) as refused:
        cfn.create_change_set(
            StackName=STACK, ChangeSetName="big", ChangeSetType="CREATE", TemplateBody=over
        )
    error = refused.value.response["Error"]
    assert (error["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ValidationError",
        400,
    )
    assert "Member must have length less than or equal to 51200" in error["Message"]
    with pytest.raises(ClientError):
        cfn.validate_template(TemplateBody=over)
    assert cfn.list_stacks()["StackSummaries"] == []  # nothing was created
    # 51,200 bytes exactly is accepted
    cfn.create_change_set(
        StackName=STACK, ChangeSetName="fits", ChangeSetType="CREATE", TemplateBody=at_limit
    )
    assert [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]] == [STACK]
