"""S3's multipart limits, the part-size rule and the composite SHA-256, in the standard library
only: the upload API, its signer and the partner-side client must agree on them, and the client
runs where no AWS SDK is installed.

A multipart upload's integrity is S3's composite SHA-256 (docs/integrity.md): each part carries
its own SHA-256 (base64, as S3's ``x-amz-checksum-sha256`` header), and the object's checksum is
the SHA-256 of the parts' binary digests concatenated, base64, with ``-<part count>`` appended
(S3 user guide, "Checking object integrity in Amazon S3", "Using part-level checksums for
multipart uploads").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Iterable

# S3's multipart limits (S3 user guide, "Amazon S3 multipart upload limits") and s3transfer's
# starting part size.
MIN_PART_SIZE = 5 * 1024 * 1024
START_PART_SIZE = 8 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PART_COUNT = 10_000
MAX_OBJECT_SIZE = 5 * 1024**4
SHA256_BYTES = 32


def part_size_for(size: int) -> int:
    """s3transfer's rule: 8 MiB parts, doubled while the file would need more than S3's 10,000
    parts; within 5 MiB-5 GiB. A 5 TiB object gets 1 GiB parts (5,120 of them)."""
    if not 0 <= size <= MAX_OBJECT_SIZE:
        raise ValueError(f"size {size} is outside S3's limits (0 to {MAX_OBJECT_SIZE} bytes)")
    part_size = START_PART_SIZE
    while math.ceil(size / part_size) > MAX_PART_COUNT:
        part_size *= 2
    return min(part_size, MAX_PART_SIZE)


def part_ranges(size: int) -> list[tuple[int, int, int]]:
    """(part number, offset, length) for each part; only the last part may be shorter."""
    part_size = part_size_for(size)
    return [
        (number, offset, min(part_size, size - offset))
        for number, offset in enumerate(range(0, size, part_size), start=1)
    ]


def sha256_base64(data: bytes) -> str:
    """SHA-256 of ``data`` as S3's ``x-amz-checksum-sha256`` carries it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def is_sha256_base64(text: object) -> bool:
    """True for a base64 text of exactly 32 bytes (a SHA-256 digest, as S3 writes it)."""
    if not isinstance(text, str) or len(text) != 44:
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == SHA256_BYTES
    except (binascii.Error, ValueError):
        return False


def composite_sha256(part_checksums: Iterable[str]) -> str:
    """S3's composite checksum over the parts' SHA-256 values (base64, in part order):
    ``base64(sha256(digest_1 + ... + digest_n))-n``."""
    digests = [base64.b64decode(value, validate=True) for value in part_checksums]
    joined = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(joined).decode('ascii')}-{len(digests)}"
