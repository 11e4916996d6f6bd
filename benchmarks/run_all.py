"""Runs every benchmark, one after the other, each in its own process; `make benchmarks`.

Each script prints its table and writes ``benchmarks/results/<name>.json``. The end-to-end
burst runs with the SQS patches (the local mode as shipped); pass ``--with-before`` to also run
it on moto's own SQS (FILEGATE_EMULATOR_SQS_PATCH=0) for the before/after comparison, which adds
several minutes. About 20 minutes without it on a 2-core machine (upload_verdict's 5 GiB
rounds take a good part of it).

    .venv/bin/python benchmarks/run_all.py [--with-before]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["cold_import.py"],
    ["api_calls.py"],
    ["worker_memory.py"],
    ["e2e_burst.py", "--count", "2000"],
    ["upload_latency.py"],
    ["upload_api.py"],
    ["upload_transfer.py"],
    ["upload_page.py"],
    ["upload_verdict.py"],
    ["api_key_hash.py"],
    ["quota_transactions.py"],
    ["multipart_complete.py"],
    ["cli_start.py"],
    ["page_bodies.py"],
    ["checksum_speed.py"],
    ["page_sha256.py"],
]
BEFORE = [["e2e_burst.py", "--count", "500", "--unpatched-sqs", "--timeout", "300"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-before", action="store_true")
    args = parser.parse_args()
    failed = []
    for command in BENCHMARKS + (BEFORE if args.with_before else []):
        print(f"\n=== {' '.join(command)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], check=False)
        print(f"=== {command[0]}: exit {done.returncode} in {time.monotonic() - started:.0f} s")
        if done.returncode != 0:
            failed.append(command[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
