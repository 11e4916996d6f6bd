"""Peak memory of a warm worker after a batch of 10 real S3 events: does it fit 128 MB?

Starts a local stack (emulator, the deployed zip in warm worker processes). The bucket's
notification configuration gets a second queue, a capture queue, so that the S3 events the
emulator sends for 10 uploads can be taken whole; they are wrapped as Lambda's SQS event and
invoked on one of the stack's workers (the event source mapping processes the stack queue's
copies too: the ledger is written either way). Reported per batch: the bootstrap's
``ru_maxrss`` (what the REPORT line prints as "Max Memory Used"), and the worker's VmHWM / VmRSS
from /proc. Several batches, so a leak would show as growth.

    .venv/bin/python benchmarks/worker_memory.py [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, save, table

LIMIT_MB = 128
BATCH = 10


def _proc_mb(pid: int | None, field: str) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _capture_queue(state: Any) -> tuple[str, str]:
    """A second queue the bucket notifies with the same events; its (url, arn)."""
    s3, sqs = state.target.client("s3"), state.target.client("sqs")
    url = sqs.create_queue(QueueName="filegate-bench-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bucket = state.outputs["BucketName"]
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    first = config["QueueConfigurations"][0]
    config["QueueConfigurations"].append({"QueueArn": arn, "Events": first["Events"]})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return url, arn


def _captured(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(messages) < count and time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        messages += [m for m in batch if '"Records"' in m["Body"]]  # not the s3:TestEvent
    return messages[:count]


def measure(batches: int) -> dict[str, Any]:
    from filegate.local.esm import sqs_event
    from filegate.local.stack import LocalStack
    from filegate.settings import LocalSettings

    rows = []
    with tempfile.TemporaryDirectory(prefix="filegate-bench-") as state_dir:
        os.environ["FILEGATE_STATE_DIR"] = state_dir
        stack = LocalStack(LocalSettings.resolve(port=free_port()), progress=lambda _: None)
        with stack.running() as state:
            url, arn = _capture_queue(state)
            s3, sqs = state.target.client("s3"), state.target.client("sqs")
            worker = stack.workers[0]
            for number in range(batches):
                for index in range(BATCH):
                    key = f"memory/{number:02d}/{index:02d}.bin"
                    s3.put_object(Bucket=state.outputs["BucketName"], Key=key, Body=b"m" * 4096)
                messages = _captured(sqs, url, BATCH)
                invocation = worker.invoke(sqs_event(messages, arn, state.region))
                rows.append(
                    {
                        "batch": number + 1,
                        "records": len(messages),
                        "ok": invocation.ok,
                        "failures": len((invocation.result or {}).get("batchItemFailures", [])),
                        "duration_ms": invocation.duration_ms,
                        "max_memory_used_mb": invocation.max_memory_mb,
                        "vm_hwm_mb": _proc_mb(worker.pid, "VmHWM"),
                        "vm_rss_mb": _proc_mb(worker.pid, "VmRSS"),
                    }
                )
    peak = max(row["max_memory_used_mb"] for row in rows)
    return {
        "limit_mb": LIMIT_MB,
        "batches": rows,
        "peak_max_memory_used_mb": peak,
        "headroom_mb": LIMIT_MB - peak,
        "target_met": peak < LIMIT_MB and all(r["ok"] and r["records"] == BATCH for r in rows),
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [r["batch"], r["records"], "yes" if r["ok"] else "NO", f"{r['duration_ms']:.0f}",
         r["max_memory_used_mb"], f"{r['vm_hwm_mb']:.1f}", f"{r['vm_rss_mb']:.1f}"]
        for r in figures["batches"]
    ]  # fmt: skip
    headers = [
        "batch",
        "records",
        "ok",
        "duration ms",
        "Max Memory Used MB",
        "VmHWM MB",
        "VmRSS MB",
    ]
    return (
        table(headers, rows)
        + f"\npeak {figures['peak_max_memory_used_mb']} MB of {LIMIT_MB} MB"
        + f" ({figures['headroom_mb']} MB headroom): {'met' if figures['target_met'] else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    figures = measure(args.batches)
    print(f"warm worker memory, batches of {BATCH} real S3 events")
    print(render(figures))
    save("worker_memory", figures)


if __name__ == "__main__":
    main()
