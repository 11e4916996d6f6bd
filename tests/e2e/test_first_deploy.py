"""A first deploy rehearsed as a user makes it on a fresh AWS account, on an empty emulator.

``filegate local up --empty`` starts the emulator with no stack (a fresh account); the tests
then run the README's command, ``filegate deploy --region R --parameter BucketName=...
--parameter LambdaName=... --parameter DynamoTableName=... --parameter AlertEmail=...``, with
only ``--endpoint-url`` added to reach the emulator, then ``filegate verify``, whose smoke
upload must be recorded by the deployed function (the supervisor runs the stack once the
deploy has created it). In us-east-1 (no LocationConstraint) and eu-central-1.

A second scenario makes the first create fail as it would on AWS, with names already taken
outside the stack: a bucket of the chosen name, and the log group a deleted function of the
same name left behind (Lambda keeps a function's log group). The create fails on the bucket
and rolls back to ROLLBACK_COMPLETE; once the bucket is gone, the same command deletes the
rolled-back stack and fails again, later, on the log group (the tables made before it are
rolled back too); once that is gone, it creates the stack and verify passes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from filegate.aws import Target
from tests.e2e.conftest import filegate, free_port

REGIONS = ["us-east-1", "eu-central-1"]
STACK = "s3-lambda-dynamo-stack"  # the default stack name: the README's command gives none
NO_FUNCTION_URLS = "eu-central-2"


@dataclass
class Account:
    """An empty emulator started with ``filegate local up --empty``: a fresh account."""

    region: str
    state_dir: Path
    endpoint_url: str
    names: dict[str, str]
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)  # state recorded between the steps

    @property
    def target(self) -> Target:
        return Target(region=self.region, endpoint_url=self.endpoint_url)

    def deploy(
        self, step: str, *extra: str, region: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # as the README writes it: --parameter BucketName=<BUCKET> ...
        parameters = [a for k, v in self.names.items() for a in ("--parameter", f"{k}={v}")]
        return self.run(step, "deploy", "--region", region or self.region, *parameters, *extra)

    def run(self, step: str, *args: str) -> subprocess.CompletedProcess[str]:
        where = ("--endpoint-url", self.endpoint_url, "--output", "json")
        self.runs[step] = filegate(self.state_dir, *args, *where, timeout=300)
        return self.runs[step]

    def json(self, step: str) -> dict[str, Any]:
        result = self.runs[step]
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def stack_status(self) -> str:
        cfn = self.target.client("cloudformation")
        return str(cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"])

    def stacks(self) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = self.target.client("cloudformation").list_stacks()[
            "StackSummaries"
        ]
        return summaries


def account_names(region: str, tag: str) -> dict[str, str]:
    base = f"rehearsal-{tag}-{region}"
    return {
        "BucketName": f"{base}-uploads",
        "LambdaName": f"{base}-ingest",
        "DynamoTableName": f"{base}-ledger",
        "AlertEmail": "ops@example.com",
    }


@contextmanager
def empty_account(state_dir: Path, region: str, tag: str) -> Iterator[Account]:
    up = filegate(
        state_dir,
        *("local", "up", "--detach", "--empty", "--region", region, "--output", "json"),
        *("--port", str(free_port()), "--api-port", str(free_port())),
    )
    assert up.returncode == 0, up.stderr
    env = json.loads(up.stdout)
    try:
        yield Account(region, state_dir, env["endpoint_url"], account_names(region, tag))
    finally:
        down = filegate(state_dir, "local", "down")
        assert down.returncode == 0, down.stderr


def list_tables(account: Account) -> list[str]:
    tables: list[str] = account.target.client("dynamodb").list_tables()["TableNames"]
    return tables


# ---------------------------------------------------------------- the first deploy


@pytest.fixture(scope="module", params=REGIONS)
def first(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Account]:
    region = str(request.param)
    with empty_account(tmp_path_factory.mktemp("first-deploy"), region, "first") as account:
        account.seen["stacks before"] = account.stacks()
        account.deploy("dry-run", "--dry-run")
        account.seen["stacks after dry run"] = account.stacks()
        account.deploy("deploy")
        account.run("verify", "verify", "--region", region)
        yield account


def test_the_account_starts_empty_and_a_dry_run_leaves_it_empty(first: Account) -> None:
    planned = first.json("dry-run")
    assert (planned["outcome"], planned["change_set_type"]) == ("dry-run", "CREATE")
    assert {c["action"] for c in planned["changes"]} == {"Add"}
    assert [check["passed"] for check in planned["preflight"]] == [True, True, True]
    assert first.seen["stacks before"] == []
    after = first.seen["stacks after dry run"]
    assert [s for s in after if s["StackStatus"] != "DELETE_COMPLETE"] == []


def test_the_first_deploy_creates_every_resource_through_a_change_set(first: Account) -> None:
    deployed = first.json("deploy")
    assert (deployed["outcome"], deployed["change_set_type"], deployed["stack_status"]) == (
        "deployed",
        "CREATE",
        "CREATE_COMPLETE",
    )
    added = {c["logical_id"] for c in deployed["changes"] if c["action"] == "Add"}
    assert {"UploadBucket", "LedgerTable", "IngestFunction", "UploadApiUrl"} <= added
    assert {c["action"] for c in deployed["changes"]} == {"Add"}
    assert deployed["live_version"] == "1"
    assert deployed["replaced_failed_create"] is False
    assert (
        "deployed: stack s3-lambda-dynamo-stack is CREATE_COMPLETE" in first.runs["deploy"].stderr
    )


def test_the_outputs_name_what_the_parameters_asked_for(first: Account) -> None:
    outputs = first.json("deploy")["outputs"]
    names = first.names
    assert (outputs["BucketName"], outputs["TableName"], outputs["FunctionName"]) == (
        names["BucketName"],
        names["DynamoTableName"],
        names["LambdaName"],
    )
    assert outputs["PartnersTableName"] == f"{names['DynamoTableName']}-partners"
    assert f":{first.region}:" in outputs["QueueArn"]
    assert outputs["UploadApiUrl"].startswith("https://")
    assert outputs["UploadApiUrl"].endswith(f".lambda-url.{first.region}.on.aws/")
    sns = first.target.client("sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=outputs["AlertsTopicArn"])
    endpoints = {(s["Protocol"], s["Endpoint"]) for s in subscriptions["Subscriptions"]}
    assert ("email", names["AlertEmail"]) in endpoints


def test_verify_passes_on_the_freshly_deployed_stack(first: Account) -> None:
    report = first.json("verify")
    failed = [c for c in report["checks"] if not c["passed"]]
    assert (report["passed"], failed) == (True, [])
    assert {c["name"] for c in report["checks"]} >= {"smoke upload", "ledger item", "function logs"}


# ---------------------------------------------------------------- a failed first create


@pytest.fixture(scope="module")
def retried(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    region = "eu-central-1"
    with empty_account(tmp_path_factory.mktemp("failed-create"), region, "retry") as account:
        s3 = account.target.client("s3")
        bucket = account.names["BucketName"]
        # GIVEN the bucket name is taken outside the stack (by another stack, or by hand)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        # and a first try in a region without function URLs (Zurich), refused before anything
        account.deploy("zurich-dry-run", "--dry-run", region=NO_FUNCTION_URLS)
        account.deploy("zurich", region=NO_FUNCTION_URLS)
        account.seen["zurich stacks"] = Account(
            NO_FUNCTION_URLS, account.state_dir, account.endpoint_url, {}
        ).stacks()
        logs = account.target.client("logs")
        log_group = f"/aws/lambda/{account.names['LambdaName']}"
        logs.create_log_group(logGroupName=log_group)
        account.deploy("failed")
        account.seen["status after failure"] = account.stack_status()
        account.deploy("dry-run-after-failure", "--dry-run")
        s3.delete_bucket(Bucket=bucket)  # the first obstacle removed
        account.deploy("failed again")
        account.seen["tables after second failure"] = list_tables(account)
        logs.delete_log_group(logGroupName=log_group)  # and the second
        account.deploy("retry")
        account.run("verify", "verify", "--region", region)
        yield account


def test_a_region_without_function_urls_fails_the_preflight_and_is_refused(
    retried: Account,
) -> None:
    planned = retried.runs["zurich-dry-run"]
    assert planned.returncode == 1, planned.stderr  # a check failed
    document = json.loads(planned.stdout)
    assert document["outcome"] == "preflight-failed"
    (failed,) = [c for c in document["preflight"] if not c["passed"]]
    assert failed["name"] == "function URLs in region"
    assert "AWS::Lambda::Url does not exist in eu-central-2" in failed["detail"]
    refused = retried.runs["zurich"]
    assert refused.returncode == 2  # could not do its job
    assert "nothing was changed" in " ".join(refused.stderr.split())
    assert retried.seen["zurich stacks"] == []


def test_a_failed_first_create_rolls_back_and_says_what_to_do(retried: Account) -> None:
    failed = retried.runs["failed"]
    assert failed.returncode == 2
    message = " ".join(failed.stderr.split())
    assert "ended in ROLLBACK_COMPLETE: UploadBucket:" in message
    assert "run `filegate deploy` again: it deletes the empty stack" in message
    assert "Traceback" not in failed.stderr
    assert retried.seen["status after failure"] == "ROLLBACK_COMPLETE"


def test_a_second_failure_later_in_the_create_rolls_back_the_tables_too(
    retried: Account,
) -> None:
    again = retried.runs["failed again"]
    assert again.returncode == 2
    message = " ".join(again.stderr.split())
    assert "deleting it, then creating it again" in message
    assert "ended in ROLLBACK_COMPLETE: IngestFunctionLogGroup:" in message
    assert retried.seen["tables after second failure"] == []


def test_a_dry_run_after_the_failure_says_the_deploy_would_replace_it(retried: Account) -> None:
    planned = retried.json("dry-run-after-failure")
    assert (planned["outcome"], planned["replaced_failed_create"]) == ("dry-run", True)
    assert "a deploy deletes it and creates it again" in " ".join(
        retried.runs["dry-run-after-failure"].stderr.split()
    )


def test_the_retry_deletes_the_rolled_back_stack_and_creates_it(retried: Account) -> None:
    again = retried.json("retry")
    assert (again["stack_status"], again["replaced_failed_create"], again["live_version"]) == (
        "CREATE_COMPLETE",
        True,
        "1",
    )
    assert "deleting it, then creating it again" in " ".join(retried.runs["retry"].stderr.split())
    statuses = sorted(s["StackStatus"] for s in retried.stacks())
    assert statuses == ["CREATE_COMPLETE", "DELETE_COMPLETE", "DELETE_COMPLETE"]


def test_verify_passes_after_the_retry(retried: Account) -> None:
    report = retried.json("verify")
    assert (report["passed"], [c for c in report["checks"] if not c["passed"]]) == (True, [])
