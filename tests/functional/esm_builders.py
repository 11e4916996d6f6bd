"""Builders for the local event source mapping's tests: a handler in a worker, a queue, sends."""

from __future__ import annotations

from pathlib import Path

import boto3
from builders import REGION

from filegate.aws import Target
from filegate.local.provision import MappingConfig
from filegate.local.runtime import FunctionSpec, runtime_packages_dir

# The handlers call no AWS API: their workers get an endpoint nothing listens on.
NO_AWS = Target(region=REGION, endpoint_url="http://127.0.0.1:9")


def mapping(queue_name: str, batch_size: int, maximum_concurrency: int) -> MappingConfig:
    return MappingConfig(
        uuid="u",
        queue_arn=f"arn:aws:sqs:{REGION}:123456789012:{queue_name}",
        function_name="fn:live",
        batch_size=batch_size,
        batching_window_seconds=0,
        report_batch_item_failures=True,
        maximum_concurrency=maximum_concurrency,
    )


def handler_spec(tmp_path: Path, source: str, version: str) -> FunctionSpec:
    """Function ``fn.record`` from ``source``, whose environment's OUT is ``tmp_path``."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "fn.py").write_text(source)
    return FunctionSpec(
        name="fn",
        arn=f"arn:aws:lambda:{REGION}:123456789012:function:fn:{version}",
        handler="fn.record",
        timeout_seconds=10,
        memory_mb=128,
        environment={"OUT": str(tmp_path)},
        code_dir=code,
        runtime_dir=runtime_packages_dir(tmp_path),
        version=version,
    )


def create_queue(name: str) -> str:
    return str(boto3.client("sqs", region_name=REGION).create_queue(QueueName=name)["QueueUrl"])


def send(queue_url: str, bodies: list[str]) -> None:
    """Send the bodies, ten to a SendMessageBatch."""
    sqs = boto3.client("sqs", region_name=REGION)
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
