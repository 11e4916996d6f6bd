"""Every S3 call filegate makes: ``ObjectStore`` (head for ingestion; put and delete),
``BucketOps`` (listing objects and open multipart uploads, aborting those, the bucket's
notification configuration, encryption and small state files for the operations commands;
creating and configuring buckets and uploading zips for ``filegate deploy`` and the local
stack) and ``UploadSigner`` (presigned PUTs and multipart uploads for the upload API, each
part's SHA-256 bound in its URL: docs/integrity.md).

botocore errors are translated into ``StorageError`` here and nowhere else. A missing object
(or object version, or bucket) is an answer, not an error: ``head`` returns ``None``,
``exists`` and ``bucket_exists`` False; ``MISSING_OBJECT_CODES`` and ``MISSING_BUCKET_CODES``
say which of S3's answers mean "missing", once.
Only botocore's exceptions and client configuration are imported at module level: the client is
injected; ``SIGNING_CONFIG`` is how the upload API's client must be built (SigV4, regional
virtual-hosted endpoint).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import PartsRejectedError, StorageError, error_code
from filegate.parts import (  # noqa: F401 - re-exported: the signer's limits
    MAX_PART_COUNT,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    START_PART_SIZE,
    part_ranges,
    part_size_for,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        HeadObjectOutputTypeDef,
        HeadObjectRequestTypeDef,
        NotificationConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )

# The S3 client that presigns for partners. botocore's defaults would hand out SigV2 URLs
# (``?AWSAccessKeyId=...&Signature=...``) in the regions that still accepted SigV2 before 2014
# (us-east-1, us-west-2, eu-west-1, ap-southeast-1, ...), which S3 refuses for buckets created
# after June 24, 2020 ("AWS Signature Version 2 turned off (deprecated) for Amazon S3", S3 API
# reference), and on the global host ``bucket.s3.amazonaws.com``, which answers 307 Temporary
# Redirect for up to 24 hours after a bucket is created outside us-east-1 (S3 API reference,
# "Request routing: Temporary request redirection"; AWS Knowledge Center "Why does S3 return
# a 307 Temporary Redirect"), a redirect a browser's CORS preflight does not follow. SigV4 on
# the regional virtual-hosted endpoint (``https://<bucket>.s3.<region>.amazonaws.com/<key>``,
# "Virtual hosting of buckets" and "Regional and zonal endpoints") works in every region from
# the bucket's first second. With an endpoint URL (the local stack's 127.0.0.1:port) botocore
# addresses the bucket in the path, as an IP address has no bucket subdomains.
SIGNING_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
)
# A HEAD response has no body, so S3 reports a missing key, version or bucket by status code
# alone (botocore names it "404", or "NotFound"); the other calls name it (NoSuchKey, ...).
# Only these mean "missing": a 403 is an error, also for a missing key (see _PERMISSION).
MISSING_OBJECT_CODES = frozenset({"404", "NotFound", "NoSuchKey", "NoSuchVersion"})
MISSING_BUCKET_CODES = frozenset({"404", "NotFound", "NoSuchBucket"})
_PERMISSION = {
    # S3 API reference, HeadObject: without s3:ListBucket on the bucket, S3 answers 403
    # Forbidden instead of 404 Not Found for a key that does not exist.
    "HeadObject": (
        "s3:GetObject (s3:GetObjectVersion for a version) and s3:ListBucket (without it S3"
        " answers 403, not 404, for a key or version that does not exist)"
    ),
    "GetObject": "s3:GetObject",
    "HeadBucket": "s3:ListBucket",
    "CreateBucket": "s3:CreateBucket",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "PutBucketCors": "s3:PutBucketCORS",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "UploadFile": "s3:PutObject (and the multipart calls for a large file)",
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "PresignPutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "PresignUploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
# The multipart checksum: composite SHA-256 (docs/integrity.md says why not CRC64NVME).
CHECKSUM_ALGORITHM: Final = "SHA256"
ENCRYPTION: Final = "AES256"
# Answers to CompleteMultipartUpload that are about the parts the client listed, not about us:
# a listed ETag or ChecksumSHA256 that is not the stored part's is InvalidPart (S3 API reference,
# CompleteMultipartUpload, "Errors"); BadDigest is how S3 names a checksum that does not match.
_PARTS_CODES = frozenset(
    {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload", "BadDigest"}
)
NULL_VERSION = "null"  # what S3 reports for objects written while versioning was off
# A conditional request whose condition did not hold: the object changed (or appeared) meanwhile.
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject says about one object version. ``etag`` is without quotes."""

    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    checksum_sha256: str | None
    checksum_type: str | None = None  # FULL_OBJECT or COMPOSITE, when S3 holds a checksum

    @property
    def checksum_part_count(self) -> int | None:
        """Parts behind S3's checksum: N of a composite ``<base64>-N``, 1 for a full object."""
        if not self.checksum_sha256:
            return None
        _, dash, count = self.checksum_sha256.rpartition("-")
        return int(count) if dash and count.isdigit() else 1


