"""S3's checksum rules for multipart uploads, as WSGI middleware around moto's app.

moto stores the checksum a request declares (``x-amz-checksum-<algorithm>``) without computing
it (docs/local-mode.md), so a body that does not match would be kept with a false checksum. S3
refuses such a request with 400 BadDigest and stores nothing (S3 user guide, "Checking object
integrity in Amazon S3"; S3 API reference, "Error responses": BadDigest). ``ChecksumCheck`` is
composed in ``emulator.application`` and sees the S3 multipart calls before moto does:

- an UploadPart whose body does not match its ``x-amz-checksum-sha256`` (or ``-sha1``,
  ``-crc32``) is answered 400 BadDigest and moto never stores it;
- the checksum of each part it passed is remembered, so a CompleteMultipartUpload that lists a
  part with another checksum (or none, when the part has one) is answered 400 InvalidPart as S3
  answers it (S3 API reference, CompleteMultipartUpload, "Errors");
- ListParts reports each part's ``ChecksumSHA256`` (moto reports none; S3 API reference,
  ListParts, "Part").

The part checksums it verified are kept in :data:`verified_parts`, one table for the process:
the completion seam (``patches.s3_multipart``) builds the object's composite SHA-256 from them,
as S3 builds a composite checksum from the checksums of the parts (S3 user guide, "Checking
object integrity in Amazon S3": "Using part-level checksums for multipart uploads"), instead of
reading every part's bytes again. What can only be corrected inside moto (a PUT's body, HeadObject's
checksum type and ``-<N>``) is ``patches.s3_checksums``. A body sent ``aws-chunked`` (an SDK's
trailing checksum) is passed on unchecked: the twin does not decode chunked payloads here
(docs/aws-fidelity.md). This module imports nothing of moto's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

_ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")
_LISTED_PART = re.compile(rb"<Part>(.*?)</Part>", re.S)
_PART_NUMBER = re.compile(rb"<PartNumber>(\d+)</PartNumber>")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Set in the WSGI environ of a part whose checksum headers this middleware checked. An HTTP client
# cannot set it: the server puts request headers under "HTTP_..." keys only.
CHECKED = "filegate.checksums_checked"
PartKey = tuple[str, int]  # (upload id, part number)


class VerifiedParts:
    """The SHA-256 (base64, as the header carried it) of each stored part whose body matched it,
    by (upload id, part number); thread-safe."""

    def __init__(self) -> None:
        self._parts: dict[PartKey, str] = {}
        self._lock = threading.Lock()

    def keep(self, part: PartKey, checksum: str | None) -> None:
        with self._lock:
            if checksum:
                self._parts[part] = checksum
            else:
                self._parts.pop(part, None)

    def get(self, part: PartKey) -> str | None:
        with self._lock:
            return self._parts.get(part)

    def of_upload(self, upload_id: str) -> dict[int, str]:
        with self._lock:
            return {number: c for (u, number), c in self._parts.items() if u == upload_id}

    def forget(self, upload_id: str) -> None:
        with self._lock:
            for part in [p for p in self._parts if p[0] == upload_id]:
                del self._parts[part]


verified_parts = VerifiedParts()  # upload ids are unique, so one table serves every app


def digest_of(body: bytes, algorithm: str) -> str | None:
    """``body``'s checksum as S3's header carries it (base64); None for an algorithm the
    standard library cannot compute (CRC32C, CRC64NVME: left to moto)."""
    if algorithm == "SHA256":
        raw = hashlib.sha256(body).digest()
    elif algorithm == "SHA1":
        raw = hashlib.sha1(body, usedforsecurity=False).digest()
    elif algorithm == "CRC32":
        raw = binascii.crc32(body).to_bytes(4, "big")
    else:
        return None
    return base64.b64encode(raw).decode("ascii")


class ChecksumCheck:
    """S3's checksum rules for multipart uploads, around moto's app (see the module docstring)."""

    def __init__(self, app: WsgiApp, parts: VerifiedParts = verified_parts) -> None:
        self._app = app
        self._parts = parts  # the SHA-256 of each part moto stored

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        upload_id = (query.get("uploadId") or [""])[0]
        method = environ.get("REQUEST_METHOD", "")
        if not upload_id:
            return self._app(environ, start_response)
        if method == "PUT" and "partNumber" in query and "HTTP_X_AMZ_COPY_SOURCE" not in environ:
            return self._upload_part(environ, start_response, (upload_id, _int(query)))
        if method == "POST":
            return self._complete(environ, start_response, upload_id)
        if method == "GET":
            return self._list_parts(environ, start_response, upload_id)
        if method == "DELETE":
            self._parts.forget(upload_id)
        return self._app(environ, start_response)

    def _upload_part(
        self, environ: dict[str, Any], start_response: Callable[..., Any], part: PartKey
    ) -> Any:
        if "aws-chunked" in environ.get("HTTP_CONTENT_ENCODING", ""):
            return self._app(environ, start_response)
        body = _read_body(environ)
        for algorithm in _ALGORITHMS:
            declared = environ.get(f"HTTP_X_AMZ_CHECKSUM_{algorithm}")
            actual = digest_of(body, algorithm) if declared else None
            if actual is not None and actual != declared:
                message = f"The {algorithm} you specified did not match the calculated checksum."
                return _error(start_response, "BadDigest", message)
        environ[CHECKED] = True  # not hashed again by patches.s3_checksums
        return self._app(environ, _on_success(start_response, lambda: self._keep(environ, part)))

    def _keep(self, environ: dict[str, Any], part: PartKey) -> None:
        self._parts.keep(part, environ.get("HTTP_X_AMZ_CHECKSUM_SHA256"))

    def _complete(
        self, environ: dict[str, Any], start_response: Callable[..., Any], upload_id: str
    ) -> Any:
        body = _read_body(environ)
        problem = self._listed_problem(upload_id, body)
        if problem:
            return _error(start_response, "InvalidPart", problem)
        forget = _on_success(start_response, lambda: self._parts.forget(upload_id))
        return self._app(environ, forget)

    def _listed_problem(self, upload_id: str, body: bytes) -> str | None:
        """Why a completion's listed checksums are not the stored parts'; None if they are.
        (A body that is not the XML S3 expects is moto's to answer: MalformedXML.)"""
        for part in _LISTED_PART.finditer(body):
            number = _element(part.group(1), "PartNumber")
            listed = _element(part.group(1), "ChecksumSHA256")
            stored = self._parts.get((upload_id, int(number))) if number.isdigit() else None
            if stored is not None and listed != stored:
                return (
                    f"One or more of the specified parts could not be found. The part might not"
                    f" have been uploaded, or the specified checksum ({listed or 'none'}) might"
                    f" not have matched the part's checksum (part {number})."
                )
        return None

    def _list_parts(
        self, environ: dict[str, Any], start_response: Callable[..., Any], upload_id: str
    ) -> Any:
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answer.update(status=status, headers=headers, rest=rest)
            return lambda data: None

        body = b"".join(self._app(environ, capture))
        if answer.get("status", "").startswith("200"):
            body = self._with_checksums(upload_id, body)
        headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
        start_response(answer["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _with_checksums(self, upload_id: str, body: bytes) -> bytes:
        known = self._parts.of_upload(upload_id)

        def add(match: re.Match[bytes]) -> bytes:
            checksum = known.get(int(match.group(1)))
            if checksum is None:
                return match.group(0)
            return match.group(0) + f"<ChecksumSHA256>{escape(checksum)}</ChecksumSHA256>".encode()

        return _PART_NUMBER.sub(add, body)


def _int(query: dict[str, list[str]]) -> int:
    text = (query.get("partNumber") or ["0"])[0]
    return int(text) if text.isdigit() else 0


def _element(xml: bytes, name: str) -> str:
    """The text of the first ``<name>`` in ``xml`` (S3's request bodies have no attributes)."""
    match = re.search(rb"<%s>\s*([^<]*?)\s*</%s>" % (name.encode(), name.encode()), xml)
    return match.group(1).decode("utf-8", "replace") if match else ""


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for the app behind."""
    length = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _on_success(start_response: Callable[..., Any], then: Callable[[], None]) -> Any:
    """``start_response`` that runs ``then`` when the app answers 200."""

    def wrapped(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
        if status.startswith("200"):
            then()
        return start_response(status, headers, *rest)

    return wrapped


def _error(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]
