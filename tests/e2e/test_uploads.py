"""Partner uploads end to end on the local stack: partner CLI, upload API, client, verdicts."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from botocore.config import Config

from filegate.uploads.client import UploadClient
from tests.e2e.conftest import BIN, Stack, cli_env, filegate, wait_for

PRESIGN_EXPIRY = timedelta(seconds=900)  # the template's default PresignExpirySeconds


@pytest.fixture(scope="module")
def partner(stack: Stack) -> dict:
    done = filegate(
        stack.state_dir,
        "partner",
        "add",
        "e2e partner",
        "--max-size",
        "100000000",
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def upload_cli(stack: Stack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(stack.state_dir, FILEGATE_API_KEY=key)
    return subprocess.run(
        [str(BIN / "filegate"), "upload", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_partner_add_gives_a_key_a_prefix_and_the_local_api(stack: Stack, partner: dict) -> None:
    assert partner["api_key"].startswith(f"fg_{partner['partner_id']}_")
    assert partner["prefix"] == f"{partner['partner_id']}/"


def test_client_uploads_single_and_multipart_and_both_are_accepted(
    stack: Stack, partner: dict, tmp_path: Path
) -> None:
    small = tmp_path / "invoice März.csv"
    small.write_text("id,amount\n1,100\n")
    large = tmp_path / "archive.bin"
    large.write_bytes(hashlib.sha256(b"seed").digest() * (70 * 1024 * 1024 // 32))  # 70 MiB
    done = upload_cli(
        stack, partner["api_key"], str(small), str(large), "--wait", "--output", "json"
    )
    assert done.returncode == 0, done.stderr + done.stdout
    results = {Path(r["file"]).name: r for r in json.loads(done.stdout)}
    assert results["invoice März.csv"]["method"] == "PUT"
    assert results["archive.bin"]["method"] == "MULTIPART"
    for result in results.values():
        assert result["status"] == "ACCEPTED", result
        assert result["key"].startswith(partner["prefix"])
        item = stack.item(result["key"])
        assert item is not None
        assert item["processing_status"]["S"] == "ACCEPTED"
        assert item["size"]["N"] == str(result["size"])


def _declare(stack: Stack, key: str, size: int, sha256: str) -> dict:
    http = urllib3.PoolManager()
    answer = http.request(
        "POST",
        stack.env["upload_api_url"] + "uploads",
        headers={"x-api-key": key},
        body=json.dumps(
            {
                "filename": "x.bin",
                "size": size,
                "sha256": sha256,
                "content_type": "application/octet-stream",
            }
        ).encode(),
    )
    assert answer.status == 201, answer.data
    return dict(json.loads(answer.data))


def _put(url: str, headers: dict, body: bytes) -> urllib3.HTTPResponse:
    return urllib3.PoolManager().request(
        "PUT", url, body=body, headers={**headers, "content-length": str(len(body))}
    )


def _view(stack: Stack, key: str, upload_id: str) -> dict:
    answer = urllib3.PoolManager().request(
        "GET", stack.env["upload_api_url"] + f"uploads/{upload_id}", headers={"x-api-key": key}
    )
    return dict(json.loads(answer.data))


def _verdict(stack: Stack, key: str, upload_id: str) -> dict:
    def final() -> dict | None:
        view = _view(stack, key, upload_id)
        return view if view["status"] != "PENDING" else None

    return dict(wait_for(final, timeout=15))


def test_a_single_put_with_a_wrong_checksum_is_refused_as_s3_does(
    stack: Stack, partner: dict
) -> None:
    plan = _declare(stack, partner["api_key"], 9, hashlib.sha256(b"original!").hexdigest())
    refused = _put(plan["url"], plan["headers"], b"tampered!")
    assert refused.status == 400
    assert b"BadDigest" in refused.data
    assert _view(stack, partner["api_key"], plan["upload_id"])["status"] == "PENDING"


def test_a_multipart_upload_with_a_wrong_checksum_is_rejected_with_a_reason(
    stack: Stack, partner: dict
) -> None:
    body = b"m" * (66 * 1024 * 1024)  # above the 64 MiB threshold: a multipart plan
    plan = _declare(stack, partner["api_key"], len(body), hashlib.sha256(b"other").hexdigest())
    assert plan["method"] == "MULTIPART"
    parts = []
    for part in plan["parts"]:
        chunk = body[part["offset"] : part["offset"] + part["size"]]
        answer = _put(part["url"], part["headers"], chunk)
        assert answer.status == 200
        parts.append(
            {"part_number": part["part_number"], "etag": answer.headers["ETag"].strip('"')}
        )
    done = urllib3.PoolManager().request(
        "POST",
        stack.env["upload_api_url"] + plan["complete"]["path"].lstrip("/"),
        headers={"x-api-key": partner["api_key"]},
        body=json.dumps({"parts": parts}).encode(),
    )
    assert done.status == 200, done.data
    view = _verdict(stack, partner["api_key"], plan["upload_id"])
    assert view["status"] == "REJECTED"
    assert "sha256" in view["reason"]


def test_a_wrong_size_is_refused_by_s3_and_rejected_by_the_ingestion(
    stack: Stack, partner: dict
) -> None:
    declared = b"short"
    longer = b"longer than declared"
    plan = _declare(stack, partner["api_key"], len(declared), hashlib.sha256(declared).hexdigest())
    headers = {
        k: v
        for k, v in plan["headers"].items()
        if not k.lower().startswith(("x-amz-checksum", "x-amz-sdk-checksum"))
    }
    # The URL binds Content-Length: S3 (and the local stack) refuse another length.
    refused = _put(plan["url"], headers, longer)
    assert refused.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in refused.data
    # An object of the wrong size that reaches the key some other way is still rejected.
    stack.s3.put_object(Bucket=stack.bucket, Key=plan["key"], Body=longer)
    view = _verdict(stack, partner["api_key"], plan["upload_id"])
    assert view["status"] == "REJECTED"
    assert "size" in view["reason"]


def _presigned_get(stack: Stack, key: str, expires_in: int, signature_version: str) -> str:
    client = stack.target.session().client(
        "s3",
        endpoint_url=stack.env["endpoint_url"],
        config=Config(signature_version=signature_version),
    )
    url: str = client.generate_presigned_url(
        "get_object", Params={"Bucket": stack.bucket, "Key": key}, ExpiresIn=expires_in
    )
    return url


def _refusal(answer: urllib3.HTTPResponse) -> bytes | None:
    return bytes(answer.data) if answer.status == 403 else None


def test_the_local_s3_refuses_tampered_expired_and_sigv2_urls_and_uploads_still_work(
    stack: Stack, partner: dict, tmp_path: Path
) -> None:
    # GIVEN a file uploaded with `filegate upload` (presigned URLs checked as S3 checks them)
    file = tmp_path / "checked.csv"
    file.write_text("id,amount\n1,100\n")
    done = upload_cli(stack, partner["api_key"], str(file), "--wait", "--output", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    (result,) = json.loads(done.stdout)
    assert result["status"] == "ACCEPTED"
    http = urllib3.PoolManager(retries=False)

    # WHEN a declared PUT is sent with another type than signed, or to another key
    content = b"id\n1\n"
    plan = _declare(stack, partner["api_key"], len(content), hashlib.sha256(content).hexdigest())
    retyped = _put(plan["url"], {**plan["headers"], "Content-Type": "text/html"}, content)
    moved = _put(plan["url"].replace("/x.bin?", "/y.bin?"), plan["headers"], content)
    # THEN S3's answer: 403 SignatureDoesNotMatch, as its XML error body
    for answer in (retyped, moved):
        assert answer.status == 403
        assert b"<Code>SignatureDoesNotMatch</Code>" in answer.data
        assert answer.headers["Content-Type"] == "application/xml"

    # WHEN a URL is signed with SigV2: 400 InvalidRequest (S3 refuses SigV2 for new buckets)
    sigv2 = http.request("GET", _presigned_get(stack, result["key"], 60, "s3"))
    assert sigv2.status == 400
    assert b"Please use AWS4-HMAC-SHA256." in sigv2.data

    # WHEN a SigV4 URL outlives its X-Amz-Expires: served first, then 403 "Request has expired"
    short = _presigned_get(stack, result["key"], 1, "s3v4")
    assert http.request("GET", short).status == 200
    refusal = wait_for(lambda: _refusal(http.request("GET", short)), timeout=10)
    assert b"<Message>Request has expired</Message>" in refusal


def test_a_disabled_partner_is_refused_at_once(stack: Stack, tmp_path: Path) -> None:
    added = json.loads(
        filegate(stack.state_dir, "partner", "add", "short lived", "--output", "json").stdout
    )
    assert filegate(stack.state_dir, "partner", "disable", added["partner_id"]).returncode == 0
    file = tmp_path / "a.txt"
    file.write_text("a")
    done = upload_cli(stack, added["api_key"], str(file))
    assert done.returncode == 2
    assert "403" in done.stderr


def test_a_slow_multipart_upload_gets_fresh_part_urls_and_its_expiry_moves_on(
    stack: Stack, partner: dict, tmp_path: Path
) -> None:
    # GIVEN a client whose clock runs 14.5 minutes ahead: to it, every URL of the plan (900 s)
    # is about to expire, as it would be after a long transfer over a slow link (the local S3
    # checks expiry by its own clock, so the URLs themselves are still good).
    large = tmp_path / "slow link.bin"
    large.write_bytes(hashlib.sha256(b"slow").digest() * (66 * 1024 * 1024 // 32))  # 66 MiB
    client = UploadClient(
        stack.env["upload_api_url"],
        partner["api_key"],
        clock=lambda: datetime.now(UTC) + timedelta(minutes=14, seconds=30),
    )

    # WHEN it uploads the file
    result = client.wait(client.upload(large), timeout=60)

    # THEN it asked for fresh URLs (the declaration's expiry moved past the plan's) and the
    # upload arrived intact
    assert (result.method, result.status) == ("MULTIPART", "ACCEPTED")
    item = stack.item(result.key)
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"
    declared_at = datetime.fromisoformat(item["first_seen_at"]["S"])
    assert datetime.fromisoformat(item["expires_at"]["S"]) > declared_at + PRESIGN_EXPIRY
