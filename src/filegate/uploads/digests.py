"""A file's SHA-256 and its parts' SHA-256s, computed in one read of the file.

The upload client declares the whole file's SHA-256 and signs each part's URL for that part's
SHA-256 (docs/integrity.md), so before sending it hashes every byte twice: once into the
whole-file digest and once into its part's. Both digests are fed from the same read, on two
threads: this thread reads and updates the whole-file digest while a helper updates the part
digests. hashlib releases the GIL while it hashes a buffer larger than 2 KiB, so on a machine
with two cores or more the two hashes run side by side and the pass takes about the time of
one SHA-256 of the file rather than two. Memory is bounded: at most ``_QUEUED`` blocks of
``chunk_bytes`` wait for the helper.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
# Blocks read but not yet hashed into their part: enough to keep both threads busy.
_QUEUED = 4


@dataclass(frozen=True)
class FileDigests:
    """A file's SHA-256 (hex) and, at ``part_size``, each part's (base64, by part number)."""

    sha256: str
    part_size: int
    parts: dict[int, str]


def file_sha256(path: Path, chunk_bytes: int = MiB) -> str:
    """The file's SHA-256 in hex, read once in chunks."""
    return file_digests(path, 0, chunk_bytes).sha256


def file_digests(path: Path, part_size: int, chunk_bytes: int = MiB) -> FileDigests:
    """The whole file's SHA-256 and its parts' (``part_size`` 0: none), read once in chunks;
    memory is a few chunks whatever the size."""
    whole = hashlib.sha256()
    parts = _PartHasher() if part_size else None
    filled = 0
    try:
        with path.open("rb") as handle:
            # Reads stop at part boundaries, so each block belongs to one part.
            while block := handle.read(
                min(chunk_bytes, part_size - filled) if part_size else chunk_bytes
            ):
                filled = (filled + len(block)) % part_size if part_size else 0
                if parts:
                    parts.feed(block, ends_part=filled == 0)
                whole.update(block)
    finally:
        digests = parts.close() if parts else {}
    return FileDigests(whole.hexdigest(), part_size, digests)


class _PartHasher:
    """A helper thread that hashes blocks into consecutive parts, in the order fed."""

    def __init__(self) -> None:
        self._blocks: queue.Queue[tuple[bytes, bool] | None] = queue.Queue(_QUEUED)
        self._digests: dict[int, str] = {}
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def feed(self, block: bytes, ends_part: bool) -> None:
        self._blocks.put((block, ends_part))

    def close(self) -> dict[int, str]:
        """Wait for the blocks fed so far; the digests by part number (a last, partial part
        included)."""
        self._blocks.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._digests

    def _run(self) -> None:
        part, filled = hashlib.sha256(), 0
        try:
            while (item := self._blocks.get()) is not None:
                block, ends_part = item
                part.update(block)
                filled += len(block)
                if ends_part:
                    self._digests[len(self._digests) + 1] = _base64(part)
                    part, filled = hashlib.sha256(), 0
            if filled:
                self._digests[len(self._digests) + 1] = _base64(part)
        except BaseException as exc:  # handed to close(), in the caller's thread
            self._failure = exc
            while self._blocks.get() is not None:  # unblock the reader until it closes
                pass


def _base64(digest: Any) -> str:
    return base64.b64encode(digest.digest()).decode("ascii")
