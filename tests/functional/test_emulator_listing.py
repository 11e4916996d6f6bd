"""The emulator's ListObjectVersions answers what moto answers without copying every object's
bytes (patches/s3_listing.py): S3's listing reads metadata only. In-process moto."""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filegate.local import patches

REGION = "eu-central-1"
BUCKET = "listing-bucket"
MiB = 1024 * 1024
BIG = os.urandom(48 * MiB)


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def _fill(s3: Any) -> None:
    """Versions, a delete marker and a multipart object, across two prefixes."""
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=b"first")
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=b"second", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=BUCKET, Key="in/gone.csv", Body=b"soon gone")
    s3.delete_object(Bucket=BUCKET, Key="in/gone.csv")
    s3.put_object(Bucket=BUCKET, Key="out/big.bin", Body=BIG)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="in/parts.bin")["UploadId"]
    etags = [
        s3.upload_part(
            Bucket=BUCKET, Key="in/parts.bin", UploadId=upload_id, PartNumber=n, Body=body
        )["ETag"]
        for n, body in ((1, os.urandom(5 * MiB)), (2, b"tail"))
    ]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="in/parts.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )


def _listings(s3: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = [{}, {"Prefix": "in/"}, {"Delimiter": "/"}, {"MaxKeys": 2}]
    pages = [s3.list_object_versions(Bucket=BUCKET, **call) for call in calls]
    for page in pages:
        page.pop("ResponseMetadata")
    return pages


def test_the_listing_is_the_one_moto_gives_and_every_object_keeps_its_bytes(s3: Any) -> None:
    _fill(s3)
    before = _listings(s3)

    with patches.applied():
        during = _listings(s3)
    gc.collect()  # the listing's copies are disposed of: the objects must not be

    assert during == before
    assert s3.get_object(Bucket=BUCKET, Key="out/big.bin")["Body"].read() == BIG
    assert s3.get_object(Bucket=BUCKET, Key="in/a.csv")["Body"].read() == b"second"


def test_a_listing_does_not_copy_the_objects_bytes(s3: Any) -> None:
    # moto's listing deep-copies every version through __getstate__, which reads its bytes:
    # 48 MiB listed held a 48 MiB bytes object at least (one listing of a 512 MiB object peaked
    # at +1,024 MiB in the emulator)
    _fill(s3)
    with patches.applied():
        tracemalloc.start()
        try:
            s3.list_object_versions(Bucket=BUCKET)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert peak < len(BIG) // 4
