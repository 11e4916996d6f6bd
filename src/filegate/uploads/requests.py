"""What a partner may send to the upload API, parsed and validated.

This module owns the request bodies' rules: it turns the JSON of ``POST /uploads`` into a frozen
``UploadRequest`` (its whole-file ``sha256`` optional: a multipart upload may give it at completion
instead), the JSON of ``POST /uploads/{id}/complete`` into a ``Completion`` (the parts, each with
its ETag and SHA-256, and the whole file's SHA-256 if given) and that of ``POST
/uploads/{id}/parts`` into the parts to sign (each with the SHA-256 its URL will bind), that of
``POST /uploads/{id}/abort`` into a ``Refusal`` when the client gives up because S3 refused its
bytes, and it checks a request against a partner's limits. Every failure is a ``RequestError`` that
names the field at fault; nothing else escapes, whatever the input. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from filegate.errors import (
    InvalidRequestError,
    UnsupportedTypeError,
    UploadTooLargeError,
)
from filegate.parts import MAX_OBJECT_SIZE, MAX_PART_COUNT, is_sha256_base64

MAX_FILENAME_BYTES = 255
MAX_CONTENT_TYPE_LENGTH = 255
MAX_PARTS = MAX_PART_COUNT
# Part URLs signed in one request (a page). A function URL's response is at most 6 MB; on AWS
# each URL carries the function role's session token (~1.6 KB a URL, ~1.8 KB with its headers),
# so 1,000 URLs are ~1.8 MB, and a plan of 10,000 parts takes ten pages.
MAX_SIGN_PARTS = 1_000
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 9110 token
_MEDIA_TYPE = re.compile(rf"({_TCHARS})/({_TCHARS})")  # "*" is a token character too
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# C0/C1 controls and DEL (Cc), and lone surrogates (Cs), which UTF-8 cannot even encode.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})
_ETAG_MAX = 1024


@dataclass(frozen=True)
class UploadRequest:
    """A validated upload declaration. ``sha256`` is lowercase hex (None: not given, to be
    given at completion), ``content_type`` lowercase."""

    filename: str
    size: int
    sha256: str | None
    content_type: str

    @property
    def sha256_base64(self) -> str | None:
        """The digest as S3's ``x-amz-checksum-sha256`` header carries it."""
        if self.sha256 is None:
            return None
        return base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")


@dataclass(frozen=True)
class CompletedPart:
    """One part the client says it uploaded; ``etag`` as S3 returned it (quotes kept),
    ``checksum_sha256`` the part's SHA-256 in base64 (the one its URL was signed with)."""

    part_number: int
    etag: str
    checksum_sha256: str


@dataclass(frozen=True)
class Completion:
    """A ``POST /uploads/{id}/complete`` body: the parts, and the whole file's SHA-256 (hex,
    lowercase) when the client gives it here rather than in the declaration."""

    parts: tuple[CompletedPart, ...]
    sha256: str | None


@dataclass(frozen=True)
class Refusal:
    """Why a client gives an upload up when it is that S3 refused the bytes it sent:
    ``s3_error`` is S3's code (``BadDigest``: they did not match the SHA-256 their URL binds),
    ``part_number`` the part S3 refused (None for a single PUT)."""

    s3_error: str
    part_number: int | None


# S3's error codes that say the bytes sent are not the ones whose SHA-256 was declared.
REFUSALS = ("BadDigest",)


@dataclass(frozen=True)
class PartToSign:
    """A part whose URL the client asks for, with the SHA-256 (base64) the URL will bind."""

    part_number: int
    checksum_sha256: str


def load_json(body: str | bytes | None, is_base64: bool = False) -> Any:
    """The request body as JSON; a missing, undecodable or malformed body is a 400."""
    if body is None or body in ("", b""):
        raise InvalidRequestError("the request body is empty: send a JSON object", "body")
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body
        return json.loads(raw)
    except (ValueError, RecursionError, binascii.Error) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and over-long integers.
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}", "body") from exc