class ObjectStore:
    """S3 object calls through an injected client: head for ingestion, put and delete.

    There is no read: the ingestion judges an object from HeadObject's checksum, never its bytes.
    """

    def __init__(self, s3_client: S3Client) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """One HeadObject; ``None`` when the object (or that version) no longer exists."""
        with _translated("HeadObject", bucket, key):
            try:
                response = self._s3.head_object(**_head_request(bucket, key, version_id))
            except ClientError as exc:
                if error_code(exc) in MISSING_OBJECT_CODES:
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


@dataclass(frozen=True)
class LatestVersion:
    """The latest version of one key, as ListObjectVersions reports it (a delete marker too)."""

    key: str
    version_id: str | None
    deleted: bool  # the latest version is a delete marker: the object is gone
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None


def latest_versions(pages: Iterator[Mapping[str, Any]]) -> Iterator[LatestVersion]:
    """The ``IsLatest`` entries of ListObjectVersions pages, objects and delete markers alike."""
    for page in pages:
        for entry in page.get("Versions", []):
            if entry.get("IsLatest"):
                yield _listed(entry, deleted=False)
        for entry in page.get("DeleteMarkers", []):
            if entry.get("IsLatest"):
                yield _listed(entry, deleted=True)


def _listed(entry: Mapping[str, Any], deleted: bool) -> LatestVersion:
    modified = entry.get("LastModified")
    return LatestVersion(
        key=entry["Key"],
        version_id=entry.get("VersionId") or None,
        deleted=deleted,
        size=None if deleted else entry.get("Size"),
        etag=None if deleted else (entry.get("ETag") or "").strip('"') or None,
        last_modified=modified.isoformat() if modified is not None else None,
    )


@dataclass(frozen=True)
class OpenMultipartUpload:
    """One multipart upload S3 holds open (ListMultipartUploads): started, neither completed
    nor aborted. Its parts are stored, and paid for, until one of the two happens."""

    key: str
    upload_id: str
    initiated: datetime


def open_multipart_uploads(pages: Iterator[Mapping[str, Any]]) -> Iterator[OpenMultipartUpload]:
    """The ``Uploads`` entries of ListMultipartUploads pages."""
    for page in pages:
        for entry in page.get("Uploads", []):
            initiated = entry["Initiated"]
            if initiated.tzinfo is None:
                initiated = initiated.replace(tzinfo=UTC)
            yield OpenMultipartUpload(entry["Key"], entry["UploadId"], initiated)


