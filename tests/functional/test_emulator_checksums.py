"""The twin refuses what S3 refuses about checksums in a multipart upload, and reports the
checksums S3 reports: ``s3_checksum_check.ChecksumCheck`` composed in ``emulator.application``
(served on a free port of this process), with the emulator's seams applied for the test (the
multipart join and HeadObject's checksum answer), undone when it ends. Each test is named after
the AWS behaviour it shows (docs/aws-fidelity.md, "Checksums and integrity")."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from filegate.aws import Target
from filegate.local import patches
from filegate.local.emulator import application, moto_application
from filegate.local.processes import free_port
from filegate.parts import composite_sha256

REGION = "eu-central-1"
BUCKET = "checksums"
KEY = "acme/up-1/big.bin"
PART = 5 * 1024 * 1024
PARTS = [b"a" * PART, b"b" * 10]


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@contextlib.contextmanager
def served(app: Any) -> Iterator[Any]:
    """An S3 client of ``app`` served on a free port of this process, the seams applied."""
    port = free_port()
    with patches.applied():
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        try:
            client = Target(region=REGION, endpoint_url=url).client("s3")
            client.create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            yield client
        finally:
            requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's backends are process-wide
            server.shutdown()


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with served(application(moto_application())) as client:
        yield client


def start(s3: Any) -> str:
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY, ChecksumAlgorithm="SHA256")
    return str(created["UploadId"])


def send_part(s3: Any, upload_id: str, number: int, body: bytes, checksum: str) -> str:
    sent = s3.upload_part(
        Bucket=BUCKET,
        Key=KEY,
        UploadId=upload_id,
        PartNumber=number,
        Body=body,
        ChecksumSHA256=checksum,
    )
    return str(sent["ETag"])


def complete(s3: Any, upload_id: str, listed: list[tuple[str, str]]) -> Any:
    parts = [
        {"PartNumber": n, "ETag": etag, "ChecksumSHA256": checksum}
        for n, (etag, checksum) in enumerate(listed, start=1)
    ]
    return s3.complete_multipart_upload(
        Bucket=BUCKET, Key=KEY, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def test_upload_part_whose_body_does_not_match_its_sha256_is_400_bad_digest_and_not_stored(
    s3: Any,
) -> None:
    upload_id = start(s3)

    with pytest.raises(ClientError) as refused:
        send_part(s3, upload_id, 1, b"damaged on the way", b64(b"what was hashed"))

    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert s3.list_parts(Bucket=BUCKET, Key=KEY, UploadId=upload_id).get("Parts", []) == []


def test_list_parts_reports_each_parts_sha256(s3: Any) -> None:
    upload_id = start(s3)
    for number, body in enumerate(PARTS, start=1):
        send_part(s3, upload_id, number, body, b64(body))

    listed = s3.list_parts(Bucket=BUCKET, Key=KEY, UploadId=upload_id)["Parts"]

    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in listed] == [
        (1, PART, b64(PARTS[0])),
        (2, 10, b64(PARTS[1])),
    ]


def test_complete_multipart_upload_listing_another_checksum_than_a_stored_parts_is_400_invalid_part(
    s3: Any,
) -> None:
    upload_id = start(s3)
    etags = [send_part(s3, upload_id, n, body, b64(body)) for n, body in enumerate(PARTS, 1)]

    with pytest.raises(ClientError) as refused:
        complete(s3, upload_id, [(etags[0], b64(PARTS[0])), (etags[1], b64(b"other bytes"))])

    assert refused.value.response["Error"]["Code"] == "InvalidPart"
    # the upload is still open: completing with the stored parts' checksums succeeds
    complete(s3, upload_id, [(etags[0], b64(PARTS[0])), (etags[1], b64(PARTS[1]))])
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"] == PART + 10


def test_head_object_with_checksum_mode_returns_the_composite_sha256_and_its_type(
    s3: Any,
) -> None:
    upload_id = start(s3)
    etags = [send_part(s3, upload_id, n, body, b64(body)) for n, body in enumerate(PARTS, 1)]
    complete(s3, upload_id, [(etags[0], b64(PARTS[0])), (etags[1], b64(PARTS[1]))])

    head = s3.head_object(Bucket=BUCKET, Key=KEY, ChecksumMode="ENABLED")

    assert head["ChecksumSHA256"] == composite_sha256([b64(PARTS[0]), b64(PARTS[1])])
    assert head["ChecksumSHA256"].endswith("-2")
    assert head["ChecksumType"] == "COMPOSITE"


def test_head_object_with_checksum_mode_returns_a_puts_full_object_sha256_and_its_type(
    s3: Any,
) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"whole", ChecksumAlgorithm="SHA256")

    head = s3.head_object(Bucket=BUCKET, Key=KEY, ChecksumMode="ENABLED")

    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (b64(b"whole"), "FULL_OBJECT")


@pytest.fixture
def marked_s3(aws_env: None) -> Iterator[Any]:
    """moto's app with the seams, behind a stand-in for the middleware that marks every part
    as checked (and checks nothing)."""
    from filegate.local.s3_checksum_check import CHECKED

    app = moto_application()

    def marking(environ: dict[str, Any], start_response: Any) -> Any:
        if "partNumber=" in environ.get("QUERY_STRING", "") and "mark" in environ["PATH_INFO"]:
            environ[CHECKED] = True
        return app(environ, start_response)

    with served(marking) as client:
        yield client


def test_a_part_the_middleware_checked_is_not_hashed_again_by_the_seam(marked_s3: Any) -> None:
    # The seam refuses a mismatching part the middleware did not check (positive control) and
    # takes the middleware's word for one it did: each byte of a part is hashed once.
    def send(key: str) -> Any:
        upload_id = marked_s3.create_multipart_upload(
            Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256"
        )["UploadId"]
        return marked_s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1,
            Body=b"what arrived", ChecksumSHA256=b64(b"what was hashed"),
        )  # fmt: skip

    with pytest.raises(ClientError) as refused:
        send("acme/not-checked.bin")
    assert refused.value.response["Error"]["Code"] == "BadDigest"

    assert send("acme/mark-checked.bin")["ResponseMetadata"]["HTTPStatusCode"] == 200
