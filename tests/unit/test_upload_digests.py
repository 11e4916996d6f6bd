"""The digests the upload client declares and signs parts for: the whole file's SHA-256 and
each part's, computed on two threads from one read, equal hashlib's over the same bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

import pytest

from filegate.uploads.digests import file_digests, file_sha256

KiB = 1024


def _parts(data: bytes, part_size: int) -> dict[int, str]:
    return {
        number: base64.b64encode(hashlib.sha256(data[start : start + part_size]).digest()).decode()
        for number, start in enumerate(range(0, len(data), part_size), start=1)
    }


@pytest.mark.parametrize(
    ("size", "part_size", "chunk"),
    [
        (0, 64 * KiB, 64 * KiB),  # empty: no part
        (640 * KiB, 64 * KiB, 64 * KiB),  # parts end exactly on chunks
        (1000 * KiB + 7, 192 * KiB, 80 * KiB),  # chunks straddle part ends; short last part
        (300 * KiB, 1000 * KiB, 64 * KiB),  # one part, shorter than the part size
    ],
)
def test_each_part_and_the_whole_file_hash_as_hashlib_does(
    tmp_path: Path, size: int, part_size: int, chunk: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "file.bin"
    path.write_bytes(data)

    digests = file_digests(path, part_size, chunk)

    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.parts == _parts(data, part_size)
    assert digests.part_size == part_size


def test_no_part_size_gives_the_whole_file_only(tmp_path: Path) -> None:
    data = os.urandom(300 * KiB + 1)
    path = tmp_path / "file.bin"
    path.write_bytes(data)

    assert file_digests(path, 0, 64 * KiB).parts == {}
    assert file_sha256(path, 64 * KiB) == hashlib.sha256(data).hexdigest()


def test_a_file_that_cannot_be_read_raises_and_leaves_no_thread_waiting(tmp_path: Path) -> None:
    threads = threading.active_count()

    with pytest.raises(IsADirectoryError):
        file_digests(tmp_path, 64 * KiB)

    assert threading.active_count() == threads
