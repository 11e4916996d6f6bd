"""What a partner declaration costs in the emulator as the ledger grows: moto's own
TransactWriteItems (a deep copy of every table it names) against the emulator's seam
(local/patches/ddb_transactions.py), with a plain PutItem (the declaration before quotas) as
the floor.

In one process, against moto's in-process DynamoDB (no server, no HTTP), the ledger is filled
to each size with plain declarations; then each round times ``Ledger.declare`` with limits
(one TransactWriteItems: the item, the day and the pending counters), ``--batch`` calls, with
moto's code and with the seam, the two in an order that alternates from round to round
(interleaved, so that the machine's load moves both alike), and a plain PutItem declaration;
per case, the median over rounds of the mean time a call.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/quota_transactions.py \
        [--sizes 0 1000 5000] [--rounds 7] [--batch 10]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the tests' table builders: the ledger and partners tables with the template's key schemas
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "functional"))
from upload_builders import create_partners_table, create_upload_ledger

from common import median, save, table
from filegate.ledger import Declaration, Ledger
from filegate.local.patches import ddb_transactions
from filegate.local.patches.seams import Seams
from filegate.quotas import Quotas

REGION = "eu-central-1"
LIMITS = Quotas(daily_uploads=10**9, daily_bytes=10**15, max_pending=10**9)
CASES = ("transaction, moto", "transaction, seam", "PutItem (before quotas)")


def declaration(number: int) -> Declaration:
    upload_id = f"up-{number}"
    return Declaration(
        key=f"bench/{upload_id}/f.csv",
        bucket="bench",
        upload_id=upload_id,
        partner_id="bench",
        size=100,
        sha256="0" * 64,
        content_type="text/csv",
        method="PUT",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )


def timed(call: Callable[[], Any], batch: int) -> float:
    started = time.perf_counter()
    for _ in range(batch):
        call()
    return (time.perf_counter() - started) / batch * 1000


def measure(sizes: list[int], rounds: int, batch: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    numbers = itertools.count()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_upload_ledger(ddb, "bench-ledger")
        create_partners_table(ddb, "bench-partners")
        quota = Ledger("bench-ledger", ddb, partners_table="bench-partners")
        plain = Ledger("bench-ledger", ddb)
        filled = 0
        for size in sizes:
            while filled < size:
                plain.declare(declaration(next(numbers)))
                filled += 1
            samples: dict[str, list[float]] = {case: [] for case in CASES}
            for number in range(rounds):
                for patched in (False, True) if number % 2 else (True, False):
                    seams = Seams()
                    if patched:
                        ddb_transactions.patch(seams)
                    case = CASES[1] if patched else CASES[0]
                    call = lambda: quota.declare(declaration(next(numbers)), LIMITS)  # noqa: E731
                    samples[case].append(timed(call, batch))
                    seams.undo()
                    filled += batch
                put = lambda: plain.declare(declaration(next(numbers)))  # noqa: E731
                samples[CASES[2]].append(timed(put, batch))
                filled += batch
            figures[str(size)] = {case: round(median(v), 2) for case, v in samples.items()}
    return {"rounds": rounds, "batch": batch, "median_ms_by_ledger_items": figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 5000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    figures = measure(sorted(args.sizes), args.rounds, args.batch)
    rows = [
        [size, *(f"{by_case[case]:.2f}" for case in CASES)]
        for size, by_case in figures["median_ms_by_ledger_items"].items()
    ]
    print(table(["ledger items (about)", *(f"{case}, ms" for case in CASES)], rows))
    save("quota_transactions", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
