"""The SHA-256 the upload client declares for a single PUT: hashlib's over the file's bytes,
whatever the chunk size, and a clear error for what cannot be read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from filegate.uploads.digests import file_sha256

KiB = 1024


@pytest.mark.parametrize(
    ("size", "chunk"), [(0, 64 * KiB), (640 * KiB, 64 * KiB), (1000 * KiB + 7, 80 * KiB)]
)
def test_the_file_hashes_as_hashlib_does(tmp_path: Path, size: int, chunk: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "file.bin"
    path.write_bytes(data)

    assert file_sha256(path, chunk) == hashlib.sha256(data).hexdigest()


def test_a_file_that_cannot_be_read_raises(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        file_sha256(tmp_path, 64 * KiB)
