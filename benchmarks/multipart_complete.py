"""CompleteMultipartUpload of a SHA-256 multipart upload on the local stack's emulator.

The one call after the last part: its time is a fixed cost of every `filegate upload` of a large
file (the API's completion waits for it). Starts a fresh local stack (emulator, API, workers),
then per round: create a multipart upload with ``ChecksumAlgorithm=SHA256``, send ``--parts``
parts of 8 MiB (random bytes, each with its SHA-256, as filegate's part URLs bind it), time the
CompleteMultipartUpload call alone, check the object's composite checksum (HeadObject with
ChecksumMode) against the SHA-256 of the parts' digests, delete the object.

    PYTHONPATH=src .venv/bin/python benchmarks/multipart_complete.py [--parts 128] [--rounds 5]

To compare two trees, run it once per tree (``PYTHONPATH=<tree>/src``), alternating.
Figures go to ``results/multipart_complete[_<label>].json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save
from upload_transfer import local_stack

MiB = 1024 * 1024
BUCKET = "filegate-bench-complete"


def one_round(s3: Any, key: str, parts: int, block: bytes) -> float:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    listed, digests = [], []
    for number in range(1, parts + 1):
        body = block[:-8] + number.to_bytes(8, "big")  # every part different
        digest = hashlib.sha256(body).digest()
        checksum = base64.b64encode(digest).decode()
        answer = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
            ChecksumSHA256=checksum,
        )  # fmt: skip
        listed.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
        digests.append(digest)
    started = time.perf_counter()
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    seconds = time.perf_counter() - started
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    if head.get("ChecksumSHA256") != f"{composite}-{parts}":
        raise SystemExit(f"wrong composite checksum: {head.get('ChecksumSHA256')}")
    s3.delete_object(Bucket=BUCKET, Key=key)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=128, help="parts of 8 MiB [128: 1 GiB]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--label", default="", help="suffix of the results file's name")
    args = parser.parse_args()
    from botocore.config import Config

    block = os.urandom(8 * MiB)
    with local_stack() as state:
        # The parts carry their SHA-256 header only; no SDK-computed trailing checksum.
        s3 = state.target.session().client(
            "s3",
            endpoint_url=state.endpoint_url,
            config=Config(request_checksum_calculation="when_required"),
        )
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": state.region}
        )
        seconds = []
        for number in range(args.rounds):
            seconds.append(one_round(s3, f"round-{number}.bin", args.parts, block))
            print(f"round {number + 1}: complete {seconds[-1]:.3f} s", file=sys.stderr)
    figures = {
        "parts": args.parts,
        "part_size_bytes": 8 * MiB,
        "complete_seconds": [round(s, 4) for s in seconds],
        "median_complete_seconds": round(median(seconds), 4),
        "load_1m_after": round(os.getloadavg()[0], 2),
    }
    print(f"CompleteMultipartUpload, {args.parts} parts of 8 MiB: median {median(seconds):.3f} s")
    save("multipart_complete" + (f"_{args.label}" if args.label else ""), figures)


if __name__ == "__main__":
    main()
