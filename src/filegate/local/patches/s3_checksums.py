"""Two seams that make moto answer S3's checksums as S3 does, in every process that applies
``patches`` (in-process tests too, where there is no middleware):

- a PUT whose body does not match its ``x-amz-checksum-*`` is refused with 400 BadDigest, as
  S3 refuses it (S3 user guide, "Checking object integrity in Amazon S3"): moto's
  ``S3Response._get_checksum`` is where the decoded body is seen. An UploadPart that the
  emulator's middleware (``local/s3_checksum_check.py``) checked already is not hashed again
  (a second SHA-256 of every byte of a multipart upload: about a tenth of the emulator's CPU
  while it receives one, docs/benchmarks-uploads.md);
- HeadObject with ChecksumMode answers as S3 does (S3 API reference, HeadObject:
  ``x-amz-checksum-type``; S3 user guide, "Checking object integrity": a composite checksum is
  ``<base64>-<N>``), where moto's HeadObject leaves out the ``-<N>`` and the type (its GetObject
  has both). Whether a checksum is composite is known only to moto's key, so this is a seam, not
  middleware.

The multipart calls' checksum rules are middleware: ``local/s3_checksum_check.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from filegate.local.patches.seams import Seams
from filegate.local.s3_checksum_check import CHECKED

_ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")


def _verified(get_checksum: Callable[..., tuple[str, str | None]]) -> Callable[..., Any]:
    from moto.s3.exceptions import S3ClientError
    from moto.s3.utils import compute_checksum

    @functools.wraps(get_checksum)
    def wrapper(self: Any, response_headers: dict[str, Any]) -> tuple[str, str | None]:
        result = get_checksum(self, response_headers)
        environ = getattr(getattr(self, "request", None), "environ", None)
        if isinstance(environ, dict) and environ.get(CHECKED):
            return result  # the emulator's middleware checked this body already
        for algorithm in _ALGORITHMS:
            declared = self.headers.get(f"x-amz-checksum-{algorithm.lower()}")
            if declared and compute_checksum(self.body or b"", algorithm).decode() != declared:
                raise S3ClientError(
                    "BadDigest",
                    f"The {algorithm} you specified did not match the calculated checksum.",
                )
        return result

    return wrapper


def _qualified_head(head_object: Callable[..., Any]) -> Callable[..., Any]:
    """moto's HeadObject with the checksum type, and a composite checksum's ``-<N>``."""

    @functools.wraps(head_object)
    def wrapper(
        self: Any, bucket_name: str, query: dict[str, Any], key_name: str, headers: Any
    ) -> Any:
        status, response_headers, body = head_object(self, bucket_name, query, key_name, headers)
        if status != 200 or headers.get("x-amz-checksum-mode") != "ENABLED":
            return status, response_headers, body
        version_id = query.get("versionId", [None])[0]
        key = self.backend.head_object(bucket_name, key_name, version_id=version_id)
        algorithm = getattr(key, "checksum_algorithm", None)
        header = f"x-amz-checksum-{algorithm.lower()}" if algorithm else ""
        if header in response_headers:
            kind = key.checksum_type or "FULL_OBJECT"
            response_headers["x-amz-checksum-type"] = kind
            value = str(response_headers[header])
            if kind == "COMPOSITE" and key.checksum_parts and "-" not in value:
                response_headers[header] = f"{value}-{key.checksum_parts}"
        return status, response_headers, body

    return wrapper


def patch(seams: Seams) -> None:
    """Install the PutObject check and HeadObject's checksum answer."""
    from moto.s3.responses import S3Response

    seams.replace(S3Response, "_get_checksum", _verified(S3Response._get_checksum))
    seams.replace(S3Response, "head_object", _qualified_head(S3Response.head_object))
