"""The pipeline end to end on the local stack: upload -> S3 event -> SQS -> function -> ledger."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

import psutil

from filegate.storage import create_bucket_request
from tests.e2e.conftest import Stack, wait_for


def test_upload_is_recorded_on_the_first_delivery_of_its_event(stack: Stack) -> None:
    # GIVEN a key with spaces and non-ASCII characters
    key = "partner-e2e/Rechnung März 2026 (final).csv"
    # WHEN it is uploaded
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"a,b\n1,2\n", ContentType="text/csv")
    # THEN the ledger records it, decoded, with what HeadObject says
    item = wait_for(lambda: stack.item(key), timeout=30, interval=0.05)
    assert item["s3_bucket"]["S"] == stack.bucket
    assert item["size"]["N"] == "8"
    assert item["content_type"]["S"] == "text/csv"
    assert item["processing_status"]["S"] == "RECEIVED"
    assert item["prefix"]["S"] == "partner-e2e"
    assert item["sequencer"]["S"]  # supplied by the local mode, as real S3 does
    assert item["version_id"]["S"] not in ("", "null")
    # AND on the first delivery of its one event: written once, by an invocation that failed
    # nothing (a failed try comes back only after the retry delay). How soon it is recorded is
    # a speed figure: benchmarks/upload_latency.py.
    assert item["updated_at"]["S"] == item["first_seen_at"]["S"]
    documents = wait_for(lambda: _once_written(stack, key), timeout=10)
    assert [d["outcome"] for d in documents if "outcome" in d] == ["written"]
    assert not [d for d in documents if d["level"] not in ("DEBUG", "INFO")]


def _once_written(stack: Stack, key: str) -> list[dict]:
    """The function's log lines about ``key``, once one says its event was written."""
    documents = stack.log_documents(key)
    return documents if any(d.get("outcome") == "written" for d in documents) else []


def test_overwrite_then_delete_ends_deleted_with_last_size(stack: Stack) -> None:
    key = "partner-e2e/overwritten.json"
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"{}", ContentType="application/json")
    stack.s3.put_object(
        Bucket=stack.bucket, Key=key, Body=b'{"v": 2}', ContentType="application/json"
    )
    # Two workers may take the three events in any order; a put delivered after the delete is
    # stale and rejected (tests/functional/test_ingest_ledger_order.py covers that). Here the
    # second put is recorded first, so the delete must keep its size.
    wait_for(lambda: (stack.item(key) or {}).get("size", {}).get("N") == "8", timeout=10)
    stack.s3.delete_object(Bucket=stack.bucket, Key=key)

    def deleted() -> dict | None:
        item = stack.item(key)
        return item if item and item["processing_status"]["S"] == "DELETED" else None

    item = wait_for(deleted, timeout=10)
    assert item["event_name"]["S"] == "ObjectRemoved:DeleteMarkerCreated"
    assert item["size"]["N"] == "8"  # the delete keeps what the ledger knew of the object


