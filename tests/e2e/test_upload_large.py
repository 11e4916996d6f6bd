"""A multi-GiB upload end to end on the local stack: `filegate upload --wait` of a 2 GiB file
(sparse, with distinct bytes at its start and end) is ACCEPTED, judged from S3's composite
SHA-256 without the object being read (docs/integrity.md), and the ledger records what S3
verified: the composite checksum, its part count, the declared whole-file SHA-256.

How long it takes is the benchmarks' business (docs/benchmarks-uploads.md), not this test's.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, Stack, cli_env, filegate

GiB = 1024**3
SIZE = 2 * GiB + 3  # above 2 GiB, and not a whole number of parts


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    done = filegate(stack.state_dir, "partner", "add", "large files", "--output", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["api_key"])


def sparse_file(path: Path) -> str:
    """A file of SIZE bytes, mostly a hole, and its SHA-256."""
    with path.open("wb") as out:
        out.write(b"first bytes of a large file\n")
        out.truncate(SIZE - 16)
        out.seek(SIZE - 16)
        out.write(b"...and its end\n!")
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_2_gib_upload_is_accepted_from_s3s_composite_checksum(
    stack: Stack, api_key: str, tmp_path: Path
) -> None:
    # GIVEN a file above 2 GiB
    file = tmp_path / "large.bin"
    sha256 = sparse_file(file)

    # WHEN the partner uploads it and waits for the verdict
    done = subprocess.run(
        [str(BIN / "filegate"), "upload", str(file), "--wait", "--output", "json"],
        capture_output=True,
        text=True,
        env=cli_env(stack.state_dir, FILEGATE_API_KEY=api_key),
        timeout=900,
        check=False,
    )

    # THEN it is ACCEPTED, and the ledger records what S3 verified beside what was declared
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    assert (result["status"], result["resumed_bytes"]) == ("ACCEPTED", 0)
    item = stack.item(result["key"])
    assert item is not None
    assert int(item["size"]["N"]) == SIZE
    assert item["declared_sha256"]["S"] == sha256
    parts = int(item["declared_part_count"]["N"])
    assert parts > 1
    assert item["checksum_type"]["S"] == "COMPOSITE"
    assert int(item["checksum_part_count"]["N"]) == parts
    assert item["checksum_sha256"]["S"] == item["expected_checksum_sha256"]["S"]
    # AND S3 holds the same composite: "<base64>-<part count>"
    head = stack.s3.head_object(Bucket=stack.bucket, Key=result["key"], ChecksumMode="ENABLED")
    assert head["ContentLength"] == SIZE
    assert head["ChecksumSHA256"].endswith(f"-{parts}")
    # AND its multipart upload is closed in S3
    still_open = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert result["key"] not in {upload["Key"] for upload in still_open}
