"""The twin's API-destination delivery (``local.api_destinations``) around moto's own app,
served on 127.0.0.1: what EventBridge does that moto 5.2.5 does not (it calls an API
destination only with MOTO_EVENTS_INVOKE_HTTP, without a body, and leaves TestEventPattern
unanswered). EventBridge User Guide, "API destinations" and "Event patterns"."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from builders import REGION

from filegate.local.api_destinations import ApiDestinationDelivery, matches
from filegate.local.moto_server import make_server, moto_application

BUS = "twin-bus"


def served(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, ApiDestinationDelivery(moto_application()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    served("events", url).create_event_bus(Name=BUS)
    yield url
    # The server keeps its state in this process's moto backends: leave them empty.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    server.shutdown()
    thread.join()


class Receiver:
    """An HTTP server answering every request with ``status``; what it received."""

    def __init__(self, status: int) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(probe: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def route(emulator: str, name: str, url: str, target: dict[str, Any]) -> str:
    """A rule on BUS for detail-type ``name`` to an API destination at ``url``; the DLQ's URL."""
    events, sqs = served("events", emulator), served("sqs", emulator)
    connection = events.create_connection(
        Name=name,
        AuthorizationType="API_KEY",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "X-Key", "ApiKeyValue": "k-1"}},
    )
    destination = events.create_api_destination(
        Name=name,
        ConnectionArn=connection["ConnectionArn"],
        InvocationEndpoint=url,
        HttpMethod="POST",
    )
    queue_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    pattern = {"source": ["twin"], "detail-type": [name]}
    events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))
    target = {
        "Id": "t",
        "Arn": destination["ApiDestinationArn"],
        "DeadLetterConfig": {"Arn": queue_arn["Attributes"]["QueueArn"]},
        **target,
    }
    events.put_targets(Rule=name, EventBusName=BUS, Targets=[target])
    return str(queue_url)


def put(emulator: str, name: str, detail: dict[str, Any]) -> None:
    entry = {"Source": "twin", "DetailType": name, "Detail": json.dumps(detail)}
    answer = served("events", emulator).put_events(Entries=[{**entry, "EventBusName": BUS}])
    assert answer["FailedEntryCount"] == 0


def test_test_event_pattern_is_answered_as_eventbridge_does(emulator: str) -> None:
    events = served("events", emulator)
    event = {"source": "filegate", "detail": {"partner_id": "acme", "size": 3}}
    patterns = [
        ({"source": ["filegate"], "detail": {"partner_id": ["acme", "x"]}}, True),
        ({"source": ["filegate"], "detail": {"partner_id": ["globex"]}}, False),
        ({"detail": {"partner_id": [{"prefix": "ac"}]}}, True),
        ({"detail": {"reason": [{"exists": False}]}}, True),
        ({"detail": {"partner_id": [{"anything-but": ["acme"]}]}}, False),
        ({"detail": {"size": [{"numeric": [">", 1]}]}}, False),  # not modelled: stricter
    ]
    for pattern, expected in patterns:
        answer = events.test_event_pattern(
            EventPattern=json.dumps(pattern), Event=json.dumps(event)
        )
        assert (answer["Result"], matches(pattern, event)) == (expected, expected), pattern


def test_an_event_is_posted_with_its_input_path_auth_header_and_http_parameters(
    emulator: str,
) -> None:
    receiver = Receiver(200)
    try:
        route(
            emulator,
            "posted",
            f"{receiver.url}/hooks/*",
            {
                "InputPath": "$.detail",
                "HttpParameters": {
                    "PathParameterValues": ["acme"],
                    "HeaderParameters": {"X-Static": "yes"},
                    "QueryStringParameters": {"v": "1"},
                },
            },
        )
        put(emulator, "posted", {"n": 1})
        (path, headers, body) = wait_for(lambda: receiver.requests)[0]
    finally:
        receiver.stop()

    assert path == "/hooks/acme?v=1"
    assert json.loads(body) == {"n": 1}
    assert (headers["X-Key"], headers["X-Static"]) == ("k-1", "yes")
    assert headers["Content-Type"].startswith("application/json")


def test_a_4xx_is_not_retried_and_the_event_goes_to_the_dead_letter_queue_at_once(
    emulator: str,
) -> None:
    receiver = Receiver(404)
    try:
        dlq = route(
            emulator,
            "refused",
            receiver.url,
            {
                "RetryPolicy": {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 60},
                "InputTransformer": {
                    "InputPathsMap": {"n": "$.detail.n", "who": "$.detail.who"},
                    "InputTemplate": '{"number": <n>, "who": "<who>"}',
                },
            },
        )
        put(emulator, "refused", {"n": 7, "who": "acme"})
        sqs = served("sqs", emulator)
        messages = wait_for(
            lambda: sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"]).get("Messages")
        )
        requests = list(receiver.requests)
    finally:
        receiver.stop()

    assert [json.loads(body) for _, _, body in requests] == [{"number": 7, "who": "acme"}]
    (message,) = messages
    why = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert (why["ERROR_CODE"], why["RETRY_ATTEMPTS"]) == ("HTTP_404", "0")
    assert "EXHAUSTED_RETRY_CONDITION" not in why
    assert json.loads(message["Body"])["detail"] == {"n": 7, "who": "acme"}
