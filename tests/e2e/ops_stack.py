"""A local stack of one's own for the operations tests, and the CLI run without a terminal.

Pausing intake and draining the dead-letter queue change state the other end-to-end tests
rely on, so these tests start their own stack (module scope) instead of sharing the session's.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from tests.e2e.conftest import BIN, Stack, cli_env


def run(stack: Stack, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`filegate ARGS` against the stack, stdin not a terminal (as in CI)."""
    return subprocess.run(
        [str(BIN / "filegate"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=cli_env(stack.state_dir),
        timeout=timeout,
        check=False,
    )


def run_json(stack: Stack, *args: str, expect: int = 0) -> Any:
    result = run(stack, *args, "--output", "json")
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def notification(stack: Stack) -> dict[str, Any]:
    response = stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def notify_by_hand(stack: Stack, key: str) -> None:
    """Send the ingest queue the notification S3 sends for ``key``'s latest version, as S3 would
    with the bucket's notification attached: a marker that flows while intake is paused."""
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": stack.env["region"],
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": stack.bucket},
            "object": {
                "key": quote_plus(key),
                "size": head["ContentLength"],
                "eTag": head["ETag"].strip('"'),
                "versionId": head["VersionId"],
                "sequencer": f"{time.time_ns():018X}",
            },
        },
    }
    body = json.dumps({"Records": [record]})
    stack.sqs.send_message(QueueUrl=stack.env["QueueUrl"], MessageBody=body)


def marker_recorded(stack: Stack, key: str) -> bool:
    """``key``'s item is in the ledger and the ingest queue holds nothing, visible or in flight:
    every message sent before it has been handled (a standard queue keeps no order)."""
    return stack.item(key) is not None and stack.queue_depth(stack.env["QueueUrl"]) == 0
