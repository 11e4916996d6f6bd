"""What checking an API key costs: scrypt-stored keys (before) against HMAC-SHA256 (now).

In one process, against moto's in-process DynamoDB (no server, no HTTP), the partners table
holds one partner whose key is stored with scrypt (as every key was before) and one stored with
HMAC-SHA256. Each round times ``PartnerRegistry.authenticate`` for every case below, ``--batch``
calls each, the cases in an order that rotates from round to round (interleaved, so that the
machine's load moves every case alike); per case, the median over rounds of the mean time a
call. The ratio is per round, scrypt's wrong key over HMAC's wrong key, and its median is
reported. The bare hash functions are timed the same way, to separate the hash from the
table read (which moto makes slower than DynamoDB, and which every case pays).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/api_key_hash.py [--rounds 15] [--batch 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save, table
from filegate.errors import AuthenticationError
from filegate.uploads.partners import PartnerRegistry, hash_secret, scrypt_secret

REGION = "eu-central-1"
TABLE = "bench-partners"
SALT = b"0123456789abcdef"
SECRET = "s" * 43  # a key's secret part is 43 urlsafe characters (32 bytes)
WRONG = "w" * 43


def partners() -> tuple[PartnerRegistry, str, str]:
    """The registry and the ids of its two partners: one scrypt-stored, one HMAC-stored."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "partner_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "partner_id", "AttributeType": "S"}],
    )
    registry = PartnerRegistry(TABLE, ddb)
    legacy, _ = registry.add("Legacy")
    current, _ = registry.add("Current")
    _store(ddb, legacy.partner_id, scrypt_secret(SECRET, SALT), "REMOVE key_scheme")
    _store(ddb, current.partner_id, hash_secret(SECRET, SALT))
    return registry, legacy.partner_id, current.partner_id


def _store(ddb: Any, partner_id: str, key_hash: bytes, also: str = "") -> None:
    """A known secret under a fixed salt (``add`` made a random one, shown once)."""
    ddb.update_item(
        TableName=TABLE,
        Key={"partner_id": {"S": partner_id}},
        UpdateExpression=f"SET key_salt = :salt, key_hash = :hash {also}",
        ExpressionAttributeValues={":salt": {"B": SALT}, ":hash": {"B": key_hash}},
    )


def refused(registry: PartnerRegistry, api_key: str) -> Callable[[], None]:
    def call() -> None:
        try:
            registry.authenticate(api_key)
        except AuthenticationError:
            return
        raise SystemExit(f"{api_key[:20]}... was accepted: the benchmark is wrong")

    return call


def cases(registry: PartnerRegistry, legacy: str, current: str) -> dict[str, Callable[[], Any]]:
    return {
        "wrong key, scrypt item (before)": refused(registry, f"fg_{legacy}_{WRONG}"),
        "wrong key, HMAC item (now)": refused(registry, f"fg_{current}_{WRONG}"),
        "unknown partner id (now)": refused(registry, f"fg_nobody-abcdef_{WRONG}"),
        "right key, HMAC item (now)": lambda: registry.authenticate(f"fg_{current}_{SECRET}"),
        "bare scrypt": lambda: scrypt_secret(WRONG, SALT),
        "bare HMAC-SHA256": lambda: hash_secret(WRONG, SALT),
    }


def measure(rounds: int, batch: int) -> dict[str, Any]:
    with mock_aws():
        registry, legacy, current = partners()
        calls = cases(registry, legacy, current)
        names = list(calls)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for number in range(rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                for _ in range(batch):
                    calls[name]()
                samples[name].append((time.perf_counter() - started) / batch * 1000)
    ratios = [
        before / now
        for before, now in zip(
            samples["wrong key, scrypt item (before)"],
            samples["wrong key, HMAC item (now)"],
            strict=True,
        )
    ]
    return {
        "rounds": rounds,
        "batch": batch,
        "median_ms": {name: round(median(values), 3) for name, values in samples.items()},
        "ratio_wrong_key_scrypt_over_hmac": round(median(ratios), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    figures = measure(args.rounds, args.batch)
    rows = [[name, f"{ms:.3f}"] for name, ms in figures["median_ms"].items()]
    print(table(["case", "ms a call (median of rounds)"], rows))
    print(f"wrong key, scrypt over HMAC: {figures['ratio_wrong_key_scrypt_over_hmac']}x")
    save("api_key_hash", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
