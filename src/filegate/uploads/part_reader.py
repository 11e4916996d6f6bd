"""Reading a multipart upload's parts once, in order, hashing each while the parts go out.

``PartReader`` reads a file part after part (the plan's part size), each exactly once: every
block updates the part's SHA-256 (which its URL will bind) and the whole file's SHA-256 (given
at completion: docs/integrity.md), in file order. A part is handed on with its checksum and, when
parts fit in the memory budget, its bytes: the sender PUTs those very bytes, so what S3 checks
against the part's SHA-256 is what was hashed, and the file is not read again. The bytes live in
a fixed pool of reusable buffers (``buffer_bytes`` in all, one part each); the reader waits for a
free one, so memory stays bounded whatever the file's size and reading stays at most a pool
ahead of sending. When fewer than ``senders + 1`` parts fit (parts of 32 MiB and more with the
defaults, 80 MiB and 4 senders: files above 160,000 MiB), buffering would cost concurrency, so
the part's bytes are not kept: the sender reads its window from the file again (usually from
the page cache), and a part changed on disk since it was hashed is refused by S3 (BadDigest).

Parts S3 already holds (a resumed upload) are read and hashed too, never handed on: the whole
file's SHA-256 needs their bytes, and each must still be the part S3 verified, or the file
changed since the upload began (``FileChangedError``: never stitched). No AWS SDK here.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Any

from filegate.errors import UploadClientError

MiB = 1024 * 1024
# How long a wait for a free buffer lasts before the stop signal is looked at again.
_POLL_SECONDS = 0.1
_STOPPED = bytearray()  # what waiting for a buffer gives once the transfer is stopped


class FileChangedError(UploadClientError):
    """A part S3 holds from an earlier run no longer matches the file's bytes."""


@dataclass
class Part:
    """One part read and hashed: its place in the file, its SHA-256 (base64) and its bytes
    (None: to be read from the file again when sent). ``release`` hands the buffer back."""

    number: int
    offset: int
    size: int
    checksum: str
    data: memoryview | None
    _pool: queue.Queue[bytearray | None]
    _buffer: bytearray | None
    _released: bool = False

    def release(self) -> None:
        """Hand the part's buffer (or, unbuffered, its place in the pool) back; once."""
        if not self._released:
            self._released, self.data = True, None
            self._pool.put(self._buffer)


class PartReader:
    """The parts of ``path`` at ``part_size``, read once each, in order; see the module."""

    def __init__(
        self,
        path: Path,
        size: int,
        part_size: int,
        senders: int,
        buffer_bytes: int,
        chunk_bytes: int,
        held: dict[int, str] | None = None,
    ) -> None:
        self.path, self.size, self.part_size = path, size, part_size
        self.buffered = buffer_bytes // part_size >= senders + 1
        self.slots = buffer_bytes // part_size if self.buffered else senders + 1
        self._pool: queue.Queue[bytearray | None] = queue.Queue()
        for _ in range(self.slots):
            self._pool.put(None)  # buffers are allocated on first use
        self._chunk_bytes = chunk_bytes
        self._held = dict(held or {})
        self._whole = hashlib.sha256()
        self._done = False

    @property
    def sha256(self) -> str:
        """The whole file's SHA-256 (hex), once every part has been read."""
        if not self._done:
            raise RuntimeError("the whole file's SHA-256 is known once every part is read")
        return self._whole.hexdigest()

    def parts(self, stop: threading.Event) -> Iterator[Part]:
        """Each part S3 does not hold yet, in order; stops early once ``stop`` is set."""
        with self.path.open("rb", buffering=0) as handle:
            for number, offset in enumerate(range(0, self.size, self.part_size), start=1):
                length = min(self.part_size, self.size - offset)
                if number in self._held:
                    self._check_held(handle, number, length)
                    continue
                slot = self._free_slot(stop)
                if slot is _STOPPED:
                    return
                yield self._read(handle, number, offset, length, slot)
        self._done = True

    def _free_slot(self, stop: threading.Event) -> bytearray | None:
        """A buffer (None: not allocated yet, or unbuffered), or ``_STOPPED``."""
        while not stop.is_set():
            try:
                return self._pool.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return _STOPPED

    def _read(
        self, handle: FileIO, number: int, offset: int, length: int, slot: bytearray | None
    ) -> Part:
        if not self.buffered:
            checksum = self._hash_through(handle, number, length)
            return Part(number, offset, length, checksum, None, self._pool, None)
        buffer = slot if slot is not None else bytearray(self.part_size)
        view = memoryview(buffer)[:length]
        self._fill(handle, view, number)
        part = hashlib.sha256(view)
        self._whole.update(view)
        checksum = _base64(part)
        return Part(number, offset, length, checksum, view, self._pool, buffer)

    def _fill(self, handle: FileIO, view: memoryview, number: int) -> None:
        filled = 0
        while filled < len(view):
            count = handle.readinto(view[filled:])
            if not count:
                raise UploadClientError(
                    f"{self.path} is shorter than when its upload was declared (part {number}):"
                    " was it truncated? Upload it again"
                )
            filled += count

    def _hash_through(self, handle: FileIO, number: int, length: int) -> str:
        part = hashlib.sha256()
        left = length
        while left:
            block = handle.read(min(self._chunk_bytes, left))
            if not block:
                raise UploadClientError(
                    f"{self.path} is shorter than when its upload was declared (part {number}):"
                    " was it truncated? Upload it again"
                )
            part.update(block)
            self._whole.update(block)
            left -= len(block)
        return _base64(part)

    def _check_held(self, handle: FileIO, number: int, length: int) -> None:
        if self._hash_through(handle, number, length) != self._held[number]:
            raise FileChangedError(
                f"part {number} held in S3 no longer matches the file's bytes", field="file"
            )


def _base64(digest: Any) -> str:
    return base64.b64encode(digest.digest()).decode("ascii")
