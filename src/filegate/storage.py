"""Every S3 object call filegate makes (head for ingestion; put and delete), behind ``ObjectStore``.

botocore errors are translated into ``StorageError`` here and nowhere else. A missing object
(or object version) is an answer, not an error: ``head`` returns ``None``.
Only botocore's exceptions are imported at module level: the client is injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef, HeadObjectRequestTypeDef

# A HEAD response has no body, so S3 reports a missing key or version by status code alone.
_GONE_CODES = frozenset({"404", "NoSuchKey", "NoSuchVersion"})
_PERMISSION = {
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}
NULL_VERSION = "null"  # what S3 reports for objects written while versioning was off


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject says about one object version. ``etag`` is without quotes."""

    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    checksum_sha256: str | None


class ObjectStore:
    """S3 object calls through an injected client: head for ingestion, put and delete."""

    def __init__(self, s3_client: S3Client) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """One HeadObject; ``None`` when the object (or that version) no longer exists."""
        with _translated("HeadObject", bucket, key):
            try:
                response = self._s3.head_object(**_head_request(bucket, key, version_id))
            except ClientError as exc:
                if _error_code(exc) in _GONE_CODES:
                    return None
                raise
        return _object_info(response)

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str | None:
        """One PutObject with a SHA-256 checksum; the new version id (None if unversioned)."""
        with _translated("PutObject", bucket, key):
            response = self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
            )
        return response.get("VersionId")

    def delete(self, bucket: str, key: str) -> None:
        """One DeleteObject (in a versioned bucket: a delete marker)."""
        with _translated("DeleteObject", bucket, key):
            self._s3.delete_object(Bucket=bucket, Key=key)


def _head_request(bucket: str, key: str, version_id: str | None) -> HeadObjectRequestTypeDef:
    # ChecksumMode makes S3 return the stored SHA-256 (when the upload sent one).
    request: HeadObjectRequestTypeDef = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id and version_id != NULL_VERSION:
        request["VersionId"] = version_id
    return request


def _object_info(response: HeadObjectOutputTypeDef) -> ObjectInfo:
    etag = response.get("ETag")
    return ObjectInfo(
        size=response.get("ContentLength", 0),
        content_type=response.get("ContentType") or None,
        etag=etag.strip('"') if etag else None,
        version_id=response.get("VersionId") or None,
        checksum_sha256=response.get("ChecksumSHA256") or None,
    )


@contextmanager
def _translated(operation: str, bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StorageError(_failure(operation, bucket, key, _error_code(exc))) from exc
    except BotoCoreError as exc:
        raise StorageError(_failure(operation, bucket, key, type(exc).__name__)) from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _failure(operation: str, bucket: str, key: str, reason: str) -> str:
    return (
        f"{operation} s3://{bucket}/{key} failed ({reason}): check that the bucket exists and "
        f"that the caller may {_PERMISSION[operation]} on it"
    )
