"""The empty local stack adopts a deployed stack once its tables exist, not before, not never.

`filegate local up --empty` waits for a first `filegate deploy`; the supervisor's adopter polls
CloudFormation and, once the stack is CREATE_COMPLETE, runs it (``LocalStack._adopt_when_ready``).
But CloudFormation says CREATE_COMPLETE before the deploy's own step has created the stack's
tables in the DynamoDB process (moto's CloudFormation makes them in the main emulator, where no
request reads them: ``local/stack_tables.py``), and adopting resolves the publisher mapping's
``LedgerTable.StreamArn`` there: DescribeTable ResourceNotFound. The adopter gave up for good
on that (tests/e2e/test_first_deploy.py timed out under load); it now tries again at its next
poll (e6f3212).

Here the race is played by hand, with no sleep racing: the emulator's composed app served in
this process over moto, a stack deployed in it, its tables then deleted from the DynamoDB
endpoint (the deploy's step has not run yet), and the adopter's clock driven by the test: each
of its waits runs the test's next step and returns, as one poll interval passing. What adopting
starts (workers, mappings, alarms) is recorded instead of started: the e2e tests run those.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import REGION
from werkzeug.serving import make_server

from filegate.aws import Target
from filegate.local import cfn_models
from filegate.local.emulator import application
from filegate.local.moto_server import moto_application
from filegate.local.processes import free_port
from filegate.local.provision import Deployment, Provisioner, StackParameters
from filegate.local.stack import LocalStack
from filegate.local.state import read_state
from filegate.package import Package
from filegate.settings import LocalSettings

STACK = "filegate-adopt-test"
PARAMETERS = StackParameters(
    bucket_name="filegate-adopt-uploads",
    lambda_name="filegate-adopt-ingest",
    table_name="filegate-adopt-ledger",
    code_bucket="filegate-adopt-code",
    code_key="lambda/code.zip",
)

# moto warns once per resource type it does not emulate; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


class Polls:
    """The adopter's stop event as its clock, driven by hand.

    The adopter polls after each ``wait`` that returns False (an interval passed, no stop). Each
    wait runs the test's next step first; once the steps are spent it returns True (stop), as
    ``LocalStack.stop`` would make it. ``made`` counts the polls let through.
    """

    def __init__(self, *steps: Callable[[], None]) -> None:
        self._steps = list(steps)
        self.made = 0

    def wait(self, timeout: float | None = None) -> bool:
        if not self._steps:
            return True
        self._steps.pop(0)()
        self.made += 1
        return False

    def set(self) -> None:
        self._steps.clear()


class Adopter(LocalStack):
    """The supervisor with its adopter only: what adopting starts is recorded, not started."""

    def __init__(self, settings: LocalSettings, polls: Polls) -> None:
        super().__init__(settings, progress=lambda _: None, empty=True)
        self._stopping = polls  # type: ignore[assignment]
        self.started: list[Deployment] = []

    def _start_pipeline(self, deployment: Deployment) -> None:
        self.started.append(deployment)

    def _start_alarms(self, deployment: Deployment) -> None:
        pass


@pytest.fixture
def emulator(aws: None) -> Iterator[int]:
    """The emulator's composed app over moto, served in this process: its port."""
    with cfn_models.installed():
        server = make_server(
            "127.0.0.1", free_port(), application(moto_application()), threaded=True
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield int(server.server_port)
        finally:
            server.shutdown()


def deployed_without_tables(target: Target, tmp_path: Path) -> list[str]:
    """The stack CREATE_COMPLETE, its tables not (yet) in the DynamoDB endpoint: their ids."""
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("filegate/ingest/handler.py", "def lambda_handler(e, c):\n")
    provisioner = Provisioner(target, STACK)
    provisioner.upload_package(
        Package(code, "0" * 64, code.stat().st_size), PARAMETERS.code_bucket, PARAMETERS.code_key
    )
    provisioner.deploy(PARAMETERS)
    dynamodb = target.client("dynamodb")
    tables = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in target.client("cloudformation").describe_stack_resources(StackName=STACK)[
            "StackResources"
        ]
        if r.get("ResourceType") == "AWS::DynamoDB::Table"  # skipped types come blank
    }
    for name in tables.values():
        dynamodb.delete_table(TableName=name)
    return sorted(tables)


def stream_arns(deployment: Deployment) -> list[str]:
    return [mapping.stream_arn for mapping in deployment.stream_mappings]


def test_the_adopter_waits_for_the_stack_tables_then_runs_the_stack(
    emulator: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an empty local stack's settings and a stack CloudFormation has created, whose
    # tables the deploy has not made yet in the DynamoDB endpoint
    settings = LocalSettings(port=emulator, region=REGION, state_dir=tmp_path, stack_name=STACK)
    target = Target(region=REGION, endpoint_url=settings.endpoint_url)
    tables = deployed_without_tables(target, tmp_path)
    assert "LedgerTable" in tables
    seen: dict[str, Any] = {}

    def nothing_yet() -> None:
        pass

    def the_deploy_makes_the_tables() -> None:
        seen["adopted before the tables"] = list(adopter.started)
        Provisioner(target, STACK).reapply(tables)  # filegate deploy's step (EmulatorTwin)

    polls = Polls(nothing_yet, the_deploy_makes_the_tables)
    adopter = Adopter(settings, polls)

    # WHEN the adopter polls: once with the tables absent, once with them made
    with caplog.at_level(logging.WARNING, logger="filegate.local.stack"):
        adopter._adopt_when_ready()

    # THEN the first poll did not adopt and said why; the second adopted the stack, its
    # stream mapping reading the ledger table's stream as it now is
    assert len(adopter.started) == 1, f"adopted {len(adopter.started)} times in {polls.made} polls"
    assert seen["adopted before the tables"] == []
    assert any(
        "not ready to run yet" in r.getMessage() and PARAMETERS.table_name in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    ledger = target.client("dynamodb").describe_table(TableName=PARAMETERS.table_name)["Table"]
    assert stream_arns(adopter.started[0]) == [ledger["LatestStreamArn"]]
    state = read_state(settings)
    assert state is not None
    assert (state.stack_name, state.outputs) == (STACK, adopter.started[0].outputs)
