"""A file's SHA-256, in one read of bounded memory.

The upload client declares a file that goes in one presigned PUT with its SHA-256 (the URL
binds it, docs/integrity.md), so it hashes that file before declaring it. A multipart upload's
parts and whole-file SHA-256 are hashed as the parts are read (``part_reader``), not here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MiB = 1024 * 1024


def file_sha256(path: Path, chunk_bytes: int = MiB) -> str:
    """The file's SHA-256 in hex, read once in chunks of ``chunk_bytes``."""
    whole = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            whole.update(block)
    return whole.hexdigest()
