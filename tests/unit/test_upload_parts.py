"""Multipart part sizing: s3transfer's rule within S3's limits (5 MiB-5 GiB parts, 10,000 parts,
5 TiB objects), and S3's composite SHA-256."""

from __future__ import annotations

import base64
import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.parts import (
    MAX_OBJECT_SIZE,
    MAX_PART_COUNT,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    START_PART_SIZE,
    composite_sha256,
    part_ranges,
    part_size_for,
)

MiB = 1024 * 1024
TiB = 1024**4


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [
        (1, 8 * MiB, 1),
        (65 * MiB, 8 * MiB, 9),
        (100 * MiB, 8 * MiB, 13),
        (10_000 * 8 * MiB, 8 * MiB, 10_000),
        (10_000 * 8 * MiB + 1, 16 * MiB, 5_001),
        (5 * TiB, 1024 * MiB, 5_120),
    ],
)
def test_part_size_starts_at_8_mib_and_doubles(size: int, part_size: int, count: int) -> None:
    assert part_size_for(size) == part_size
    assert math.ceil(size / part_size) == count
    if count <= 10_000:
        assert len(part_ranges(size)) == count


def test_s3s_largest_object_fits_s3s_part_limits() -> None:
    ranges = part_ranges(MAX_OBJECT_SIZE)

    assert len(ranges) <= MAX_PART_COUNT
    assert max(length for _, _, length in ranges) <= MAX_PART_SIZE
    assert sum(length for _, _, length in ranges) == MAX_OBJECT_SIZE


def test_a_size_beyond_s3s_limit_has_no_part_size() -> None:
    with pytest.raises(ValueError, match="outside S3's limits"):
        part_size_for(MAX_OBJECT_SIZE + 1)


@given(st.integers(min_value=1, max_value=5 * TiB))
def test_parts_cover_the_file_exactly_within_s3_limits(size: int) -> None:
    part_size = part_size_for(size)
    ranges = part_ranges(size) if size <= 100 * part_size else None

    assert part_size >= max(MIN_PART_SIZE, START_PART_SIZE)
    assert part_size <= MAX_PART_SIZE
    assert math.ceil(size / part_size) <= MAX_PART_COUNT
    if ranges is not None:
        assert [n for n, _, _ in ranges] == list(range(1, len(ranges) + 1))
        assert sum(length for _, _, length in ranges) == size
        assert all(length == part_size for _, _, length in ranges[:-1])
        assert all(offset == (n - 1) * part_size for n, offset, _ in ranges)


def test_composite_sha256_is_the_sha256_of_the_part_digests_with_the_part_count() -> None:
    parts = [b"a" * 10, b"b" * 3]
    digests = [hashlib.sha256(part).digest() for part in parts]
    listed = [base64.b64encode(d).decode() for d in digests]

    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert composite_sha256(listed) == f"{expected}-2"