class BucketOps:
    """The S3 calls of the operations commands: listing, notifications, state files.

    Kept apart from ``ObjectStore`` (what the Lambda needs) so the function's S3 surface stays
    small; both translate botocore errors into ``StorageError`` the same way.
    """

    def __init__(self, s3_client: S3Client) -> None:
        self._s3 = s3_client

    def latest(self, bucket: str, prefix: str = "") -> Iterator[LatestVersion]:
        """The latest version of every key under ``prefix`` (ListObjectVersions, all pages)."""
        paginator = self._s3.get_paginator("list_object_versions")
        with _translated("ListObjectVersions", bucket, prefix + "*"):
            yield from latest_versions(iter(paginator.paginate(Bucket=bucket, Prefix=prefix)))

    def open_multipart_uploads(
        self, bucket: str, prefix: str = ""
    ) -> Iterator[OpenMultipartUpload]:
        """Every multipart upload open in ``bucket`` under ``prefix`` (all pages)."""
        paginator = self._s3.get_paginator("list_multipart_uploads")
        with _translated("ListMultipartUploads", bucket, prefix + "*"):
            yield from open_multipart_uploads(
                iter(paginator.paginate(Bucket=bucket, Prefix=prefix))
            )

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> bool:
        """AbortMultipartUpload: S3 drops the stored parts. False when S3 no longer knows the
        upload (completed or aborted already): it is gone either way."""
        return _abort_multipart(self._s3, bucket, key, upload_id)

    def notification_configuration(self, bucket: str) -> dict[str, Any]:
        """The bucket's notification configuration as the API returns it (no metadata)."""
        with _translated("GetBucketNotificationConfiguration", bucket, ""):
            response = self._s3.get_bucket_notification_configuration(Bucket=bucket)
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def put_notification_configuration(self, bucket: str, configuration: Mapping[str, Any]) -> None:
        """Replace the bucket's notification configuration (an empty one detaches every target)."""
        document: NotificationConfigurationTypeDef = dict(configuration)  # type: ignore[assignment]
        with _translated("PutBucketNotificationConfiguration", bucket, ""):
            self._s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=document
            )

    def encryption(self, bucket: str) -> dict[str, Any]:
        """The bucket's default encryption as the API returns it (no metadata)."""
        with _translated("GetBucketEncryption", bucket, ""):
            response = self._s3.get_bucket_encryption(Bucket=bucket)
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def bucket_exists(self, bucket: str) -> bool:
        """HeadBucket: False when there is no such bucket; a StorageError when it cannot be used."""
        with _translated("HeadBucket", bucket, ""):
            try:
                self._s3.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if error_code(exc) in MISSING_BUCKET_CODES:
                    return False
                raise
        return True

    def create_bucket(self, bucket: str, region: str) -> bool:
        """CreateBucket in ``region``; False when the caller already owns it."""
        with _translated("CreateBucket", bucket, ""):
            try:
                self._s3.create_bucket(**create_bucket_request(bucket, region))
            except ClientError as exc:
                if error_code(exc) == "BucketAlreadyOwnedByYou":
                    return False
                raise
        return True

    def put_versioning(self, bucket: str, configuration: Mapping[str, Any]) -> None:
        with _translated("PutBucketVersioning", bucket, ""):
            self._s3.put_bucket_versioning(
                Bucket=bucket,
                VersioningConfiguration=dict(configuration),  # type: ignore[arg-type]
            )

    def block_public_access(self, bucket: str, configuration: Mapping[str, bool]) -> None:
        with _translated("PutPublicAccessBlock", bucket, ""):
            self._s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration=dict(configuration),  # type: ignore[arg-type]
            )

    def put_cors(self, bucket: str, configuration: Mapping[str, Any]) -> None:
        with _translated("PutBucketCors", bucket, ""):
            self._s3.put_bucket_cors(
                Bucket=bucket,
                CORSConfiguration=dict(configuration),  # type: ignore[arg-type]
            )

    def encrypt_by_default(self, bucket: str, algorithm: str = ENCRYPTION) -> None:
        """Default encryption for new objects (SSE-S3 unless told otherwise)."""
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}
        document = cast("ServerSideEncryptionConfigurationTypeDef", {"Rules": [rule]})
        with _translated("PutBucketEncryption", bucket, ""):
            self._s3.put_bucket_encryption(
                Bucket=bucket, ServerSideEncryptionConfiguration=document
            )

    def put_policy(self, bucket: str, policy: Mapping[str, Any]) -> None:
        with _translated("PutBucketPolicy", bucket, ""):
            self._s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def exists(self, bucket: str, key: str) -> bool:
        """HeadObject: whether the key exists (a 403 is an error, see ``_PERMISSION``)."""
        with _translated("HeadObject", bucket, key):
            try:
                self._s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in MISSING_OBJECT_CODES:
                    return False
                raise
        return True

    def upload_file(self, bucket: str, key: str, path: Path) -> None:
        """A file to ``key`` (s3transfer: multipart when it is large)."""
        with _translated("UploadFile", bucket, key):
            self._s3.upload_file(str(path), bucket, key)

    def read(self, bucket: str, key: str) -> bytes | None:
        """A small object's bytes; ``None`` when there is no such object."""
        with _translated("GetObject", bucket, key):
            try:
                return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if error_code(exc) in MISSING_OBJECT_CODES:
                    return None
                raise

    def create(self, bucket: str, key: str, body: bytes, content_type: str) -> bool:
        """PutObject only if the key does not exist yet (If-None-Match: *); False if it does."""
        with _translated("PutObject", bucket, key):
            try:
                self._s3.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
                )
            except ClientError as exc:
                if error_code(exc) in _PRECONDITION_CODES | {"ConditionalRequestConflict"}:
                    return False
                raise
        return True

    def delete(self, bucket: str, key: str) -> None:
        """One DeleteObject."""
        with _translated("DeleteObject", bucket, key):
            self._s3.delete_object(Bucket=bucket, Key=key)


