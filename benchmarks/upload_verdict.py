"""Verdict latency and the ingestion's duration at 1 KiB, 100 MiB, 1 GiB and 5 GiB (issue 11).

The ingestion judges a declared upload from HeadObject and the ledger's declaration alone
(docs/integrity.md): it never reads the object, so the verdict should cost the same whatever
the size. This measures it. Starts a local stack on a free port (emulator, upload API,
ingestion workers) with its own state directory, one partner, and one sparse file per size
(zeros: the client hashes and sends every byte; only the disk is spared). Each round uploads
every size once through the client library, the sizes in an order that rotates every round
(round 1: 1 KiB, 100 MiB, ...; round 2: 100 MiB, ..., 1 KiB), after one untimed warm-up
upload. For each upload:

- verdict latency: from the moment the upload's last request was sent (``POST
  /uploads/{id}/complete``, in which the upload API calls CompleteMultipartUpload, or the single
  presigned PUT for 1 KiB) to the ledger's item reading ACCEPTED (GetItem, ConsistentRead,
  polled every 20 ms); and its two shares: that request's own time (the completion), and the
  time from its answer to the verdict;
- ingestion duration: the ``Duration`` of the REPORT line of the invocation whose lines name
  the key, in the function's CloudWatch log group (what ``filegate logs --key`` shows);
- the checksum the ledger records that S3 verified (type, part count).

Between uploads, untimed: every version of the object is deleted and the delete recorded
(the emulator keeps a copy of each object), so no run shares the emulator with the previous
run's work. Medians per size; the ratio of each size's median to 1 KiB's.

    .venv/bin/python benchmarks/upload_verdict.py [--rounds 3] [--sizes 1KiB,100MiB,1GiB,5GiB]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import urllib3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save, table
from upload_transfer import add_partner, clear_bucket, local_stack

POLL_SECONDS = 0.02
VERDICT_TIMEOUT = 120.0
LOG_TIMEOUT = 60.0
DEFAULT_SIZES = "1KiB,100MiB,1GiB,5GiB"
_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_SIZE = re.compile(r"^(\d+)(KiB|MiB|GiB)$")
_REPORT = re.compile(r"^REPORT RequestId: \S+\tDuration: ([\d.]+) ms")


def parse_size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise SystemExit(f"--sizes: {text!r} is not a size like 1KiB, 100MiB or 5GiB")
    return int(match.group(1)) * _UNITS[match.group(2)]


class TimedPool(urllib3.PoolManager):
    """The client's connection pool, noting when each request was sent and when it returned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[str, str, float, float]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent = time.monotonic()
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            self.requests.append((method, url, sent, time.monotonic()))


def finishing_request(pool: TimedPool) -> tuple[float, float]:
    """(sent, returned) of the request that finished the upload: the complete POST, or the PUT."""
    requests = pool.requests
    completes = [r for r in requests if r[0] == "POST" and r[1].endswith("/complete")]
    _, _, sent, returned = (completes or [r for r in requests if r[0] == "PUT"])[-1]
    return sent, returned


def ledger_item(state: Any, key: str) -> dict[str, Any] | None:
    ddb = state.target.client("dynamodb")
    found: dict[str, Any] | None = ddb.get_item(
        TableName=state.env()["TableName"], Key={"s3_key": {"S": key}}, ConsistentRead=True
    ).get("Item")
    return found


def wait_verdict(state: Any, key: str) -> tuple[float, dict[str, Any]]:
    """Poll the ledger until the key has a verdict: (monotonic time seen, item)."""
    deadline = time.monotonic() + VERDICT_TIMEOUT
    while time.monotonic() < deadline:
        item = ledger_item(state, key)
        if item and item["processing_status"]["S"] in {"ACCEPTED", "REJECTED"}:
            return time.monotonic(), item
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{key}: no verdict in the ledger within {VERDICT_TIMEOUT:.0f} s")


def ingestion_ms(state: Any, key: str, since_ms: int) -> list[float]:
    """The Duration of each REPORT line of the invocations that handled the key."""
    from filegate.ops.logs import InvocationFilter, LogReader

    reader = LogReader(None, state.env()["FunctionName"], state.target.client("logs"))  # type: ignore[arg-type]
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline:
        shown = InvocationFilter(key).run(reader.events(since_ms))
        durations = [float(m.group(1)) for _, line in shown if (m := _REPORT.match(line.message))]
        if durations:
            return durations
        time.sleep(0.5)
    raise RuntimeError(f"{key}: no REPORT line within {LOG_TIMEOUT:.0f} s")


