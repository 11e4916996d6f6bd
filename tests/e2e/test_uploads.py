"""Partner uploads end to end on the local stack: partner CLI, upload API, client, verdicts."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from botocore.config import Config

from filegate.errors import UploadClientError
from filegate.parts import composite_sha256
from filegate.uploads.client import TransferConfig, UploadClient
from tests.e2e.conftest import BIN, Stack, cli_env, filegate, wait_for
from tests.e2e.upload_api import await_verdict, declare_upload, upload_view

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


def _put(url: str, headers: dict, body: bytes) -> urllib3.HTTPResponse:
    return urllib3.PoolManager().request(
        "PUT", url, body=body, headers={**headers, "content-length": str(len(body))}
    )


def test_a_single_put_with_a_wrong_checksum_is_refused_as_s3_does(
    stack: Stack, partner: dict
) -> None:
    plan = declare_upload(stack, partner["api_key"], 9, hashlib.sha256(b"original!").hexdigest())
    refused = _put(plan["url"], plan["headers"], b"tampered!")
    assert refused.status == 400
    assert b"BadDigest" in refused.data
    assert upload_view(stack, partner["api_key"], plan["upload_id"])["status"] == "PENDING"


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _api(stack: Stack, key: str, method: str, path: str, document: dict) -> urllib3.HTTPResponse:
    return urllib3.PoolManager().request(
        method,
        stack.env["upload_api_url"] + path.lstrip("/"),
        headers={"x-api-key": key},
        body=json.dumps(document).encode(),
    )


def test_a_multipart_part_refused_for_its_checksum_is_sent_again_and_completion_is_checked(
    stack: Stack, partner: dict
) -> None:
    # GIVEN a multipart plan, and each part's URL asked for with the part's SHA-256
    body = b"m" * (66 * 1024 * 1024)  # above the 64 MiB threshold: a multipart plan
    plan = declare_upload(stack, partner["api_key"], len(body), hashlib.sha256(body).hexdigest())
    assert (plan["method"], "parts" in plan) == ("MULTIPART", False)
    size = plan["part_size"]
    chunks = [body[offset : offset + size] for offset in range(0, len(body), size)]
    wanted = [{"part_number": n, "checksum_sha256": _b64(c)} for n, c in enumerate(chunks, 1)]
    signed = _api(stack, partner["api_key"], "POST", plan["sign_parts"]["path"], {"parts": wanted})
    assert signed.status == 200, signed.data
    # WHEN part 1 arrives damaged: the twin refuses it as S3 does (400 BadDigest); sent again
    # intact, it is stored
    parts = json.loads(signed.data)["parts"]
    damaged = _put(parts[0]["url"], parts[0]["headers"], b"X" + chunks[0][1:])
    assert (damaged.status, b"<Code>BadDigest</Code>" in damaged.data) == (400, True)
    listed = []
    for part, chunk in zip(parts, chunks, strict=True):
        answer = _put(part["url"], part["headers"], chunk)
        assert answer.status == 200, answer.data
        listed.append(
            {
                "part_number": part["part_number"],
                "etag": answer.headers["ETag"],
                "checksum_sha256": _b64(chunk),
            }
        )
    stored = _api(stack, partner["api_key"], "GET", plan["list_parts"]["path"], {})
    assert [p["checksum_sha256"] for p in json.loads(stored.data)["parts"]] == [
        p["checksum_sha256"] for p in listed
    ]
    # WHEN the completion lists another checksum than a stored part's: refused (S3: InvalidPart)
    wrong = [{**listed[0], "checksum_sha256": _b64(b"other")}, *listed[1:]]
    refused = _api(stack, partner["api_key"], "POST", plan["complete"]["path"], {"parts": wrong})
    assert (refused.status, json.loads(refused.data)["error"]["field"]) == (400, "parts")
    # THEN completed with the right list, it is ACCEPTED, and the ledger says which checksum S3
    # verified: the composite SHA-256 over the parts
    done = _api(stack, partner["api_key"], "POST", plan["complete"]["path"], {"parts": listed})
    assert done.status == 200, done.data
    view = await_verdict(stack, partner["api_key"], plan["upload_id"])
    assert view["status"] == "ACCEPTED"
    assert view["checksum"] == {
        "sha256": composite_sha256(p["checksum_sha256"] for p in listed),
        "type": "COMPOSITE",
        "part_count": len(chunks),
    }
    assert (view["declared"]["part_size"], view["declared"]["part_count"]) == (size, len(chunks))
    item = stack.item(plan["key"])
    assert item is not None
    assert item["checksum_sha256"]["S"] == composite_sha256(p["checksum_sha256"] for p in listed)
    assert item["checksum_type"]["S"] == "COMPOSITE"
    assert item["checksum_part_count"]["N"] == str(len(chunks))
    assert item["declared_sha256"]["S"] == hashlib.sha256(body).hexdigest()


def test_an_object_whose_s3_checksum_is_not_the_declared_sha256_is_rejected_naming_both(
    stack: Stack, partner: dict
) -> None:
    # GIVEN a declared upload, and a bucket writer that puts other bytes of the same size there
    declared, other = b"declared!", b"other one"
    plan = declare_upload(
        stack, partner["api_key"], len(declared), hashlib.sha256(declared).hexdigest()
    )
    stack.s3.put_object(
        Bucket=stack.bucket,
        Key=plan["key"],
        Body=other,
        ContentType="application/octet-stream",
        ChecksumAlgorithm="SHA256",
    )
    # THEN the ingestion, from HeadObject alone, rejects it naming both checksums
    view = await_verdict(stack, partner["api_key"], plan["upload_id"])
    assert view["status"] == "REJECTED"
    assert _b64(other) in view["reason"]
    assert _b64(declared) in view["reason"]
    assert hashlib.sha256(declared).hexdigest() in view["reason"]


class _DamagingPool(urllib3.PoolManager):
    """The client's HTTP pool, damaging the first body sent to part 2's URL (a bit flipped on
    the way), as a flaky network or proxy would; every body sent to it when ``always``."""

    damaged = 0
    always = False

    def request(self, method: str, url: str, body: object = None, **kw: object) -> object:
        if method == "PUT" and "partNumber=2&" in url + "&" and (self.always or not self.damaged):
            self.damaged += 1
            data = b"".join(body)  # type: ignore[arg-type]
            body = bytes([data[0] ^ 1]) + data[1:]
        return super().request(method, url, body=body, **kw)  # type: ignore[arg-type]


def test_a_part_damaged_on_the_way_is_refused_resent_by_the_client_and_accepted(
    stack: Stack, partner: dict, tmp_path: Path
) -> None:
    large = tmp_path / "flaky link.bin"
    large.write_bytes(hashlib.sha256(b"flaky").digest() * (66 * 1024 * 1024 // 32))  # 66 MiB
    pool = _DamagingPool(maxsize=6, retries=False)
    client = UploadClient(stack.env["upload_api_url"], partner["api_key"], http=pool)

    result = client.wait(client.upload(large), timeout=60)

    assert pool.damaged == 1  # the twin refused it (BadDigest); the client read it and resent it
    assert (result.method, result.status) == ("MULTIPART", "ACCEPTED")


def test_a_part_damaged_on_every_attempt_makes_the_client_give_up_abort_and_end_rejected(
    stack: Stack, partner: dict, tmp_path: Path
) -> None:
    # GIVEN a link that damages part 2 on every attempt
    # (a name of its own: the stack and its ledger are shared with other tests' uploads)
    large = tmp_path / f"broken link {uuid.uuid4().hex[:8]}.bin"
    large.write_bytes(hashlib.sha256(b"broken").digest() * (66 * 1024 * 1024 // 32))  # 66 MiB
    pool = _DamagingPool(maxsize=6, retries=False)
    pool.always = True
    config = TransferConfig(max_attempts=3, backoff_base_seconds=0.05)
    client = UploadClient(stack.env["upload_api_url"], partner["api_key"], config, http=pool)

    # WHEN the file is uploaded
    with pytest.raises(UploadClientError) as refused:
        client.upload(large)

    # THEN the twin refused part 2 each time (BadDigest), the client gave up after its attempts
    # naming the part, and the multipart upload is gone from S3 and REJECTED in the ledger,
    # the reason naming the part S3 refused
    assert pool.damaged == 3
    assert "part 2" in str(refused.value)
    assert "BadDigest" in str(refused.value)
    assert "is REJECTED: S3 refused the bytes sent for part 2" in str(refused.value)
    items = stack.ddb.scan(TableName=stack.table)["Items"]
    mine = [item for item in items if item["s3_key"]["S"].endswith("/" + large.name)]
    assert [item["processing_status"]["S"] for item in mine] == ["REJECTED"]
    assert mine[0]["reason"]["S"].startswith("S3 refused the bytes sent for part 2 as not")
    # (the stack is shared: other tests' uploads may be open, this one's must not)
    uploads = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == mine[0]["s3_key"]["S"]] == []


@pytest.mark.parametrize(
    ("name", "size"),
    [("records say otherwise.csv", 1024), ("records say otherwise.bin", 66 * 1024 * 1024)],
)
def test_a_file_that_is_not_the_sha256_the_partner_declares_ends_rejected_naming_it(
    stack: Stack, partner: dict, tmp_path: Path, name: str, size: int
) -> None:
    # GIVEN a file whose SHA-256 is not the one the partner's records give for it
    path = tmp_path / f"{uuid.uuid4().hex[:8]} {name}"
    path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    declared = hashlib.sha256(b"the file the records describe").hexdigest()

    # WHEN the partner uploads it declaring that SHA-256
    done = upload_cli(
        stack, partner["api_key"], str(path), "--sha256", declared, "--wait", "--output", "json"
    )

    # THEN the upload ends REJECTED, the reason naming the declared SHA-256 (and the sent one)
    items = stack.ddb.scan(TableName=stack.table)["Items"]
    (mine,) = [item for item in items if item["s3_key"]["S"].endswith("/" + path.name)]
    assert mine["processing_status"]["S"] == "REJECTED"
    assert declared in mine["reason"]["S"]
    if size <= 64 * 1024 * 1024:
        # one PUT: S3 refused the bytes its URL bound to the declared SHA-256; nothing stored
        assert done.returncode == 2, done.stdout
        said = " ".join(done.stderr.split())  # as the terminal wraps it
        assert f"the file's SHA-256 is {actual}, not the declared {declared}" in said, said
        assert "REJECTED" in said
        assert "size" not in mine
    else:
        # multipart: S3 stored the parts the client hashed; the verdict compares the digests
        assert done.returncode == 1, done.stderr
        (result,) = json.loads(done.stdout)
        assert (result["status"], result["reason"]) == ("REJECTED", mine["reason"]["S"])
        assert actual in mine["reason"]["S"]


def test_a_wrong_size_is_refused_by_s3_and_rejected_by_the_ingestion(
    stack: Stack, partner: dict
) -> None:
    declared = b"short"
    longer = b"longer than declared"
    plan = declare_upload(
        stack, partner["api_key"], len(declared), hashlib.sha256(declared).hexdigest()
    )
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
    view = await_verdict(stack, partner["api_key"], plan["upload_id"])
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
    plan = declare_upload(
        stack, partner["api_key"], len(content), hashlib.sha256(content).hexdigest()
    )
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
    # (X-Amz-Date has whole seconds, so a URL of X-Amz-Expires=N is good for N-1 to N seconds
    # after it is signed: 1 second could already be over by the first GET.)
    short = _presigned_get(stack, result["key"], 3, "s3v4")
    assert http.request("GET", short).status == 200
    refusal = wait_for(lambda: _refusal(http.request("GET", short)), timeout=15)
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
