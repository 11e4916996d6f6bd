"""CompleteMultipartUpload joining the parts where they are, in the emulator process only, and
answering NoSuchUpload for an upload the bucket does not hold (moto: a KeyError, 500).

moto's ``FakeMultipart.complete`` copies the whole object four times in memory (the parts joined
in a bytearray, a second one for the default full-object checksum, a bytes copy of each) and once
more into a temporary file: 5-12 s for 1 GiB on a small VM, where fresh memory is what costs
(docs/benchmarks-uploads.md; re-measured in docs/benchmarks.md: 9.4x the complete call's time and
+2 GiB peak memory for 512 MiB without it). The new object now reads its parts back to back
where they already are; its ETag, checksum type and value are computed as moto computes them.

A composite SHA-256 is built from the parts' SHA-256 that the middleware verified when each part
arrived (``s3_checksum_check.verified_parts``), as S3 builds it from the part-level checksums it
stored (S3 user guide, "Checking object integrity in Amazon S3", part-level checksums for
multipart uploads): the completion reads no part's bytes, where moto hashes every byte again
(0.94 s for 1 GiB; docs/benchmarks-uploads.md). A part without a verified checksum (an
in-process test, which has no middleware) is hashed as moto hashes it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from filegate.local.patches.seams import Seams
from filegate.local.s3_checksum_check import verified_parts

_CRC_ALGORITHMS = frozenset({"CRC32", "CRC32C", "CRC64NVME"})


class JoinedParts:
    """The parts of a completed multipart upload, read back to back as one read-only file.

    It stands in for the buffer in which moto's key would hold a copy of the object: moto only
    ever seeks it to 0, reads it (whole, or in chunks for an ETag) and closes it when the key is
    disposed of; closing it disposes of the parts.
    """

    def __init__(self, parts: list[Any]) -> None:
        self._parts = parts
        self._next = 0
        self._pending = b""
        self.size = sum(part.contentsize for part in parts)
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("the joined parts are only read from the start")
        self._next, self._pending = 0, b""
        return 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            rest = [self._pending, *(part.value for part in self._parts[self._next :])]
            self._next, self._pending = len(self._parts), b""
            return b"".join(rest)
        while not self._pending and self._next < len(self._parts):
            self._pending = self._parts[self._next].value
            self._next += 1
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for part in self._parts:
                part.dispose()


class RunningChecksum:
    """moto's ``compute_checksum`` over data that arrives in pieces: same algorithm choices
    (including its CRC32 stand-in when the optional ``crc32c`` / ``awscrt`` is missing)."""

    def __init__(self, algorithm: str) -> None:
        self._hash: Any = None
        self._crc, self._width = _crc_function(algorithm)
        self._value = 0
        if algorithm not in _CRC_ALGORITHMS:  # moto: SHA1, else SHA-256
            name = "sha1" if algorithm == "SHA1" else "sha256"
            self._hash = hashlib.new(name, usedforsecurity=False)

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._value = self._crc(data, self._value)

    def digest(self) -> bytes:
        if self._hash is not None:
            return bytes(self._hash.digest())
        return self._value.to_bytes(self._width, "big")


def _crc_function(algorithm: str) -> tuple[Callable[[bytes, int], int], int]:
    """The running CRC moto would use for ``algorithm``, and its width in bytes."""
    if algorithm == "CRC32C":
        try:
            import crc32c  # type: ignore[import-not-found]  # optional, as in moto
        except ImportError:
            return binascii.crc32, 4
        return (lambda data, value: int(crc32c.crc32c(data, value))), 4
    if algorithm == "CRC64NVME":
        from moto.core.compat import HAS_CRT

        if HAS_CRT:
            from awscrt import checksums  # type: ignore[import-not-found]

            return (lambda data, value: int(checksums.crc64nvme(data, value))), 8
    return binascii.crc32, 4


class PartsChecksum:
    """The checksum moto stores for a completed multipart upload, fed one part at a time.

    A composite SHA-256 is built from the parts' verified SHA-256s when every part has one,
    any other COMPOSITE checksum by moto's own builder (a checksum per part); a FULL_OBJECT
    one runs over the parts as they pass instead of over a copy of the object.
    """

    def __init__(self, algorithm: str | None, checksum_type: str | None) -> None:
        from moto.s3.models import MultipartChecksumBuilder

        self._builder = MultipartChecksumBuilder(algorithm, checksum_type)
        self._running = RunningChecksum(self._builder.checksum_algorithm)
        self._full_object = self._builder.checksum_type != "COMPOSITE"
        # A composite's parts, each with the SHA-256 its body was verified against (or None).
        self._parts: list[tuple[Any, str | None]] = []

    def add(self, part: Any, verified: str | None = None) -> None:
        """Add ``part`` (a moto part: ``.value`` is its bytes), with the SHA-256 its body was
        verified against when it arrived, if any."""
        if self._full_object:
            self._running.update(part.value)
        else:
            self._parts.append((part, verified))

    def build(self) -> tuple[str, str, int] | None:
        if self._full_object:
            digest = base64.b64encode(self._running.digest()).decode()
            return self._builder.checksum_type, digest, 1
        checksums = [verified for _, verified in self._parts]
        if self._builder.checksum_algorithm == "SHA256" and all(checksums):
            # S3's composite: the SHA-256 of the parts' SHA-256s, no byte read again.
            joined = b"".join(base64.b64decode(checksum or "") for checksum in checksums)
            composite = base64.b64encode(hashlib.sha256(joined).digest()).decode()
            return "COMPOSITE", composite, len(checksums)
        for part, _ in self._parts:  # a part without one: hash every part, as moto does
            self._builder.addPart(part.value)
        return self._builder.build()


def _complete_multipart(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """``FakeMultipart.complete`` with the listed parts joined instead of copied: the same
    checks (InvalidPart, EntityTooSmall, MalformedXML), ETag and checksum as moto's."""
    from moto import settings
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML

    checksum = PartsChecksum(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    md5s, listed = hashlib.md5(usedforsecurity=False), list[Any]()
    verified = verified_parts.of_upload(self.id)
    for number, etag in body:
        part = self.parts.get(number)
        part_etag = part.etag.replace('"', "") if part is not None else None
        if part is None or part_etag != etag.replace('"', ""):
            raise InvalidPart()
        if listed and listed[-1].contentsize < settings.S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.update(bytes.fromhex(part_etag))
        checksum.add(part, verified.get(number))
        listed.append(part)
    if not listed:
        raise MalformedXML
    for part in listed:
        # The new object owns them now: moto disposes of what is left when it drops the upload.
        self.parts.pop(part.name, None)
    return JoinedParts(listed), f"{md5s.hexdigest()}-{len(listed)}", checksum.build()


def _value_setter(set_value: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """FakeKey's ``value`` setter, which also takes ``JoinedParts`` as they are."""

    @functools.wraps(set_value)
    def setter(self: Any, new_value: Any) -> None:
        if not isinstance(new_value, JoinedParts):
            set_value(self, new_value)
            return
        self._value_buffer.close()
        self._value_buffer = new_value
        self.contentsize = new_value.size

    return setter


def _known_upload(complete: Callable[..., Any]) -> Callable[..., Any]:
    """``S3Backend.complete_multipart_upload`` answering 404 NoSuchUpload for an upload the
    bucket does not hold (never created, aborted, or completed and no longer the key's object),
    as S3 answers it (S3 API reference, CompleteMultipartUpload, "Errors": NoSuchUpload, "The
    specified multipart upload does not exist. The upload ID might be invalid, or the multipart
    upload might have been aborted or completed."), where moto fails with a KeyError (500)."""
    from moto.s3.exceptions import NoSuchUpload

    @functools.wraps(complete)
    def known(self: Any, bucket_name: str, multipart_id: str, body: Any) -> Any:
        if multipart_id not in self.get_bucket(bucket_name).multiparts:
            raise NoSuchUpload(upload_id=multipart_id)
        return complete(self, bucket_name, multipart_id, body)

    return known


def patch(seams: Seams) -> None:
    """Install the multipart join, and NoSuchUpload for a completion of an unknown upload."""
    from moto.s3 import models

    value = vars(models.FakeKey)["value"]  # the property object itself
    seams.replace(models.FakeKey, "value", property(value.fget, _value_setter(value.fset)))
    seams.replace(models.FakeMultipart, "complete", _complete_multipart)
    complete = models.S3Backend.complete_multipart_upload
    seams.replace(models.S3Backend, "complete_multipart_upload", _known_upload(complete))