def one_upload(state: Any, api_key: str, path: Path) -> dict[str, Any]:
    from filegate.uploads.client import UploadClient

    pool = TimedPool(maxsize=6, retries=False)
    client = UploadClient(state.env()["upload_api_url"], api_key, http=pool)
    since_ms = int(time.time() * 1000) - 1000
    started = time.monotonic()
    result = client.upload(path)
    sent, returned = finishing_request(pool)
    seen, item = wait_verdict(state, result.key)
    durations = ingestion_ms(state, result.key, since_ms)
    clear_bucket(state)
    return {
        "status": item["processing_status"]["S"],
        "method": result.method,
        "upload_s": round(returned - started, 2),
        "verdict_latency_ms": round((seen - sent) * 1000, 1),
        "completion_ms": round((returned - sent) * 1000, 1),
        "after_completion_ms": round((seen - returned) * 1000, 1),
        "ingestion_ms": durations[-1],
        "ingestion_invocations": len(durations),
        "checksum_type": item.get("checksum_type", {}).get("S"),
        "checksum_part_count": int(item.get("checksum_part_count", {}).get("N", 0)),
    }


def measure(rounds: int, sizes: list[str]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="filegate-bench-verdict-") as folder:
        paths = {}
        for size in sizes:
            paths[size] = Path(folder) / f"verdict-{size}.bin"
            with paths[size].open("wb") as handle:
                handle.truncate(parse_size(size))  # sparse: reads as zeros, takes no disk
        with local_stack() as state:
            api_key = add_partner(state, "verdict bench partner")
            one_upload(state, api_key, paths[sizes[0]])  # warm-up, untimed
            for number in range(rounds):
                order = sizes[number % len(sizes) :] + sizes[: number % len(sizes)]
                for size in order:
                    run = {"round": number + 1, **one_upload(state, api_key, paths[size])}
                    runs[size].append(run)
                    print(f"round {number + 1} {size}: {run}", file=sys.stderr)
    return summarize(runs, rounds)


def summarize(runs: dict[str, list[dict[str, Any]]], rounds: int) -> dict[str, Any]:
    per_size: dict[str, Any] = {}
    for size, size_runs in runs.items():
        per_size[size] = {
            "size_bytes": parse_size(size),
            "runs": size_runs,
            "median_verdict_latency_ms": round(
                median([r["verdict_latency_ms"] for r in size_runs]), 1
            ),
            "median_completion_ms": round(median([r["completion_ms"] for r in size_runs]), 1),
            "median_after_completion_ms": round(
                median([r["after_completion_ms"] for r in size_runs]), 1
            ),
            "median_ingestion_ms": round(median([r["ingestion_ms"] for r in size_runs]), 1),
            "median_upload_s": round(median([r["upload_s"] for r in size_runs]), 2),
            "all_accepted": all(r["status"] == "ACCEPTED" for r in size_runs),
        }
    base = per_size[next(iter(per_size))]
    for figures in per_size.values():
        for what in ("verdict_latency_ms", "ingestion_ms"):
            figures[f"{what}_ratio_to_smallest"] = round(
                figures[f"median_{what}"] / base[f"median_{what}"], 2
            )
    return {
        "files": "sparse (zeros), hashed and sent whole by the client library",
        "rounds": rounds,
        "order": "one untimed warm-up, then each round every size, the order rotating a step",
        "poll_interval_ms": POLL_SECONDS * 1000,
        "sizes": per_size,
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [
            size,
            " / ".join(f"{r['verdict_latency_ms']:.0f}" for r in f["runs"]),
            f"{f['median_verdict_latency_ms']:.0f}",
            f"{f['verdict_latency_ms_ratio_to_smallest']:.2f}",
            f"{f['median_completion_ms']:.0f}",
            f"{f['median_after_completion_ms']:.0f}",
            " / ".join(f"{r['ingestion_ms']:.0f}" for r in f["runs"]),
            f"{f['median_ingestion_ms']:.0f}",
            f"{f['ingestion_ms_ratio_to_smallest']:.2f}",
            f"{f['median_upload_s']:.1f}",
            f"{f['runs'][0]['checksum_type']} x{f['runs'][0]['checksum_part_count']}",
            "yes" if f["all_accepted"] else "NO",
        ]
        for size, f in figures["sizes"].items()
    ]
    headers = [
        "size", "verdict ms per run", "median", "ratio", "of which completion", "after it",
        "ingestion ms per run", "median",
        "ratio", "upload s", "S3 checksum", "all ACCEPTED",
    ]  # fmt: skip
    return table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated, smallest first")
    args = parser.parse_args()
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    for size in sizes:
        parse_size(size)
    figures = measure(args.rounds, sizes)
    print(render(figures))
    save("upload_verdict", figures)


if __name__ == "__main__":
    main()
