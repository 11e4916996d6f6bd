"""End-to-end fixtures: a real local stack (emulator, template, workers) over real HTTP.

The stack is started the way a user starts it, `filegate local up --detach`, on a free port
of 127.0.0.1 with a private state directory, and stopped with `filegate local down`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from filegate.aws import Target
from filegate.local import processes

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Below the ephemeral range, which outgoing connections take from (processes.py)."""
    return processes.free_port()


def cli_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"FILEGATE_STATE_DIR": str(state_dir), "NO_COLOR": "1", "COLUMNS": "200"})
    env.update(extra)
    return env


def filegate(state_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "filegate"), *args],
        capture_output=True,
        text=True,
        env=cli_env(state_dir),
        timeout=timeout,
        check=False,
    )


def wait_for(probe: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until probe() returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class Stack:
    """A running local stack as the tests see it: its env document and clients."""

    def __init__(self, env: dict[str, Any], state_dir: Path) -> None:
        self.env = env
        self.state_dir = state_dir
        self.target = Target(region=env["region"], endpoint_url=env["endpoint_url"])
        self.s3 = self.target.client("s3")
        self.sqs = self.target.client("sqs")
        self.ddb = self.target.client("dynamodb")
        self.logs = self.target.client("logs")

    @property
    def bucket(self) -> str:
        return str(self.env["BucketName"])

    @property
    def table(self) -> str:
        return str(self.env["TableName"])

    def item(self, key: str) -> dict[str, Any] | None:
        found = self.ddb.get_item(
            TableName=self.table, Key={"s3_key": {"S": key}}, ConsistentRead=True
        )
        return found.get("Item")

    def queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def log_messages(self, pattern: str = "") -> list[str]:
        """Every message in the function's log group (all pages), optionally filtered."""
        group = f"/aws/lambda/{self.env['FunctionName']}"
        arguments = {"logGroupName": group, **({"filterPattern": pattern} if pattern else {})}
        pages = self.logs.get_paginator("filter_log_events").paginate(**arguments)
        return [event["message"] for page in pages for event in page["events"]]

    def log_documents(self, key: str) -> list[dict[str, Any]]:
        """The function's structured (JSON) log lines about object ``key``."""
        parsed = [json.loads(m) for m in self.log_messages() if m.startswith("{")]
        return [document for document in parsed if document.get("s3_key") == key]

    def supervisor_pid(self) -> int:
        state = json.loads((self.state_dir / "local.json").read_text())
        return int(state["pid"])


@contextmanager
def own_stack(state_dir: Path, *options: str) -> Iterator[Stack]:
    """A local stack of one's own, started as a user starts it (with ``options`` of
    `filegate local up`, such as ``--region``), stopped at the end."""
    up = filegate(
        state_dir,
        *("local", "up", "--detach", "--port", str(free_port())),
        *("--api-port", str(free_port()), "--output", "json", *options),
    )
    assert up.returncode == 0, up.stderr
    try:
        yield Stack(json.loads(up.stdout), state_dir)
    finally:
        down = filegate(state_dir, "local", "down")
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-state")) as started:
        yield started
