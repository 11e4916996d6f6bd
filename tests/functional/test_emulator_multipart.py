"""The emulator's CompleteMultipartUpload joins the parts instead of copying them
(patches/s3_multipart.py) and answers exactly as S3 (and moto) do: content, ETag, checksums,
errors. In-process moto."""

from __future__ import annotations

import base64
import binascii
import gc
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.s3.utils import compute_checksum

from filegate.local import patches
from filegate.local.patches.s3_multipart import JoinedParts, PartsChecksum, RunningChecksum

REGION = "eu-central-1"
BUCKET = "multipart-bucket"
MiB = 1024 * 1024
# Two full-size parts and a short last one, as a client sends them.
PARTS = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with patches.applied(), mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def _upload(s3: Any, key: str, parts: list[bytes], **create: Any) -> dict[str, Any]:
    """Create, upload every part (with the create call's checksum algorithm), complete."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **create)["UploadId"]
    listed = _parts(s3, key, upload_id, parts, create.get("ChecksumAlgorithm"))
    return dict(
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    )


def _parts(
    s3: Any, key: str, upload_id: str, parts: list[bytes], algorithm: str | None
) -> list[dict[str, Any]]:
    listed = []
    for number, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        answer = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra
        )
        entry = {"PartNumber": number, "ETag": answer["ETag"]}
        if algorithm:
            entry[f"Checksum{algorithm}"] = answer[f"Checksum{algorithm}"]
        listed.append(entry)
    return listed


def _b64_crc32(data: bytes) -> str:
    return base64.b64encode(binascii.crc32(data).to_bytes(4, "big")).decode()


def test_the_object_is_its_parts_in_order_with_s3s_multipart_etag(s3: Any) -> None:
    done = _upload(s3, "big.bin", PARTS, ContentType="application/pdf")
    md5s = b"".join(hashlib.md5(part).digest() for part in PARTS)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    got = s3.get_object(Bucket=BUCKET, Key="big.bin")
    assert got["Body"].read() == b"".join(PARTS)
    assert got["ContentLength"] == sum(map(len, PARTS))
    assert got["ContentType"] == "application/pdf"
    assert got["ETag"] == done["ETag"]


def test_without_a_checksum_algorithm_no_checksum_is_reported(s3: Any) -> None:
    # filegate's multipart uploads: the ingestion must then hash the object itself.
    _upload(s3, "plain.bin", PARTS)
    head = s3.head_object(Bucket=BUCKET, Key="plain.bin", ChecksumMode="ENABLED")
    assert not [name for name in head if name.startswith("Checksum")]


def test_a_composite_crc32_checksum_as_the_aws_cli_sends_it(s3: Any) -> None:
    _upload(s3, "cli.bin", PARTS, ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=BUCKET, Key="cli.bin", ChecksumMode="ENABLED")
    per_part = b"".join(binascii.crc32(part).to_bytes(4, "big") for part in PARTS)
    # S3 writes a composite checksum as "<base64>-<part count>" (patches/s3_checksums.py)
    assert head["ChecksumCRC32"] == f"{_b64_crc32(per_part)}-{len(PARTS)}"
    assert head["ChecksumType"] == "COMPOSITE"


def test_a_full_object_crc32_checksum_covers_the_whole_object(s3: Any) -> None:
    _upload(s3, "full.bin", PARTS, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    head = s3.head_object(Bucket=BUCKET, Key="full.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == _b64_crc32(b"".join(PARTS))
    assert head["ChecksumType"] == "FULL_OBJECT"


def test_a_wrong_etag_is_invalid_part_and_the_upload_stays_open(s3: Any) -> None:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="k")["UploadId"]
    listed = _parts(s3, "k", upload_id, PARTS, None)
    wrong = [{**listed[0], "ETag": '"' + "0" * 32 + '"'}, *listed[1:]]
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="k", UploadId=upload_id, MultipartUpload={"Parts": wrong}
        )
    assert refused.value.response["Error"]["Code"] == "InvalidPart"
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="k", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"".join(PARTS)


def test_a_short_part_before_the_last_is_entity_too_small(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        _upload(s3, "k", [PARTS[2], PARTS[0]])
    assert refused.value.response["Error"]["Code"] == "EntityTooSmall"


def test_copies_and_later_versions_are_independent_of_the_joined_object(s3: Any) -> None:
    _upload(s3, "big.bin", PARTS)
    version = s3.head_object(Bucket=BUCKET, Key="big.bin")["VersionId"]
    s3.copy_object(Bucket=BUCKET, Key="copy.bin", CopySource={"Bucket": BUCKET, "Key": "big.bin"})
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=b"replaced")
    assert s3.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() == b"replaced"
    old = s3.get_object(Bucket=BUCKET, Key="big.bin", VersionId=version)["Body"].read()
    assert old == b"".join(PARTS)
    assert s3.get_object(Bucket=BUCKET, Key="copy.bin")["Body"].read() == b"".join(PARTS)
    # moto lists versions from deep copies of the keys: the joined object survives that too
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix="big.bin")["Versions"]
    assert sorted(v["Size"] for v in listed) == [len(b"replaced"), sum(map(len, PARTS))]
    s3.delete_object(Bucket=BUCKET, Key="big.bin", VersionId=version)
    assert [
        v["Size"] for v in s3.list_object_versions(Bucket=BUCKET, Prefix="big.bin")["Versions"]
    ] == [8]


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_a_running_checksum_equals_moto_s_checksum_of_the_whole(algorithm: str) -> None:
    pieces = [os.urandom(size) for size in (0, 1, 4096, 65537)]
    running = RunningChecksum(algorithm)
    for piece in pieces:
        running.update(piece)
    expected = compute_checksum(b"".join(pieces), algorithm, encode_base64=False)
    assert running.digest() == expected


class _Part:
    """What JoinedParts needs of a moto part: its value, its size, dispose."""

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.contentsize = len(value)
        self.disposed = False

    def dispose(self) -> None:
        self.disposed = True


def test_joined_parts_read_in_chunks_across_part_boundaries_and_from_the_start() -> None:
    parts = [_Part(b"abc"), _Part(b""), _Part(b"defgh")]
    joined = JoinedParts(list(parts))
    chunks = list(iter(lambda: joined.read(2), b""))
    assert b"".join(chunks) == b"abcdefgh"
    assert max(map(len, chunks)) <= 2
    assert joined.seek(0) == 0
    assert joined.read() == b"abcdefgh"
    assert joined.size == 8
    joined.close()
    assert all(part.disposed for part in parts)


def test_deleting_the_joined_object_closes_its_parts_files(s3: Any) -> None:
    # A leak here would keep 1 GiB of temporary files per deleted upload in the emulator.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    _upload(s3, "big.bin", PARTS)
    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(BUCKET)
    joined = bucket.keys["big.bin"]._value_buffer
    assert isinstance(joined, JoinedParts)
    parts = list(joined._parts)
    assert not any(part._value_buffer.closed for part in parts)
    version = s3.head_object(Bucket=BUCKET, Key="big.bin")["VersionId"]

    s3.delete_object(Bucket=BUCKET, Key="big.bin", VersionId=version)
    gc.collect()

    assert joined.closed
    assert all(part._value_buffer.closed for part in parts)


class _UnreadPart(_Part):
    """A part whose bytes must not be read: S3 builds a composite from the part checksums."""

    @property  # type: ignore[override]
    def value(self) -> bytes:
        raise AssertionError("the completion read a part's bytes")

    @value.setter
    def value(self, _: bytes) -> None:
        pass


def _sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_a_composite_sha256_is_built_from_the_verified_part_checksums_not_the_bytes() -> None:
    # S3 user guide, "Checking object integrity": a multipart object's composite checksum is
    # the checksum of the parts' checksums, which S3 verified when each part arrived.
    checksum = PartsChecksum("SHA256", None)
    for body in PARTS:
        checksum.add(_UnreadPart(body), verified=_sha256(body))

    kind, value, count = checksum.build() or ("", "", 0)

    digests = b"".join(hashlib.sha256(body).digest() for body in PARTS)
    assert (kind, count) == ("COMPOSITE", len(PARTS))
    assert value == base64.b64encode(hashlib.sha256(digests).digest()).decode()


def test_a_part_without_a_verified_checksum_makes_the_composite_hash_every_part() -> None:
    from moto.s3.models import MultipartChecksumBuilder

    checksum = PartsChecksum("SHA256", None)
    checksum.add(_Part(PARTS[0]), verified=_sha256(PARTS[0]))
    checksum.add(_Part(PARTS[1]))  # sent without the header: nothing was verified
    checksum.add(_Part(PARTS[2]), verified=_sha256(PARTS[2]))
    moto_builder = MultipartChecksumBuilder("SHA256", None)
    for body in PARTS:
        moto_builder.addPart(body)

    assert checksum.build() == moto_builder.build()


def test_completing_an_upload_the_bucket_no_longer_holds_is_no_such_upload(s3: Any) -> None:
    # S3 API reference, CompleteMultipartUpload, "Errors": NoSuchUpload (404), "the multipart
    # upload might have been aborted or completed"; moto failed with a KeyError (500)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="gone.bin")["UploadId"]
    listed = _parts(s3, "gone.bin", upload_id, PARTS[:1], None)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="gone.bin", UploadId=upload_id)

    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="gone.bin", UploadId=upload_id, MultipartUpload={"Parts": listed}
        )

    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "NoSuchUpload",
        404,
    )
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="gone.bin").get("KeyCount") == 0


def test_a_completion_sent_again_after_it_succeeded_answers_the_same_object(s3: Any) -> None:
    # S3 answers a CompleteMultipartUpload sent again with the same parts after it succeeded
    # with the object (not documented; observed against S3 in getmoto/moto#8380,
    # adobe/S3Mock#2586, minio/minio#13318); moto does the same while the key holds that object
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="twice.bin")["UploadId"]
    listed = _parts(s3, "twice.bin", upload_id, PARTS, None)
    complete = {"Bucket": BUCKET, "Key": "twice.bin", "UploadId": upload_id}
    first = s3.complete_multipart_upload(**complete, MultipartUpload={"Parts": listed})

    again = s3.complete_multipart_upload(**complete, MultipartUpload={"Parts": listed})

    assert (again["ETag"], again["VersionId"]) == (first["ETag"], first["VersionId"])
    assert s3.get_object(Bucket=BUCKET, Key="twice.bin")["Body"].read() == b"".join(PARTS)
