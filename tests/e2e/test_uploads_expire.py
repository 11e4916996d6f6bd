"""Nothing orphaned, end to end on the local stack: an abandoned multipart upload (declared,
one part sent, never completed) is aborted in S3 and EXPIRED in the ledger by `filegate
uploads expire`; a completed upload is untouched; `--dry-run` changes nothing."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import urllib3

from tests.e2e.conftest import Stack, filegate, wait_for
from tests.e2e.test_uploads import partner, upload_cli  # noqa: F401 - partner: a fixture

SIZE = 66 * 1024 * 1024  # above the 64 MiB threshold: a multipart plan


def declare_and_send_one_part(stack: Stack, api_key: str) -> dict:
    http = urllib3.PoolManager()
    body = {
        "filename": "abandoned.bin",
        "size": SIZE,
        "sha256": hashlib.sha256(b"never sent whole").hexdigest(),
        "content_type": "application/octet-stream",
    }
    answer = http.request(
        "POST",
        stack.env["upload_api_url"] + "uploads",
        headers={"x-api-key": api_key},
        body=json.dumps(body).encode(),
    )
    assert answer.status == 201, answer.data
    plan = dict(json.loads(answer.data))
    assert plan["method"] == "MULTIPART"
    # the first part's URL, signed for its SHA-256 (the multipart contract: docs/integrity.md)
    chunk = b"x" * plan["part_size"]
    checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    signed = http.request(
        "POST",
        stack.env["upload_api_url"] + plan["sign_parts"]["path"].lstrip("/"),
        headers={"x-api-key": api_key},
        body=json.dumps({"parts": [{"part_number": 1, "checksum_sha256": checksum}]}).encode(),
    )
    assert signed.status == 200, signed.data
    (first,) = json.loads(signed.data)["parts"]
    sent = http.request("PUT", first["url"], body=chunk, headers=first["headers"])
    assert sent.status == 200, sent.data
    return plan


def walk_away(stack: Stack, key: str) -> None:
    """The partner stopped 15 minutes ago: the declaration's URLs have expired since."""
    stack.ddb.update_item(
        TableName=stack.table,
        Key={"s3_key": {"S": key}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": "2026-01-01T00:00:00.000Z"}},
    )


def open_uploads(stack: Stack) -> set[str]:
    found = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    return {u["Key"] for u in found}


def status_of(stack: Stack, key: str) -> str:
    item = stack.item(key)
    assert item is not None
    return str(item["processing_status"]["S"])


def expire(stack: Stack, *options: str) -> list[dict]:
    done = filegate(stack.state_dir, "uploads", "expire", "--output", "json", *options)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["swept"])


def test_an_abandoned_multipart_upload_is_aborted_and_expired_and_nothing_else(
    stack: Stack,
    partner: dict,  # noqa: F811
    tmp_path: Path,
) -> None:
    # GIVEN a completed upload, and an abandoned multipart upload past its expiry
    small = tmp_path / "done.csv"
    small.write_text("id\n1\n")
    done = upload_cli(stack, partner["api_key"], str(small), "--wait", "--output", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    (completed,) = json.loads(done.stdout)
    plan = declare_and_send_one_part(stack, partner["api_key"])
    walk_away(stack, plan["key"])
    assert plan["key"] in open_uploads(stack)

    # WHEN a dry run looks: THEN it lists the abandoned upload and changes nothing
    (would,) = [s for s in expire(stack, "--dry-run") if s["key"] == plan["key"]]
    assert (would["kind"], would["action"]) == ("declared", "would expire")
    assert plan["key"] in open_uploads(stack)
    assert status_of(stack, plan["key"]) == "PENDING"

    # WHEN it runs
    swept = {s["key"]: s for s in expire(stack)}

    # THEN S3 holds no multipart upload for it any more, the ledger says EXPIRED, and the
    # completed upload is untouched
    assert plan["key"] not in open_uploads(stack)
    assert status_of(stack, plan["key"]) == "EXPIRED"
    assert (swept[plan["key"]]["action"], swept[plan["key"]]["s3"]) == ("expired", "aborted")
    assert completed["key"] not in swept
    assert status_of(stack, completed["key"]) == "ACCEPTED"
    # and the API says EXPIRED too
    answer = urllib3.PoolManager().request(
        "GET",
        stack.env["upload_api_url"] + f"uploads/{plan['upload_id']}",
        headers={"x-api-key": partner["api_key"]},
    )
    assert json.loads(answer.data)["status"] == "EXPIRED"

    # WHEN it runs again: nothing left to do
    assert [s for s in expire(stack) if s["key"] == plan["key"]] == []


@pytest.mark.parametrize("threshold", ["soon", "0h", "-1d"])
def test_a_bad_threshold_is_refused_with_exit_2_and_a_sentence(
    stack: Stack, threshold: str
) -> None:
    done = filegate(stack.state_dir, "uploads", "expire", "--older-than", threshold)
    assert done.returncode == 2
    assert f"--older-than {threshold!r} is not a duration" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_upload_left_open_fires_the_stale_uploads_alarm_until_expired(stack: Stack) -> None:
    # GIVEN a multipart upload nobody declared, left open (the emulator reports every upload
    # as initiated in 2010: it is more than a day old)
    stack.s3.create_multipart_upload(Bucket=stack.bucket, Key="ops/left-open.bin")
    function = f"{stack.env['FunctionName']}-stale-uploads"
    alarm = f"{stack.env['FunctionName']}-stale-uploads"
    lambda_client = stack.target.client("lambda")

    def count() -> int:
        answer = lambda_client.invoke(FunctionName=function, Payload=b"{}")
        assert "FunctionError" not in answer, answer["Payload"].read()
        return int(json.loads(answer["Payload"].read())["StaleMultipartUploads"])

    # WHEN the scheduled function runs (`aws lambda invoke`, as its schedule would): it counts
    # every open upload, ours too (other test modules on this stack may have uploads in flight)
    assert count() == len(open_uploads(stack)) >= 1

    # THEN its metric turns the stack's alarm to ALARM
    cloudwatch = stack.target.client("cloudwatch")

    def state() -> str | None:
        found = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
        return found if found == "ALARM" else None

    assert wait_for(state, timeout=60, interval=1) == "ALARM"

    # AND after `filegate uploads expire` ours is no longer there to count: what is left are
    # declared uploads still in flight, which the sweep keeps (on AWS they would not be a day
    # old; the emulator dates every upload 2010: docs/aws-fidelity.md)
    swept = {s["key"]: s for s in expire(stack)}
    assert swept["ops/left-open.bin"]["kind"] == "undeclared"
    left = open_uploads(stack)
    assert "ops/left-open.bin" not in left
    assert count() == len(left)
