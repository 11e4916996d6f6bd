"""The emulator's presigned-request check on its own: a plain WSGI wrapper, no server.

URLs are made the way the upload API makes them (``UploadSigner`` over a botocore client with
``SIGNING_CONFIG``), or by botocore directly; the wrapped application answers 200 "served"
for whatever reaches it. Each test states what S3 answers (status, error code) and checks that
the wrapper answers the same, as S3's XML error body, before moto would see the request.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config
from werkzeug.test import Client

from filegate.local.s3_presign import PresignedRequestCheck, SigningKey, emulator_key
from filegate.local.s3_presign import emulator_bucket_region as bucket_region
from filegate.settings import LOCAL_ACCESS_KEY
from filegate.storage import SIGNING_CONFIG, PresignedRequest, UploadSigner

ENDPOINT = "http://127.0.0.1:4566"
REGION = "eu-west-1"
BUCKET = "uploads"
CONTENT = b"id,amount\n1,10\n"
USER_KEY = "AKIAUSERKEY000000001"
STS_KEY = "ASIASTSKEY0000000001"
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"
UNKNOWN_KEY = "AKIANOBODYKNOWSTHIS1"
SESSION_ENDS = datetime.now(UTC) + timedelta(hours=1)
KEYS = {
    USER_KEY: SigningKey("user-secret"),
    STS_KEY: SigningKey("sts-secret", TOKEN, SESSION_ENDS),
    LOCAL_ACCESS_KEY: SigningKey(LOCAL_ACCESS_KEY),
}


def served(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served"]


def checked(
    clock: Callable[[], datetime] | None = None, region: str | None = REGION
) -> PresignedRequestCheck:
    return PresignedRequestCheck(served, keys=KEYS.get, regions=lambda bucket: region, clock=clock)


def signer(access_key: str = USER_KEY, config: Config = SIGNING_CONFIG) -> UploadSigner:
    key = KEYS.get(access_key)
    session = boto3.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=key.secret if key else "someone-elses-secret",
        aws_session_token=key.session_token if key else None,
        region_name=REGION,
    )
    client = session.client("s3", endpoint_url=ENDPOINT, config=config)
    return UploadSigner(client, 900)


def presigned_put(
    access_key: str = USER_KEY, key: str = "acme/up-1/report.csv"
) -> PresignedRequest:
    digest = b64encode(hashlib.sha256(CONTENT).digest()).decode()
    return signer(access_key).presign_put(BUCKET, key, len(CONTENT), digest, "text/csv")


def send(
    app: PresignedRequestCheck,
    url: str,
    headers: dict[str, str],
    body: bytes = CONTENT,
    method: str = "PUT",
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    client = Client(app)
    response = client.open(
        parts.path,
        base_url=f"{parts.scheme}://{parts.netloc}",
        query_string=parts.query,
        method=method,
        headers=headers,
        data=body,
    )
    return response.status_code, response.get_data()


def error(body: bytes) -> dict[str, str]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


# --- what S3 serves ---


def test_the_upload_apis_put_with_its_headers_is_served() -> None:
    put = presigned_put()

    assert send(checked(), put.url, put.headers) == (200, b"served")


@pytest.mark.parametrize("key", ["acme/up-1/report 2025 (final).csv", "acme/up-1/résumé+ü~.csv"])
def test_keys_with_spaces_and_non_ascii_characters_are_served(key: str) -> None:
    put = presigned_put(key=key)

    assert send(checked(), put.url, put.headers)[0] == 200


def test_a_part_url_is_served_with_its_length_and_checksum_and_refused_with_others() -> None:
    digest = b64encode(hashlib.sha256(CONTENT).digest()).decode()
    other = b64encode(hashlib.sha256(b"abc").digest()).decode()
    (part,) = signer().presign_parts(BUCKET, "acme/up-1/big.bin", "mp-1", len(CONTENT), {1: digest})
    headers = part.request.headers

    assert send(checked(), part.request.url, headers)[0] == 200
    for changed in ({"Content-Length": "3"}, {"x-amz-checksum-sha256": other}):
        status, body = send(checked(), part.request.url, {**headers, **changed}, b"abc")
        assert (status, error(body)["Code"]) == (403, "SignatureDoesNotMatch")


def test_a_presigned_get_is_served() -> None:
    session = boto3.Session(
        aws_access_key_id=USER_KEY, aws_secret_access_key="user-secret", region_name=REGION
    )
    client = session.client("s3", endpoint_url=ENDPOINT, config=SIGNING_CONFIG)
    url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "a.txt"})

    assert send(checked(), url, {}, b"", method="GET")[0] == 200


def test_a_cors_preflight_and_an_unsigned_request_pass_through() -> None:
    put = presigned_put()
    preflight = {"Origin": "http://127.0.0.1:4567", "Access-Control-Request-Method": "PUT"}

    assert send(checked(), put.url, preflight, b"", method="OPTIONS")[0] == 200
    assert send(checked(), f"{ENDPOINT}/{BUCKET}/a.txt", {}, b"", method="GET")[0] == 200


@pytest.mark.parametrize(
    "query",
    [
        "Action=SendMessage&AWSAccessKeyId=AKIA&Signature=abc&SignatureVersion=2",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20250101%2Feu-west-1%2Fsts"
        "%2Faws4_request&X-Amz-Signature=abc",
    ],
    ids=["sqs-query-api-sigv2", "sts-presigned"],
)
def test_other_services_signed_queries_are_left_to_moto(query: str) -> None:
    assert send(checked(), f"{ENDPOINT}/?{query}", {}, b"", method="GET")[0] == 200


# --- what S3 refuses ---


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Content-Type", "text/plain"),
        ("x-amz-checksum-sha256", b64encode(hashlib.sha256(b"other").digest()).decode()),
        ("x-amz-server-side-encryption", "aws:kms"),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
    ],
)
def test_a_changed_signed_header_is_403_signature_does_not_match(header: str, value: str) -> None:
    put = presigned_put()

    status, body = send(checked(), put.url, {**put.headers, header: value})

    assert status == 403
    assert error(body)["Code"] == "SignatureDoesNotMatch"


def test_another_length_than_signed_is_403_signature_does_not_match() -> None:
    put = presigned_put()
    longer = CONTENT + b"2,20\n"

    status, body = send(
        checked(), put.url, {**put.headers, "Content-Length": str(len(longer))}, longer
    )

    assert (status, error(body)["Code"]) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url.replace("report.csv", "other.csv"),
        lambda url: url.replace("X-Amz-Expires=900", "X-Amz-Expires=901"),
        lambda url: url.replace(f"{BUCKET}/", "another-bucket/"),
    ],
    ids=["key", "expires", "bucket"],
)
def test_a_tampered_url_is_403_signature_does_not_match(tamper: Callable[[str], str]) -> None:
    put = presigned_put()

    status, body = send(checked(), tamper(put.url), put.headers)

    assert status == 403
    fields = error(body)
    assert fields["Code"] == "SignatureDoesNotMatch"
    assert fields["AWSAccessKeyId"] == USER_KEY
    assert fields["CanonicalRequest"].startswith("PUT\n/")


def test_another_method_than_signed_is_403() -> None:
    put = presigned_put()

    status, body = send(checked(), put.url, {}, b"", method="GET")

    assert (status, error(body)["Code"]) == (403, "SignatureDoesNotMatch")


def test_an_expired_url_is_403_request_has_expired() -> None:
    put = presigned_put()
    later = datetime.now(UTC) + timedelta(seconds=905)

    status, body = send(checked(clock=lambda: later), put.url, put.headers)

    fields = error(body)
    assert (status, fields["Code"], fields["Message"]) == (
        403,
        "AccessDenied",
        "Request has expired",
    )
    assert fields["X-Amz-Expires"] == "900"
    assert {"Expires", "ServerTime", "RequestId"} <= fields.keys()


def test_a_sigv2_url_is_400_invalid_request() -> None:
    legacy = signer(config=Config(signature_version="s3"))
    digest = b64encode(hashlib.sha256(CONTENT).digest()).decode()
    put = legacy.presign_put(BUCKET, "acme/up-1/report.csv", len(CONTENT), digest, "text/csv")
    assert "AWSAccessKeyId=" in put.url

    status, body = send(checked(), put.url, put.headers)

    fields = error(body)
    assert (status, fields["Code"]) == (400, "InvalidRequest")
    assert fields["Message"].endswith("Please use AWS4-HMAC-SHA256.")


def test_an_unsigned_amz_header_is_403_headers_not_signed() -> None:
    put = presigned_put()

    status, body = send(checked(), put.url, {**put.headers, "x-amz-storage-class": "GLACIER"})

    fields = error(body)
    assert (status, fields["Code"]) == (403, "AccessDenied")
    assert fields["HeadersNotSigned"] == "x-amz-storage-class"


def test_a_url_signed_for_another_region_than_the_buckets_is_400() -> None:
    put = presigned_put()

    status, body = send(checked(region="eu-central-1"), put.url, put.headers)

    fields = error(body)
    assert (status, fields["Code"]) == (400, "AuthorizationQueryParametersError")
    assert fields["Region"] == "eu-central-1"


def test_an_expiry_above_seven_days_is_400() -> None:
    put = presigned_put()

    status, body = send(
        checked(), put.url.replace("X-Amz-Expires=900", "X-Amz-Expires=604801"), put.headers
    )

    assert (status, error(body)["Code"]) == (400, "AuthorizationQueryParametersError")


def test_a_url_missing_a_sigv4_parameter_is_400() -> None:
    put = presigned_put()
    without_date = "&".join(p for p in put.url.split("&") if not p.startswith("X-Amz-Date="))

    status, body = send(checked(), without_date, put.headers)

    assert (status, error(body)["Code"]) == (400, "AuthorizationQueryParametersError")


def test_a_refusal_reaches_a_browser_page_through_cors() -> None:
    put = presigned_put()
    headers = {**put.headers, "Origin": "http://127.0.0.1:4567", "Content-Type": "text/plain"}

    response = Client(checked()).open(
        urlsplit(put.url).path,
        base_url=ENDPOINT,
        query_string=urlsplit(put.url).query,
        method="PUT",
        headers=headers,
        data=CONTENT,
    )

    assert response.status_code == 403
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# --- temporary credentials (the function role's, issued by the emulator's STS) ---


def test_a_url_signed_with_a_session_is_served_while_the_session_lasts() -> None:
    put = presigned_put(STS_KEY)

    assert "X-Amz-Security-Token=" in put.url
    assert send(checked(), put.url, put.headers)[0] == 200


def test_a_url_signed_with_a_session_stops_when_the_session_expires() -> None:
    put = presigned_put(STS_KEY)
    # The session ended a second ago; the URL's own 900 s have hardly begun.
    ended = {
        **KEYS,
        STS_KEY: SigningKey("sts-secret", TOKEN, datetime.now(UTC) - timedelta(seconds=1)),
    }
    app = PresignedRequestCheck(served, keys=ended.get, regions=lambda _: REGION)

    status, body = send(app, put.url, put.headers)

    fields = error(body)
    assert (status, fields["Code"], fields["Message"]) == (
        400,
        "ExpiredToken",
        "The provided token has expired.",
    )


def test_a_session_key_without_its_token_is_403_and_with_another_is_400() -> None:
    put = presigned_put(STS_KEY)
    without = "&".join(p for p in put.url.split("&") if not p.startswith("X-Amz-Security-Token"))
    other = put.url.replace(f"X-Amz-Security-Token={TOKEN}", "X-Amz-Security-Token=forged")

    missing_status, missing = send(checked(), without, put.headers)
    forged_status, forged = send(checked(), other, put.headers)

    assert (missing_status, error(missing)["Code"]) == (403, "InvalidAccessKeyId")
    assert (forged_status, error(forged)["Code"]) == (400, "InvalidToken")


def test_a_key_the_emulator_does_not_know_is_not_verified_but_still_expires() -> None:
    # Looser than S3 (InvalidAccessKeyId): the AWS CLI works with any credentials locally.
    put = presigned_put(UNKNOWN_KEY)
    later = datetime.now(UTC) + timedelta(seconds=905)

    assert send(checked(), put.url, put.headers)[0] == 200
    assert send(checked(clock=lambda: later), put.url, put.headers)[0] == 403


def test_the_fixed_local_key_is_verified_with_its_own_secret() -> None:
    put = presigned_put(LOCAL_ACCESS_KEY)

    assert send(checked(), put.url, put.headers)[0] == 200
    status, body = send(checked(), put.url, {**put.headers, "Content-Type": "text/plain"})
    assert (status, error(body)["Code"]) == (403, "SignatureDoesNotMatch")


# --- what the emulator knows: the keys it issued, its buckets' regions (moto in-process) ---


def test_the_emulators_keys_and_bucket_regions_are_found(aws: None) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="ops")
    user_key = iam.create_access_key(UserName="ops")["AccessKey"]
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]
    session = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=role["Arn"], RoleSessionName="fn", DurationSeconds=900
    )["Credentials"]
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    assert emulator_key(user_key["AccessKeyId"]) == SigningKey(user_key["SecretAccessKey"])
    found = emulator_key(session["AccessKeyId"])
    assert session["AccessKeyId"].startswith("ASIA")
    assert found is not None
    assert (found.secret, found.session_token) == (
        session["SecretAccessKey"],
        session["SessionToken"],
    )
    assert found.expiration == session["Expiration"]
    assert emulator_key(LOCAL_ACCESS_KEY) == SigningKey(LOCAL_ACCESS_KEY)
    assert emulator_key(UNKNOWN_KEY) is None
    assert bucket_region(BUCKET) == REGION
    assert bucket_region("no-such-bucket") is None
