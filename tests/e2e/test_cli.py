"""The commands as a user runs them: `filegate local ...`, `filegate demo`, and the AWS CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.contract import REQUIRED_OUTPUTS
from tests.e2e.conftest import BIN, REPO, Stack, cli_env, filegate, free_port, wait_for


def aws(stack: Stack, *args: str) -> dict:
    """Run the AWS CLI against the local stack, as the runbook does."""
    env = cli_env(stack.state_dir, **stack.target.local_env())
    env.pop("AWS_ENDPOINT_URL")  # the CLI v1 ignores it for SQS: pass --endpoint-url, as documented
    done = subprocess.run(
        [str(BIN / "aws"), *args, "--endpoint-url", stack.env["endpoint_url"], "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def lambda_metric(stack: Stack, name: str, raw: bool = False) -> Any:
    """The runbook's check: an AWS/Lambda metric's Sum over the last 15 minutes."""
    now = datetime.now(UTC)
    answer = aws(
        stack,
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        name,
        "--dimensions",
        f"Name=FunctionName,Value={stack.env['FunctionName']}",
        "--start-time",
        (now - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--end-time",
        (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--period",
        "60",
        "--statistics",
        "Sum",
    )
    return answer if raw else answer["Datapoints"]


def test_local_env_json_has_connection_and_every_output(stack: Stack) -> None:
    done = filegate(stack.state_dir, "local", "env", "--output", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    for name in ("endpoint_url", "region", "stack_name", *REQUIRED_OUTPUTS):
        assert document[name], name
    assert document["stack_name"] == "s3-lambda-dynamo-stack"


def test_local_status_reports_running(stack: Stack) -> None:
    done = filegate(stack.state_dir, "local", "status", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["running"] is True


def test_the_runbook_s_aws_cli_commands_work_against_the_local_stack(stack: Stack) -> None:
    # As docs/template.md deploys by hand: the template, over the 51,200 bytes CloudFormation
    # takes inline, goes through S3 (the twin refuses --template-body, as CloudFormation does).
    bucket, region = stack.env["BucketName"], stack.target.region
    template = ("--body", "templates/s3-lambda-dynamo.yml")
    aws(stack, "s3api", "put-object", "--bucket", bucket, "--key", "filegate/t.yml", *template)
    validated = aws(
        stack,
        "cloudformation",
        "validate-template",
        "--template-url",
        f"https://{bucket}.s3.{region}.amazonaws.com/filegate/t.yml",
    )
    # moto's validate-template answers without Parameters (it runs cfn-lint and returns the
    # Description); a broken template fails with a non-zero exit, which aws() would catch.
    assert "filegate" in validated["Description"]
    described = aws(
        stack, "cloudformation", "describe-stacks", "--stack-name", "s3-lambda-dynamo-stack"
    )
    assert described["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    stamp = int(time.time())
    key = f"smoke/test-{stamp}.txt"
    source = stack.state_dir / "test.txt"
    source.write_text("smoke test\n")
    env = cli_env(stack.state_dir, **stack.target.local_env())
    copied = subprocess.run(
        [
            str(BIN / "aws"),
            "s3",
            "cp",
            str(source),
            f"s3://{stack.bucket}/{key}",
            "--endpoint-url",
            stack.env["endpoint_url"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr

    def item() -> dict:
        return aws(
            stack,
            "dynamodb",
            "get-item",
            "--table-name",
            stack.table,
            "--key",
            json.dumps({"s3_key": {"S": key}}),
        ).get("Item", {})

    # How soon the item appears is a speed figure (benchmarks/upload_latency.py); what this
    # checks is that the runbook's commands see it, written once, on the first try.
    found = wait_for(item, timeout=30, interval=0.1)
    assert found["processing_status"]["S"] == "RECEIVED"
    assert found["size"]["N"] == "11"
    assert found["updated_at"]["S"] == found["first_seen_at"]["S"]

    encryption = aws(stack, "s3api", "get-bucket-encryption", "--bucket", stack.bucket)
    assert encryption["ServerSideEncryptionConfiguration"]["Rules"]
    notification = aws(
        stack, "s3api", "get-bucket-notification-configuration", "--bucket", stack.bucket
    )
    events = {e for q in notification["QueueConfigurations"] for e in q["Events"]}
    assert events == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    attributes = aws(
        stack,
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        stack.env["QueueUrl"],
        "--attribute-names",
        "All",
    )["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] >= 5

    log_group = f"/aws/lambda/{stack.env['FunctionName']}"

    def logged() -> list[dict]:
        found = aws(
            stack,
            "logs",
            "filter-log-events",
            "--log-group-name",
            log_group,
            "--filter-pattern",
            f'"{key}"',
        )["events"]
        documents = [json.loads(e["message"]) for e in found if e["message"].startswith("{")]
        return documents if any(d.get("outcome") == "written" for d in documents) else []

    documents = wait_for(logged, timeout=10)
    assert [d["outcome"] for d in documents if "outcome" in d] == ["written"]
    assert not [d for d in documents if d["level"] not in ("DEBUG", "INFO")]
    invocations = wait_for(lambda: lambda_metric(stack, "Invocations"), timeout=5)
    assert sum(d["Sum"] for d in invocations) >= 1
    assert "Datapoints" in lambda_metric(stack, "Errors", raw=True)


def test_up_on_a_busy_port_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = filegate(
            tmp_path, "local", "up", "--detach", "--port", str(port), "--api-port", str(free_port())
        )
    assert done.returncode == 2
    assert f"port {port}" in done.stderr
    assert "in use" in done.stderr


def test_env_without_a_running_stack_exits_2_and_says_what_to_do(tmp_path: Path) -> None:
    done = filegate(tmp_path, "local", "env")
    assert done.returncode == 2
    assert "filegate local up" in done.stderr


@pytest.mark.timeout(240)
def test_demo_runs_and_leaves_no_process_behind(tmp_path: Path) -> None:
    port = free_port()
    done = filegate(
        tmp_path, "demo", "--port", str(port), "--api-port", str(free_port()), timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Zürich" in done.stdout
    assert "DELETED" in done.stdout
    assert "RECEIVED" in done.stdout

    def all_gone() -> bool:
        return not _emulator_processes(port)

    wait_for(all_gone, timeout=10)
    assert not (tmp_path / "local.json").exists()
    with socket.socket() as probe:
        # nothing listens any more (TIME_WAIT leftovers of closed connections are fine)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def _emulator_processes(port: int) -> list[psutil.Process]:
    processes = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "filegate.local" in " ".join(cmdline) and str(port) in cmdline:
            processes.append(process)
    return processes


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _state_pid(state_dir: Path) -> int:
    return int(json.loads((state_dir / "local.json").read_text())["pid"])


@pytest.mark.timeout(240)
def test_down_stops_every_process_of_a_detached_stack(tmp_path: Path) -> None:
    port = free_port()
    up = filegate(
        tmp_path, "local", "up", "--detach", "--port", str(port), "--api-port", str(free_port())
    )
    assert up.returncode == 0, up.stderr
    tree = _tree(_state_pid(tmp_path))
    assert len(tree) >= 3  # supervisor, emulator, at least one warm worker
    down = filegate(tmp_path, "local", "down")
    assert down.returncode == 0, down.stderr
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive
    assert filegate(tmp_path, "local", "status").returncode == 1


@pytest.mark.timeout(240)
def test_ctrl_c_stops_a_foreground_stack_and_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "filegate"), "local", "up", "--port", str(port), "--api-port", str(free_port())],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((tmp_path / "local.json").exists, timeout=120, interval=0.2)
        tree = _tree(process.pid)
        assert len(tree) >= 3
        process.send_signal(2)  # SIGINT, as Ctrl-C sends
        assert process.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive
        assert not (tmp_path / "local.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
