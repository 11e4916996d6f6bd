"""The artifact bucket: where ``filegate deploy`` puts the Lambda zip and the template.

Keys are content-addressed, ``lambda/<sha256 hex>.zip``: the same code is uploaded once, a
new zip gets a new key (which is what makes the stack publish a new version), and the local
stack finds any version's code from its CodeSha256. The template goes the same way, as
``filegate/templates/<sha256 hex>.yml`` (its exact text, comments included), and CloudFormation
reads it from its regional virtual-hosted URL (``TemplateURL``, up to 1 MB; inline
``TemplateBody`` stops at 51,200 bytes: CloudFormation user guide, "AWS CloudFormation
quotas"; API reference, CreateChangeSet: the URL "must start with https://"). On AWS the
default bucket is
``filegate-artifacts-<account>-<region>``, created on first use encrypted, private (public
access block, bucket owner enforced) and refusing requests without TLS.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filegate.aws import Target, arn, dns_suffix
from filegate.errors import DeployError, StorageError
from filegate.storage import BucketOps

ARTIFACT_PREFIX = "lambda/"  # code zips are stored as lambda/<sha256 hex>.zip
TEMPLATE_PREFIX = "filegate/templates/"  # templates as filegate/templates/<sha256 hex>.yml
TEMPLATE_CONTENT_TYPE = "application/yaml"


@dataclass(frozen=True)
class Artifact:
    """A Lambda zip stored in the artifact bucket."""

    bucket: str
    key: str
    sha256_hex: str
    size: int


@dataclass(frozen=True)
class StoredTemplate:
    """A template stored in the artifact bucket, and the URL CloudFormation reads it from."""

    bucket: str
    key: str
    url: str
    sha256_hex: str
    size: int


def artifact_key(sha256_hex: str) -> str:
    return f"{ARTIFACT_PREFIX}{sha256_hex}.zip"


def template_key(sha256_hex: str) -> str:
    return f"{TEMPLATE_PREFIX}{sha256_hex}.yml"


def template_url(bucket: str, region: str, key: str) -> str:
    """The object's regional virtual-hosted URL, ``https://<bucket>.s3.<region>.<suffix>/<key>``
    (S3 user guide, "Virtual hosting of general purpose buckets"): the same form in every
    region, us-east-1 included, and in every partition (``amazonaws.com.cn`` in China). A
    bucket name with dots is addressed path-style (``https://s3.<region>.<suffix>/<bucket>/``),
    since S3's wildcard certificate matches no dotted bucket host (same page). The local twin
    reads the same URL from its own S3 (docs/aws-fidelity.md, "Deploys (CloudFormation)")."""
    host = f"s3.{region}.{dns_suffix(region)}"
    if "." in bucket:
        return f"https://{host}/{bucket}/{key}"
    return f"https://{bucket}.{host}/{key}"


def zip_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a Lambda zip, refusing what is not one."""
    if not path.is_file():
        raise DeployError(f"the package {path} does not exist: build one with `filegate package`")
    if not zipfile.is_zipfile(path):
        raise DeployError(
            f"the package {path} is not a zip file: build one with `filegate package`"
        )
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def default_bucket_name(account: str, region: str) -> str:
    return f"filegate-artifacts-{account}-{region}"


class ArtifactStore:
    """Uploads zips to one bucket, creating it (safely configured) when it is ours to create."""

    def __init__(self, target: Target, bucket: str) -> None:
        self._region = target.region
        self._s3 = BucketOps(target.client("s3"))
        self.bucket = bucket

    def upload(self, path: Path) -> Artifact:
        sha256_hex, size = zip_digest(path)
        key = artifact_key(sha256_hex)
        try:
            if not self._s3.exists(self.bucket, key):
                self._s3.upload_file(self.bucket, key, path)
        except StorageError as exc:
            raise DeployError(
                f"cannot upload {path} to s3://{self.bucket}/{key}: {exc}; check the bucket"
                " and your permissions (or pass --artifact-bucket)"
            ) from exc
        return Artifact(self.bucket, key, sha256_hex, size)

    def upload_template(self, text: str) -> StoredTemplate:
        """Store exactly ``text`` under its content-addressed key (once: a key that exists
        holds these bytes, which is checked) and say where CloudFormation reads it."""
        body = text.encode("utf-8")
        sha256_hex = hashlib.sha256(body).hexdigest()
        key = template_key(sha256_hex)
        where = f"s3://{self.bucket}/{key}"
        try:
            if not self._s3.create(self.bucket, key, body, TEMPLATE_CONTENT_TYPE):
                stored = self._s3.read(self.bucket, key)
                if stored != body:
                    raise DeployError(
                        f"{where} holds other bytes than the template it is named after:"
                        " delete that object, then deploy again"
                    )
        except StorageError as exc:
            raise DeployError(
                f"cannot upload the template to {where}: {exc}; check the bucket and your"
                " permissions (or pass --artifact-bucket)"
            ) from exc
        url = template_url(self.bucket, self._region, key)
        return StoredTemplate(self.bucket, key, url, sha256_hex, len(body))

    def require(self) -> None:
        """The bucket must exist (one the user named)."""
        try:
            found = self._s3.bucket_exists(self.bucket)
        except StorageError as exc:
            raise DeployError(
                f"the artifact bucket {self.bucket} cannot be used: {exc}; pass another"
                " --artifact-bucket"
            ) from exc
        if not found:
            raise DeployError(
                f"the artifact bucket {self.bucket} cannot be used: it does not exist; create"
                " it or pass another --artifact-bucket"
            )

    def ensure(self, secure: bool) -> None:
        """Create the bucket if missing; ``secure``: encrypted, private, TLS only (AWS)."""
        try:
            if self._s3.bucket_exists(self.bucket):
                return
        except StorageError as exc:
            raise DeployError(f"the artifact bucket {self.bucket} cannot be used: {exc}") from exc
        try:
            self._create(secure)
        except StorageError as exc:
            raise DeployError(
                f"cannot create the artifact bucket {self.bucket}: {exc}; pass --artifact-bucket"
            ) from exc

    def _create(self, secure: bool) -> None:
        self._s3.create_bucket(self.bucket, self._region)
        if not secure:
            return
        self._s3.block_public_access(
            self.bucket,
            {
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self._s3.encrypt_by_default(self.bucket, "AES256")
        self._s3.put_policy(self.bucket, tls_only(self.bucket, self._region))


def tls_only(bucket: str, region: str) -> dict[str, Any]:
    """A bucket policy refusing every request made without TLS (ARNs in the region's partition)."""
    bucket_arn = arn("s3", region, bucket, regional=False)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