def create_bucket_request(bucket: str, region: str) -> dict[str, Any]:
    """CreateBucket's arguments for ``region``: us-east-1 refuses an explicit LocationConstraint
    (InvalidLocationConstraint), every other region requires one."""
    if region == "us-east-1":
        return {"Bucket": bucket}
    return {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": region}}


@dataclass(frozen=True)
class PresignedRequest:
    """A presigned URL and the headers the client must send with it, exactly."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PresignedPart:
    """One part of a multipart upload: bytes ``offset`` to ``offset + size`` of the file."""

    part_number: int
    offset: int
    size: int
    request: PresignedRequest


@dataclass(frozen=True)
class StoredPart:
    """One part S3 holds for an open multipart upload, as ListParts reports it."""

    part_number: int
    size: int
    etag: str
    checksum_sha256: str | None


class UploadSigner:
    """Presigned uploads into the bucket, and the multipart calls around them.

    A single PUT is signed with its content type, length, SHA-256 checksum and encryption, so
    S3 refuses a request that changes any of them. A multipart upload is created with the
    SHA256 checksum algorithm (type COMPOSITE); each part's URL is signed for the part's
    length and the SHA-256 the client computed for it, so S3 refuses a part whose bytes do not
    match (BadDigest), and the completion lists each part's checksum, which S3 compares with
    the parts it stored before it builds the object's composite checksum (docs/integrity.md).
    """

    def __init__(
        self,
        s3_client: S3Client,
        expires_in: int,
        credentials_expiry: Callable[[], datetime | None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._s3 = s3_client
        self.expires_in = expires_in
        self._credentials_expiry = credentials_expiry
        self._clock = clock

    def lifetime(self) -> int:
        """Seconds a URL signed now stays good: ``expires_in``, or less when the signing
        credentials expire sooner. A URL signed with temporary credentials stops working when
        they expire, whatever its X-Amz-Expires says (S3 user guide, "Sharing objects with
        presigned URLs"), so the URL and the declaration's expiry say when that is."""
        expiry = self._credentials_expiry()
        if expiry is None:
            return self.expires_in
        remaining = int((expiry - self._clock()).total_seconds())
        return max(1, min(self.expires_in, remaining))

    def presign_put(
        self, bucket: str, key: str, size: int, sha256_base64: str, content_type: str
    ) -> PresignedRequest:
        """A presigned PutObject that binds type, length, checksum and encryption."""
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "x-amz-checksum-sha256": sha256_base64,
            # Tells S3 (and moto, which otherwise stores no checksum) which checksum is sent.
            "x-amz-sdk-checksum-algorithm": CHECKSUM_ALGORITHM,
            "x-amz-server-side-encryption": ENCRYPTION,
        }
        params = {
            "Bucket": bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size,
            "ChecksumSHA256": sha256_base64,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
            "ServerSideEncryption": ENCRYPTION,
        }
        with _translated("PresignPutObject", bucket, key):
            url = self._s3.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=self.lifetime()
            )
        return PresignedRequest(url, headers)

    def start_multipart(self, bucket: str, key: str, content_type: str) -> str:
        """CreateMultipartUpload (type, encryption and the composite SHA-256 set now)."""
        with _translated("CreateMultipartUpload", bucket, key):
            response = self._s3.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                ContentType=content_type,
                ServerSideEncryption=ENCRYPTION,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                ChecksumType="COMPOSITE",
            )
        return response["UploadId"]

    def presign_parts(
        self, bucket: str, key: str, multipart_id: str, size: int, checksums: Mapping[int, str]
    ) -> tuple[PresignedPart, ...]:
        """One presigned UploadPart per part in ``checksums`` (part number -> the part's SHA-256
        in base64), bound to its length and checksum. Signing again gives fresh URLs for parts
        whose first ones expired before they were sent."""
        wanted = [part for part in part_ranges(size) if part[0] in checksums]
        with _translated("PresignUploadPart", bucket, key):
            return tuple(
                PresignedPart(
                    number,
                    offset,
                    length,
                    self._part(bucket, key, multipart_id, (number, length, checksums[number])),
                )
                for number, offset, length in wanted
            )

    def complete_multipart(
        self, bucket: str, key: str, multipart_id: str, parts: Sequence[tuple[int, str, str]]
    ) -> None:
        """CompleteMultipartUpload from (part number, ETag, SHA-256 base64) triples;
        PartsRejected when S3 says no (a checksum that is not the stored part's included)."""
        listed: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": etag, "ChecksumSHA256": checksum}
            for number, etag, checksum in parts
        ]
        with _rejected_parts(bucket, key), _translated("CompleteMultipartUpload", bucket, key):
            self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=multipart_id, MultipartUpload={"Parts": listed}
            )

    def list_parts(self, bucket: str, key: str, multipart_id: str) -> list[StoredPart]:
        """ListParts, every page: the parts S3 holds, with the SHA-256 S3 verified for each."""
        paginator = self._s3.get_paginator("list_parts")
        with _translated("ListParts", bucket, key):
            pages = paginator.paginate(Bucket=bucket, Key=key, UploadId=multipart_id)
            return [
                StoredPart(
                    part_number=part["PartNumber"],
                    size=part.get("Size", 0),
                    etag=part.get("ETag", ""),
                    checksum_sha256=part.get("ChecksumSHA256") or None,
                )
                for page in pages
                for part in page.get("Parts", [])
            ]

    def abort_multipart(self, bucket: str, key: str, multipart_id: str) -> None:
        """AbortMultipartUpload; an upload S3 no longer knows is already gone."""
        _abort_multipart(self._s3, bucket, key, multipart_id)

    def _part(
        self, bucket: str, key: str, multipart_id: str, part: tuple[int, int, str]
    ) -> PresignedRequest:
        number, length, checksum = part
        params = {
            "Bucket": bucket,
            "Key": key,
            "UploadId": multipart_id,
            "PartNumber": number,
            "ContentLength": length,
            "ChecksumSHA256": checksum,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
        }
        url = self._s3.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=self.lifetime()
        )
        headers = {
            "Content-Length": str(length),
            "x-amz-checksum-sha256": checksum,
            "x-amz-sdk-checksum-algorithm": CHECKSUM_ALGORITHM,
        }
        return PresignedRequest(url, headers)


