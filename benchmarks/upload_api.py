"""The local upload API under load: POST /uploads declarations per second, and their latency.

Starts a local stack on a free port (emulator, the upload API's function URL gateway and its
warm workers) and a partner. Each run sends a fixed number of declarations (small files, so
each answer is a single presigned PUT: authenticate, sign, write PENDING in the ledger) from N
client threads sharing one connection pool, and measures requests/s over the run (first send
to last answer) and each request's latency (p50, p95, max). A warm-up of 20 requests precedes
the runs and is not counted. Every answer must be 201; a run with any other is reported as
such. Median of the runs; no target was set, the figures are for reference.

    .venv/bin/python benchmarks/upload_api.py [--count 300] [--threads 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, percentile, save, table
from upload_transfer import add_partner, local_stack

WARM_UP = 20


def declaration(index: int) -> bytes:
    body = f"file {index}\n".encode()
    return json.dumps(
        {
            "filename": f"bench-{index}.txt",
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": "text/plain",
        }
    ).encode()


def burst(api_url: str, api_key: str, count: int, threads: int) -> dict[str, Any]:
    """``count`` declarations from ``threads`` threads: rate, latency, and any non-201."""
    http = urllib3.PoolManager(maxsize=threads, retries=False)
    headers = {"x-api-key": api_key, "content-type": "application/json"}
    url = api_url + "uploads"

    def one(index: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = http.request("POST", url, body=declaration(index), headers=headers, timeout=60)
        return time.perf_counter() - started, answer.status

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    latencies_ms = [seconds * 1000 for seconds, _ in results]
    return {
        "requests": count,
        "seconds": round(wall, 3),
        "requests_per_s": round(count / wall, 2),
        "latency_p50_ms": round(percentile(latencies_ms, 0.50), 1),
        "latency_p95_ms": round(percentile(latencies_ms, 0.95), 1),
        "latency_max_ms": round(max(latencies_ms), 1),
        "non_201": sum(1 for _, status in results if status != 201),
    }


def measure(count: int, threads: int, runs: int) -> dict[str, Any]:
    with local_stack() as state:
        api_url, api_key = state.env()["upload_api_url"], add_partner(state, "bench partner")
        burst(api_url, api_key, WARM_UP, threads)
        samples = []
        for number in range(runs):
            samples.append(burst(api_url, api_key, count, threads))
            print(f"run {number + 1}: {samples[-1]}", file=sys.stderr)
    return {
        "operation": "POST /uploads (single-PUT declarations)",
        "count": count,
        "client_threads": threads,
        "api_workers": os.environ.get("FILEGATE_LOCAL_WORKERS", "2 (default)"),
        "runs": samples,
        "median_requests_per_s": median([s["requests_per_s"] for s in samples]),
        "median_latency_p50_ms": median([s["latency_p50_ms"] for s in samples]),
        "median_latency_p95_ms": median([s["latency_p95_ms"] for s in samples]),
        "non_201_total": sum(s["non_201"] for s in samples),
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [n + 1, r["requests_per_s"], r["latency_p50_ms"], r["latency_p95_ms"],
         r["latency_max_ms"], r["non_201"]]
        for n, r in enumerate(figures["runs"])
    ]  # fmt: skip
    rows.append(
        ["median", figures["median_requests_per_s"], figures["median_latency_p50_ms"],
         figures["median_latency_p95_ms"], "-", figures["non_201_total"]]
    )  # fmt: skip
    headers = ["run", "requests/s", "p50 ms", "p95 ms", "max ms", "non-201"]
    return table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.count, args.threads, args.runs)
    print(f"{args.count} declarations per run, {args.threads} client threads")
    print(render(figures))
    default = (args.count, args.threads) == (300, 4)
    save("upload_api" if default else f"upload_api_{args.count}x{args.threads}t", figures)


if __name__ == "__main__":
    main()
