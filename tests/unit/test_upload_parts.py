"""Multipart part sizing: s3transfer's rule, within S3's limits and a plan's 2,000 parts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filegate.storage import (
    MAX_PART_COUNT,
    MAX_PART_SIZE,
    MAX_PLAN_PARTS,
    MIN_PART_SIZE,
    START_PART_SIZE,
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
        (2_000 * 8 * MiB, 8 * MiB, 2_000),
        (2_000 * 8 * MiB + 1, 16 * MiB, 1_001),
        (5 * TiB, 4096 * MiB, 1_280),
    ],
)
def test_part_size_starts_at_8_mib_and_doubles(size: int, part_size: int, count: int) -> None:
    assert part_size_for(size) == part_size
    assert len(part_ranges(size)) == count


@given(st.integers(min_value=1, max_value=5 * TiB))
def test_parts_cover_the_file_exactly_within_s3_limits(size: int) -> None:
    part_size = part_size_for(size)
    ranges = part_ranges(size) if size <= 100 * part_size else None

    assert part_size >= max(MIN_PART_SIZE, START_PART_SIZE)
    assert part_size <= MAX_PART_SIZE
    assert math.ceil(size / part_size) <= MAX_PLAN_PARTS <= MAX_PART_COUNT
    if ranges is not None:
        assert [n for n, _, _ in ranges] == list(range(1, len(ranges) + 1))
        assert sum(length for _, _, length in ranges) == size
        assert all(length == part_size for _, _, length in ranges[:-1])
        assert all(offset == (n - 1) * part_size for n, offset, _ in ranges)