def _abort_multipart(s3: S3Client, bucket: str, key: str, upload_id: str) -> bool:
    """AbortMultipartUpload; False when S3 no longer knows the upload (gone either way)."""
    with _translated("AbortMultipartUpload", bucket, key):
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                raise
            return False
    return True


def credentials_expiry(credentials: Any) -> datetime | None:
    """When botocore's ``credentials`` expire, refreshed first if they are about to; ``None``
    when botocore does not know (long-term keys, and Lambda's execution role credentials,
    which the runtime passes in environment variables without an expiry: Lambda developer
    guide, "Defined runtime environment variables")."""
    if credentials is None:
        return None
    credentials.get_frozen_credentials()  # RefreshableCredentials refresh here when due
    # botocore has no public accessor for the expiry of RefreshableCredentials.
    expiry = getattr(credentials, "_expiry_time", None)
    return expiry if isinstance(expiry, datetime) else None


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
        checksum_type=response.get("ChecksumType") or None,
    )


@contextmanager
def _translated(operation: str, bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StorageError(_failure(operation, bucket, key, error_code(exc))) from exc
    except BotoCoreError as exc:
        raise StorageError(_failure(operation, bucket, key, type(exc).__name__)) from exc


@contextmanager
def _rejected_parts(bucket: str, key: str) -> Iterator[None]:
    """Lifts S3's answers about the listed parts out of the generic StorageError."""
    try:
        yield
    except StorageError as exc:
        cause = exc.__cause__
        code = error_code(cause) if isinstance(cause, ClientError) else ""
        if code not in _PARTS_CODES:
            raise
        raise PartsRejectedError(
            f"S3 refused to complete the multipart upload of s3://{bucket}/{key} ({code}): "
            "list every uploaded part once, by part number, with the ETag S3 returned for it"
            " and the SHA-256 (base64) its URL was signed with",
            code,
        ) from cause


def _failure(operation: str, bucket: str, key: str, reason: str) -> str:
    return (
        f"{operation} s3://{bucket}/{key} failed ({reason}): check that the bucket exists and "
        f"that the caller may {_PERMISSION[operation]} on it"
    )
