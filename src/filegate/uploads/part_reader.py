"""Hashing a multipart upload's parts ahead of the senders, in order, keeping only digests.

``PartReader`` reads a file part after part (the plan's part size), sequentially, in blocks of
``chunk_bytes``: every block updates its part's SHA-256 (which the part's URL will bind) on the
reading thread and the whole file's SHA-256 (given at completion: docs/integrity.md) on a
helper thread, so the two hashes run on two cores (hashlib releases the GIL). The bytes are
dropped once hashed: a part is handed on with its place and checksum only, and its sender reads
it from the file again when it sends it, usually from the operating system's page cache, since
the reader is at most ``ahead_bytes`` ahead of the parts being sent (``slots`` parts: a part
hashed takes a slot, a part sent gives it back; at least ``senders + 1``). Memory is the blocks
in flight, whatever the file's size. A part changed on disk between its hashing and its sending
no longer matches the SHA-256 its URL binds: S3 refuses it (BadDigest) and the client handles
that (``filegate.uploads.client``). Hashing ahead lets the part URLs be asked for in large
pages (``filegate.uploads.part_urls``): each request to the API costs.

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

from filegate.errors import UploadClientError

MiB = 1024 * 1024
# How long a wait for a free slot lasts before the stop signal is looked at again.
_POLL_SECONDS = 0.1
# Blocks read but not yet hashed into the whole file's SHA-256: enough to keep both threads busy.
_QUEUED = 4


class FileChangedError(UploadClientError):
    """A part S3 holds from an earlier run no longer matches the file's bytes."""


@dataclass
class Part:
    """One part hashed: its place in the file and its SHA-256 (base64); ``release`` gives its
    slot back once it is sent (or given up)."""

    number: int
    offset: int
    size: int
    checksum: str
    _slots: queue.Queue[None]
    _released: bool = False

    def release(self) -> None:
        """Give the part's slot back; once."""
        if not self._released:
            self._released = True
            self._slots.put(None)


class PartReader:
    """The parts of ``path`` at ``part_size``, hashed in order ahead of sending; see the module."""

    def __init__(
        self,
        path: Path,
        size: int,
        part_size: int,
        senders: int,
        ahead_bytes: int,
        chunk_bytes: int,
        held: dict[int, str] | None = None,
    ) -> None:
        self.path, self.size, self.part_size = path, size, part_size
        self.slots = max(senders + 1, ahead_bytes // part_size)
        self._slots: queue.Queue[None] = queue.Queue()
        for _ in range(self.slots):
            self._slots.put(None)
        self._chunk_bytes = chunk_bytes
        self._held = dict(held or {})
        self._sha256: str | None = None

    @property
    def sha256(self) -> str:
        """The whole file's SHA-256 (hex), once every part has been read."""
        if self._sha256 is None:
            raise RuntimeError("the whole file's SHA-256 is known once every part is read")
        return self._sha256

    def parts(self, stop: threading.Event) -> Iterator[Part]:
        """Each part S3 does not hold yet, in order; stops early once ``stop`` is set."""
        whole = _WholeHasher()
        try:
            with self.path.open("rb", buffering=0) as handle:
                for number, offset in enumerate(range(0, self.size, self.part_size), start=1):
                    length = min(self.part_size, self.size - offset)
                    if number in self._held:
                        if self._hash(handle, number, length, whole) != self._held[number]:
                            raise FileChangedError(
                                f"part {number} held in S3 no longer matches the file's bytes",
                                field="file",
                            )
                        continue
                    if not self._take_slot(stop):
                        return
                    checksum = self._hash(handle, number, length, whole)
                    yield Part(number, offset, length, checksum, self._slots)
        finally:
            digest = whole.close()
        self._sha256 = digest

    def _take_slot(self, stop: threading.Event) -> bool:
        """Wait until fewer than ``slots`` parts are hashed and not yet sent; False: stopped."""
        while not stop.is_set():
            try:
                self._slots.get(timeout=_POLL_SECONDS)
                return True
            except queue.Empty:
                continue
        return False

    def _hash(self, handle: FileIO, number: int, length: int, whole: _WholeHasher) -> str:
        part = hashlib.sha256()
        left = length
        while left:
            block = handle.read(min(self._chunk_bytes, left))
            if not block:
                raise UploadClientError(
                    f"{self.path} is shorter than when its upload was declared (part {number}):"
                    " was it truncated? Upload it again"
                )
            whole.feed(block)
            part.update(block)
            left -= len(block)
        return base64.b64encode(part.digest()).decode("ascii")


class _WholeHasher:
    """A helper thread that hashes the blocks fed, in order, into the whole file's SHA-256."""

    def __init__(self) -> None:
        self._blocks: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def feed(self, block: bytes) -> None:
        self._blocks.put(block)

    def close(self) -> str:
        """Wait for the blocks fed so far; the SHA-256 (hex) of them all."""
        self._blocks.put(None)
        self._thread.join()
        return self._digest.hexdigest()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._digest.update(block)