def parse_upload_request(document: Any) -> UploadRequest:
    """Validate a ``POST /uploads`` body; the error names the first field at fault."""
    fields = _object(document)
    return UploadRequest(
        filename=_filename(_present(fields, "filename")),
        size=_size(_present(fields, "size")),
        sha256=_optional_sha256(fields),
        content_type=_content_type(_present(fields, "content_type")),
    )


def parse_completion(document: Any) -> Completion:
    """Validate a ``POST /uploads/{id}/complete`` body: the parts, and ``sha256`` if given."""
    return Completion(parse_completed_parts(document), _optional_sha256(_object(document)))


def parse_abort(body: str | bytes | None, is_base64: bool, part_count: int) -> Refusal | None:
    """Validate a ``POST /uploads/{id}/abort`` body: none (or ``{}``) to give the upload up,
    or S3's refusal of the bytes (``s3_error``, and for a multipart upload of ``part_count``
    parts the ``part_number`` it refused)."""
    if body is None or body in ("", b""):
        return None
    fields = _object(load_json(body, is_base64))
    if not fields:
        return None
    code = fields.get("s3_error")
    if code not in REFUSALS:
        raise InvalidRequestError(
            f"s3_error must be one of {', '.join(REFUSALS)} (S3 refused the bytes sent as not"
            " matching the SHA-256 their URL binds); send no body to give the upload up",
            "s3_error",
        )
    number = fields.get("part_number")
    if part_count:
        return Refusal(str(code), _part_number(number, "part_number", part_count))
    if number is not None:
        raise InvalidRequestError(
            "part_number is for a multipart upload's part; this upload is one PUT", "part_number"
        )
    return Refusal(str(code), None)


def parse_completed_parts(document: Any) -> tuple[CompletedPart, ...]:
    """Validate a ``POST /uploads/{id}/complete`` body: parts in ascending part order."""
    parts = _present(_object(document), "parts")
    if not isinstance(parts, list) or not parts or len(parts) > MAX_PARTS:
        raise InvalidRequestError(f"parts must be a list of 1 to {MAX_PARTS} parts", "parts")
    completed = tuple(_completed_part(part, f"parts[{n}]") for n, part in enumerate(parts))
    numbers = [part.part_number for part in completed]
    if numbers != sorted(set(numbers)):
        raise InvalidRequestError(
            "parts must be listed once each, by ascending part_number", "parts"
        )
    return completed


def check_limits(request: UploadRequest, max_size: int | None, allowed: Sequence[str]) -> None:
    """413 when the size is above the partner's (or S3's) limit; 415 for a type not allowed."""
    limit = min(max_size or MAX_OBJECT_SIZE, MAX_OBJECT_SIZE)
    if request.size > limit:
        raise UploadTooLargeError(
            f"size {request.size} is above the limit of {limit} bytes for this partner", "size"
        )
    if allowed and not any(type_matches(request.content_type, p) for p in allowed):
        raise UnsupportedTypeError(
            f"content_type {request.content_type} is not allowed; allowed: {', '.join(allowed)}",
            "content_type",
        )


def type_matches(content_type: str, pattern: str) -> bool:
    """``image/png`` matches ``image/png``, ``image/*`` and ``*/*`` (case-insensitively)."""
    kind, _, subtype = content_type.lower().partition("/")
    want_kind, _, want_subtype = pattern.lower().partition("/")
    return want_kind in ("*", kind) and want_subtype in ("*", subtype)


def is_type_pattern(text: str) -> bool:
    """A media type (``text/csv``) or a wildcard over one (``image/*``, ``*/*``)."""
    match = _MEDIA_TYPE.fullmatch(text)
    if len(text) > MAX_CONTENT_TYPE_LENGTH or not match:
        return False
    kind, subtype = match.groups()
    return kind != "*" or subtype == "*"


def _object(document: Any) -> Mapping[str, Any]:
    if not isinstance(document, dict):
        raise InvalidRequestError("the request body must be a JSON object", "body")
    return document


