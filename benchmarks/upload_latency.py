"""Local end to end: how soon one upload reaches the ledger on an idle stack.

The end-to-end tests used to assert that an upload is recorded within 2 s; a test asserts
behaviour (the upload recorded on the first delivery of its event), and the time lives here.
Starts a local stack as a user does (`filegate local up --detach`, a free port, its own state
directory), then uploads ``--count`` small objects ONE AT A TIME, each waited for before the
next, so every upload meets an idle pipeline (the burst, with a queue, is e2e_burst.py).

Per upload, two figures, both from the end of the client's PutObject:
- seen: until a consistent GetItem (polled every 20 ms) returns the item: what a user sees;
- written: until the item's ``updated_at``, which the function writes (same machine clock).

Target: every upload seen within 2 s (the goal the tests held). The first upload is reported
apart: it may meet the workers' first invocation (imports, the first clients).

    .venv/bin/python benchmarks/upload_latency.py [--count 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, median, percentile, save, table

TARGET_SECONDS = 2.0
POLL_SECONDS = 0.02
BIN = Path(sys.executable).parent


def filegate(state_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["FILEGATE_STATE_DIR"] = state_dir
    return subprocess.run(
        [str(BIN / "filegate"), *args], capture_output=True, text=True, env=env, check=False
    )


@contextmanager
def local_stack() -> Iterator[dict[str, Any]]:
    """The `filegate local env` document of a fresh local stack, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="filegate-bench-") as state_dir:
        for _ in range(3):  # on a shared machine a free port can be taken before we bind it
            port = free_port()
            options = ("--port", str(port), "--api-port", str(port + 1), "--output", "json")
            up = filegate(state_dir, "local", "up", "--detach", *options)
            if up.returncode == 0 or "in use" not in up.stderr:
                break
        if up.returncode != 0:
            raise SystemExit(f"filegate local up failed: {up.stderr.strip()}")
        try:
            yield json.loads(up.stdout)
        finally:
            filegate(state_dir, "local", "down")


def one_upload(s3: Any, ddb: Any, env: dict[str, Any], key: str, timeout: float) -> dict[str, Any]:
    s3.put_object(Bucket=env["BucketName"], Key=key, Body=b"x" * 1024, ContentType="text/plain")
    put_done, put_done_wall = time.monotonic(), time.time()
    deadline = put_done + timeout
    while time.monotonic() < deadline:
        found = ddb.get_item(
            TableName=env["TableName"], Key={"s3_key": {"S": key}}, ConsistentRead=True
        ).get("Item")
        if found:
            seen = time.monotonic() - put_done
            written = datetime.fromisoformat(found["updated_at"]["S"]).timestamp() - put_done_wall
            return {"key": key, "seen_s": round(seen, 4), "written_s": round(written, 4)}
        time.sleep(POLL_SECONDS)
    return {"key": key, "seen_s": None, "written_s": None}


def summary(name: str, runs: list[dict[str, Any]]) -> list[Any]:
    seen = [r["seen_s"] for r in runs if r["seen_s"] is not None]
    written = [r["written_s"] for r in runs if r["written_s"] is not None]
    return [
        name,
        len(runs),
        len(runs) - len(seen),
        f"{median(seen):.3f}",
        f"{percentile(seen, 0.95):.3f}",
        f"{max(seen, default=float('nan')):.3f}",
        f"{median(written):.3f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per upload")
    args = parser.parse_args()
    from filegate.aws import Target

    with local_stack() as env:
        target = Target(region=env["region"], endpoint_url=env["endpoint_url"])
        s3, ddb = target.client("s3"), target.client("dynamodb")
        stamp = int(time.time())
        runs = [
            one_upload(s3, ddb, env, f"bench-latency/{stamp}-{n:04d}.txt", args.timeout)
            for n in range(args.count)
        ]
    first, rest = runs[:1], runs[1:]
    headers = [
        "uploads",
        "n",
        "not seen",
        "seen p50 s",
        "seen p95 s",
        "seen max s",
        "written p50 s",
    ]
    print(table(headers, [summary("first", first), summary("the others", rest)]))
    met = all(r["seen_s"] is not None and r["seen_s"] < TARGET_SECONDS for r in runs)
    print(f"target: every upload seen within {TARGET_SECONDS} s: {'MET' if met else 'MISSED'}")
    save(
        "upload_latency",
        {"count": args.count, "target_s": TARGET_SECONDS, "met": met, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
