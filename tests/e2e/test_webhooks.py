"""Partner webhooks end to end on the local stack (issue 12, item 2; docs/webhooks.md):
ledger stream -> publisher (signs) -> bus -> the partner's rule -> its API destination -> an
HTTP server on 127.0.0.1 that the test starts and stops.

GIVEN a partner whose webhook is `set` to the test's server and a partner without one, WHEN
uploads of both are ACCEPTED or REJECTED, THEN the server receives exactly one signed webhook
per verdict of the first (checked after a later, known one arrived), each verifying with the
secret `set` printed while a tampered payload does not, and nothing for the second; and an
endpoint answering 500 is retried as the rule's RetryPolicy says, then the event goes to the
webhook dead-letter queue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from filegate.publish.exceptions import SignatureError
from filegate.publish.webhook import verify
from tests.e2e.conftest import Stack, filegate, wait_for
from tests.e2e.test_events import alarm_state, upload
from tests.e2e.upload_api import rejected_upload


class Endpoint:
    """An HTTP server on 127.0.0.1 answering every POST with ``status``; what it received."""

    def __init__(self, status: int) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        received, endpoint = self.requests, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                self.send_response(endpoint.status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/filegate"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in list(self.requests)]

    def of(self, key: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if json.loads(b["payload"])["key"] == key]


@contextmanager
def endpoint(status: int) -> Iterator[Endpoint]:
    """The test's server, serving until the test ends (it stops by itself then)."""
    server = Endpoint(status)
    thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._server.shutdown()
        server._server.server_close()
        thread.join()


def add_partner(stack: Stack, name: str) -> dict[str, Any]:
    done = filegate(stack.state_dir, "partner", "add", name, "--output", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def set_webhook(stack: Stack, partner_id: str, url: str, *options: str) -> dict[str, Any]:
    done = filegate(
        stack.state_dir, "partner", "webhook", "set", partner_id, url, *options, "--output", "json"
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return dict(json.loads(done.stdout))


def test_each_verdict_of_a_partner_with_a_webhook_arrives_once_signed_and_none_without(
    stack: Stack, tmp_path: Path
) -> None:
    hooked, plain = add_partner(stack, "hooked partner"), add_partner(stack, "plain partner")
    with endpoint(200) as server:
        webhook = set_webhook(stack, hooked["partner_id"], server.url)
        # WHEN the hooked partner's uploads are ACCEPTED and REJECTED, the other's ACCEPTED
        accepted = upload(stack, hooked, tmp_path, "accepted.csv")
        rejected = rejected_upload(stack, hooked)["key"]
        upload(stack, plain, tmp_path, "plain.csv")
        # ... and a later upload of the hooked partner's has arrived (anything else came first)
        later = upload(stack, hooked, tmp_path, "later.csv")
        wait_for(lambda: server.of(accepted) and server.of(rejected) and server.of(later), 60)

        bodies = server.bodies()
        headers = [h for h, _ in server.requests]

    # THEN exactly one webhook per verdict, all for the hooked partner
    now = datetime.now(UTC)
    details = [verify(webhook["secret"], body, now) for body in bodies]
    assert sorted((d["verdict"], d["key"]) for d in details) == sorted(
        [("ACCEPTED", accepted), ("REJECTED", rejected), ("ACCEPTED", later)]
    )
    assert {b["partner_id"] for b in bodies} == {hooked["partner_id"]}
    # AND each as the design says: the payload's exact text signed, POSTed as JSON with the
    # connection's marker header
    assert all(sorted(b) == ["partner_id", "payload", "signature", "timestamp"] for b in bodies)
    assert all(h["Content-Type"].startswith("application/json") for h in headers)
    assert all(h["X-Filegate-Webhook"] == "v1" for h in headers)
    # AND a tampered payload does not verify
    body = bodies[0]
    tampered = {**body, "payload": body["payload"].replace('"size":', '"size":1')}
    with pytest.raises(SignatureError):
        verify(webhook["secret"], tampered, now)


def test_an_endpoint_answering_500_is_retried_then_the_event_goes_to_the_dead_letter_queue(
    stack: Stack, tmp_path: Path
) -> None:
    """... and docs/runbook.md, "11. Partner webhook not delivered", as written."""
    partner = add_partner(stack, "failing partner")
    dead_letters = stack.env["WebhookDeadLetterQueueUrl"]
    with endpoint(500) as server:
        webhook = set_webhook(stack, partner["partner_id"], server.url, "--retries", "2")
        key = upload(stack, partner, tmp_path, "refused.csv")
        # WHEN the endpoint refused the first attempt and both retries
        wait_for(lambda: stack.queue_depth(dead_letters) >= 1, timeout=60)
        attempts = server.of(key)
        # THEN it was tried 1 + 2 times, and the dead-letter queue holds the event with why
        assert len(attempts) == 3
        message = dead_letter(stack)
        # ... and the alarm the runbook starts from reports it
        alarm = f"{stack.env['FunctionName']}-webhooks-dlq-not-empty"
        wait_for(lambda: alarm_state(stack, alarm) == "ALARM", timeout=90, interval=2)

        # WHEN the partner's endpoint works again and the webhooks are redriven (runbook)
        server.status = 200
        redriven = filegate(stack.state_dir, "partner", "webhook", "redrive", "--output", "json")
        assert redriven.returncode == 0, redriven.stderr + redriven.stdout
        wait_for(lambda: len(server.of(key)) == 4, timeout=30)
        delivered = server.of(key)[-1]

    # THEN it arrived, still verifying with the secret, and the queue is empty
    assert [r["redriven"] for r in json.loads(redriven.stdout)] == [True]
    assert verify(webhook["secret"], delivered, datetime.now(UTC))["key"] == key
    assert stack.queue_depth(dead_letters) == 0
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("filegate.webhooks", "Partner Webhook")
    assert json.loads(event["detail"]["payload"])["key"] == key
    why = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert why["RETRY_ATTEMPTS"] == "2"
    assert why["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert why["ERROR_CODE"] == "HTTP_500"
    assert why["RULE_ARN"].endswith(f"-wh-{partner['partner_id']}")


def dead_letter(stack: Stack) -> dict[str, Any]:
    """The one message of the webhook dead-letter queue, read as the runbook reads it (and
    made visible again at once, for the redrive)."""
    answer = stack.sqs.receive_message(
        QueueUrl=stack.env["WebhookDeadLetterQueueUrl"],
        MessageAttributeNames=["All"],
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
    )
    (message,) = answer["Messages"]
    return dict(message)