def _present(fields: Mapping[str, Any], name: str) -> Any:
    if name not in fields or fields[name] is None:
        raise InvalidRequestError(f"{name} is required", name)
    return fields[name]


def _filename(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("filename must be a non-empty string", "filename")
    problem = _filename_problem(value)
    if problem:
        raise InvalidRequestError(f"filename {problem}", "filename")
    return value


def _filename_problem(name: str) -> str | None:
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in name):
        return "must not contain control characters"
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        return f"must be at most {MAX_FILENAME_BYTES} bytes in UTF-8"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "must be a plain file name: no '/', no '\\', not '.' or '..'"
    if name != name.strip():
        return "must not start or end with whitespace"
    return None


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError("size must be a whole number of bytes", "size")
    if value < 1:
        raise InvalidRequestError(f"size must be at least 1 byte, not {value}", "size")
    return value


def _optional_sha256(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("sha256")
    return None if value is None else _sha256(value)


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise InvalidRequestError("sha256 must be 64 hexadecimal characters", "sha256")
    return value.lower()


def _content_type(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_CONTENT_TYPE_LENGTH:
        raise InvalidRequestError(
            f"content_type must be a string of at most {MAX_CONTENT_TYPE_LENGTH} characters",
            "content_type",
        )
    match = _MEDIA_TYPE.fullmatch(value)
    if not match or "*" in match.groups():
        raise InvalidRequestError(
            "content_type must be a media type type/subtype (no parameters, no wildcard)",
            "content_type",
        )
    return value.lower()


def _completed_part(value: Any, where: str) -> CompletedPart:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where} must be an object", where)
    number = value.get("part_number")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
        raise InvalidRequestError(
            f"{where}.part_number must be a whole number from 1 to {MAX_PARTS}",
            f"{where}.part_number",
        )
    etag = value.get("etag")
    if not isinstance(etag, str) or not etag.strip('"') or len(etag) > _ETAG_MAX:
        raise InvalidRequestError(f"{where}.etag must be the ETag S3 returned", f"{where}.etag")
    if not etag.isprintable() or not etag.isascii():
        raise InvalidRequestError(f"{where}.etag must be printable ASCII", f"{where}.etag")
    return CompletedPart(
        part_number=number, etag=etag, checksum_sha256=_checksum(value, f"{where}.checksum_sha256")
    )


def _checksum(fields: Mapping[str, Any], where: str) -> str:
    value = fields.get("checksum_sha256")
    if not is_sha256_base64(value):
        raise InvalidRequestError(
            f"{where} must be the part's SHA-256 in base64 (44 characters, as S3's"
            " x-amz-checksum-sha256 header carries it)",
            where,
        )
    return str(value)


def parse_parts_to_sign(document: Any, part_count: int) -> tuple[PartToSign, ...]:
    """Validate a ``POST /uploads/{id}/parts`` body: distinct parts of the plan with their
    SHA-256, at most a page's worth; an empty list only extends the upload's expiry."""
    parts = _present(_object(document), "parts")
    if not isinstance(parts, list) or len(parts) > MAX_SIGN_PARTS:
        raise InvalidRequestError(
            f"parts must be a list of at most {MAX_SIGN_PARTS} parts: ask for more in pages",
            "parts",
        )
    parsed = tuple(_part_to_sign(part, f"parts[{i}]", part_count) for i, part in enumerate(parts))
    if len({part.part_number for part in parsed}) != len(parsed):
        raise InvalidRequestError("parts must list each part once", "parts")
    return parsed


def _part_to_sign(value: Any, where: str, part_count: int) -> PartToSign:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where} must be an object", where)
    number = _part_number(value.get("part_number"), f"{where}.part_number", part_count)
    return PartToSign(number, _checksum(value, f"{where}.checksum_sha256"))


def _part_number(value: Any, where: str, part_count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTS:
        raise InvalidRequestError(f"{where} must be a whole number from 1 to {MAX_PARTS}", where)
    if value > part_count:
        raise InvalidRequestError(f"{where} is {value}, but the plan has {part_count} parts", where)
    return value