def test_poison_message_reaches_dlq_while_others_flow(stack: Stack) -> None:
    # GIVEN a message that is no S3 notification at all
    stack.sqs.send_message(QueueUrl=stack.env["QueueUrl"], MessageBody="this is not JSON")
    key = "partner-e2e/after-poison.txt"
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"fine", ContentType="text/plain")
    # THEN the good object is recorded at once, and the poison ends in the DLQ within a minute
    wait_for(lambda: stack.item(key), timeout=5)

    def in_dlq() -> list:
        return stack.sqs.receive_message(
            QueueUrl=stack.env["DeadLetterQueueUrl"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
        ).get("Messages", [])

    messages = wait_for(in_dlq, timeout=60, interval=1)
    assert any(m["Body"] == "this is not JSON" for m in messages)


def test_an_event_for_another_bucket_is_dead_lettered_and_leaves_the_item_of_its_key(
    stack: Stack,
) -> None:
    # GIVEN an object of the stack's bucket, recorded
    key = "partner-e2e/same-name-elsewhere.csv"
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"ours", ContentType="text/csv")
    ours = wait_for(lambda: stack.item(key), timeout=5)
    # AND another bucket with an object of the same key (the emulator enforces no IAM: the
    # function could read it, as it could not on AWS)
    other = "filegate-e2e-someone-else"
    stack.s3.create_bucket(**create_bucket_request(other, stack.env["region"]))
    stack.s3.put_object(Bucket=other, Key=key, Body=b"theirs, newer", ContentType="text/csv")
    # WHEN an S3 event of that bucket reaches the ingest queue
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime(time.time() + 60)),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": other}, "object": {"key": key, "sequencer": "F" * 18}},
    }
    sent = stack.sqs.send_message(
        QueueUrl=stack.env["QueueUrl"], MessageBody=json.dumps({"Records": [record]})
    )

    # THEN it ends in the dead-letter queue, where an operator sees it
    def dead_lettered() -> list:
        messages = stack.sqs.receive_message(
            QueueUrl=stack.env["DeadLetterQueueUrl"], MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [m for m in messages if other in m["Body"]]

    assert wait_for(dead_lettered, timeout=60, interval=1)
    assert sent["MessageId"]
    # AND the item of the same key still records the stack's object
    assert stack.item(key) == ours
    assert [m for m in stack.log_messages() if other in m]  # the refusal names the bucket


def _bootstrap_workers(stack: Stack) -> list[psutil.Process]:
    supervisor = psutil.Process(stack.supervisor_pid())
    return [p for p in supervisor.children(recursive=True) if _is_worker(p)]


def _is_worker(process: psutil.Process) -> bool:
    # A worker killed a moment ago may be a zombie, or gone, until the supervisor reaps it.
    try:
        return any("bootstrap.py" in part for part in process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return False


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return 0.0
    return float(times.user + times.system)


def _busiest_worker(stack: Stack) -> psutil.Process | None:
    """The worker that used the most CPU in the last 50 ms: most likely mid-invocation (an
    idle worker waits on its stdin and uses none)."""
    workers = _bootstrap_workers(stack)
    before = {worker.pid: _cpu_seconds(worker) for worker in workers}
    time.sleep(0.05)
    used = {worker.pid: _cpu_seconds(worker) - before[worker.pid] for worker in workers}
    busy = [worker for worker in workers if used[worker.pid] > 0]
    return max(busy, key=lambda worker: used[worker.pid], default=None)


def test_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(stack: Stack) -> None:
    # GIVEN a stream of uploads, and busy workers killed while they work through it, until a
    # kill has landed mid-invocation (the function's log says "Runtime exited")
    stop, uploaded = threading.Event(), []

    def upload() -> None:
        for number in range(2000):
            if stop.is_set():
                return
            key = f"partner-kill/file-{number:04d}.txt"
            stack.s3.put_object(
                Bucket=stack.bucket, Key=key, Body=key.encode(), ContentType="text/plain"
            )
            uploaded.append(key)

    uploader = threading.Thread(target=upload)
    uploader.start()
    deadline = time.monotonic() + 60
    try:
        while not stack.log_messages("Runtime exited") and time.monotonic() < deadline:
            worker = _busiest_worker(stack)
            if worker is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            time.sleep(0.25)
    finally:
        stop.set()
        uploader.join()
    # AND the kills really failed invocations, whose messages came back
    assert stack.log_messages("Runtime exited")
    assert uploaded

    # THEN every object is in the ledger, each written exactly once
    def all_recorded() -> list[dict] | None:
        items = [stack.item(key) for key in uploaded]
        return items if all(items) else None

    items = wait_for(all_recorded, timeout=90, interval=0.5)
    for key, item in zip(uploaded, items, strict=True):
        assert item["size"]["N"] == str(len(key.encode()))
        assert item["updated_at"]["S"] == item["first_seen_at"]["S"], key
    # AND nothing was dead-lettered because of the kills
    dlq_bodies = [
        m["Body"]
        for m in stack.sqs.receive_message(
            QueueUrl=stack.env["DeadLetterQueueUrl"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
        ).get("Messages", [])
    ]
    assert not any("partner-kill" in body for body in dlq_bodies)


def test_function_logs_have_lambda_framing(stack: Stack) -> None:
    key = "partner-e2e/logged.txt"
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"x", ContentType="text/plain")
    wait_for(lambda: stack.item(key), timeout=5)

    # moto's filter patterns are plain-text only (docs/local-mode.md): select the JSON lines here
    def documents() -> list[dict]:
        parsed = [json.loads(m) for m in stack.log_messages() if m.startswith("{")]
        return [d for d in parsed if d.get("s3_key") == key and d.get("function_request_id")]

    (document, *_) = wait_for(documents, timeout=5)
    request_id = document["function_request_id"]
    reports = [m for m in stack.log_messages("REPORT") if request_id in m]
    assert "Max Memory Used" in reports[0]
    assert "Duration:" in reports[0]
