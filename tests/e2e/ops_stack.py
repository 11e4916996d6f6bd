"""A local stack of one's own for the operations tests, and the CLI run without a terminal.

Pausing intake and draining the dead-letter queue change state the other end-to-end tests
rely on, so these tests start their own stack (module scope) instead of sharing the session's.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

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
