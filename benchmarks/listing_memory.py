"""The emulator's memory for one ListObjectVersions of a bucket holding one large object, with
moto as it is and with the seam ``local/patches/s3_listing.py``.

In process: moto's backend behind boto3 (``mock_aws``), a versioned bucket, one object of
``--size-mib`` (default 512) uploaded in 8 MiB parts and completed with the emulator's seams,
then one listing of the bucket's versions, rounds alternating moto as it is and the seam. Per
listing: the peak RSS growth of this process over the value just before it (polled every
10 ms from a thread) and the seconds it took.

    .venv/bin/python benchmarks/listing_memory.py [--size-mib 512] [--rounds 3]

Figures go to ``results/listing_memory.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, median, save, table

MiB = 1024 * 1024
BUCKET = "listing-bench"
REGION = "eu-central-1"


class PeakRss:
    """This process's peak RSS growth while the block runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.before = self.peak = 0

    def __enter__(self) -> PeakRss:
        self.before = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    def growth_mib(self) -> float:
        return round((self.peak - self.before) / MiB, 1)


def fill(s3: Any, size: int) -> None:
    """One object of ``size`` bytes, uploaded in 8 MiB parts."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="big.bin")["UploadId"]
    chunk = os.urandom(8 * MiB)
    parts = []
    for number in range(1, size // len(chunk) + 1):
        answer = s3.upload_part(
            Bucket=BUCKET, Key="big.bin", UploadId=upload_id, PartNumber=number, Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def one_listing(s3: Any) -> dict[str, float]:
    with PeakRss() as rss:
        started = time.perf_counter()
        s3.list_object_versions(Bucket=BUCKET)
        seconds = time.perf_counter() - started
    return {"peak_mib": rss.growth_mib(), "seconds": round(seconds, 3)}


def measure(size: int, rounds: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from filegate.local import patches
    from filegate.local.patches import s3_listing
    from filegate.local.patches.seams import Seams

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    runs: dict[str, list[dict[str, float]]] = {"moto": [], "seam": []}
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        with patches.applied():
            fill(s3, size)
        for _ in range(rounds):
            runs["moto"].append(one_listing(s3))
            seams = Seams()
            s3_listing.patch(seams)
            try:
                runs["seam"].append(one_listing(s3))
            finally:
                seams.undo()
    return {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "size_mib": size // MiB,
        "runs": runs,
        "median": {
            mode: {key: median([run[key] for run in mine]) for key in ("peak_mib", "seconds")}
            for mode, mine in runs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.size_mib * MiB, args.rounds)
    rows = [
        [mode, figures["median"][mode]["peak_mib"], figures["median"][mode]["seconds"]]
        for mode in ("moto", "seam")
    ]
    print(table(["listing", "peak RSS +MiB (median)", "s (median)"], rows))
    save("listing_memory", figures)


if __name__ == "__main__":
    main()
