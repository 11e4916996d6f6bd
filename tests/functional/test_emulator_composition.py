"""The emulator is moto's WSGI app composed with filegate's middleware (emulator.application):
Lambda Invoke runs on the local stack's workers (invoke_forwarding) and DynamoDB goes to its own
process (dynamodb_process), with moto's own classes untouched. Served on a free port of
this process; the supervisor's invoke server is a small HTTP server of the test."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from filegate.aws import Target
from filegate.local.emulator import application
from filegate.local.moto_server import moto_application
from filegate.local.processes import free_port
from filegate.settings import EmulatorSettings

REGION = "eu-central-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


class InvokeServer:
    """Stands in for the supervisor's invoke server: records each request, answers a payload
    (and ``function_error`` when the payload asks for it), or 404 for function "gone"."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["content-length"])))
                received.append(request)
                failed = request["payload"] == {"fail": True}
                answer = {"payload": json.dumps({"echo": request["payload"]})}
                if failed:
                    answer["function_error"] = "Unhandled"
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def emulator(aws_env: None) -> Iterator[tuple[Target, InvokeServer]]:
    invoke = InvokeServer()
    dead = f"http://127.0.0.1:{free_port()}"  # a DynamoDB process that is not there
    app = application(
        moto_application(), settings=EmulatorSettings(invoke_url=invoke.url, dynamodb_url=dead)
    )
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield Target(region=REGION, endpoint_url=url), invoke
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's backends are process-wide
        server.shutdown()
        invoke.stop()


def _function(target: Target, name: str) -> None:
    role = target.client("iam").create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    target.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        Timeout=5,
    )


def test_invoke_runs_on_the_local_stack_and_answers_as_lambda(
    emulator: tuple[Target, InvokeServer],
) -> None:
    target, invoke = emulator
    _function(target, "fn")
    lambda_ = target.client("lambda")

    answer = lambda_.invoke(FunctionName="fn", Payload=b'{"a": 1}')

    assert answer["StatusCode"] == 200
    assert json.loads(answer["Payload"].read()) == {"echo": {"a": 1}}
    assert answer["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in answer
    assert invoke.requests == [
        {
            "function": "fn",
            "version": "$LATEST",
            "payload": {"a": 1},
            "invocation_type": "RequestResponse",
        }
    ]


def test_a_failed_invocation_carries_the_function_error(
    emulator: tuple[Target, InvokeServer],
) -> None:
    target, _ = emulator
    _function(target, "fn")
    answer = target.client("lambda").invoke(FunctionName="fn", Payload=b'{"fail": true}')
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"


def test_event_and_dry_run_answer_202_and_204(emulator: tuple[Target, InvokeServer]) -> None:
    target, invoke = emulator
    _function(target, "fn")
    lambda_ = target.client("lambda")
    assert lambda_.invoke(FunctionName="fn", InvocationType="Event")["StatusCode"] == 202
    assert lambda_.invoke(FunctionName="fn", InvocationType="DryRun")["StatusCode"] == 204
    assert [r["invocation_type"] for r in invoke.requests] == ["Event"]  # a dry run runs nothing


def test_an_unknown_function_is_moto_s_404_and_runs_nothing(
    emulator: tuple[Target, InvokeServer],
) -> None:
    target, invoke = emulator
    with pytest.raises(ClientError) as refused:
        target.client("lambda").invoke(FunctionName="nope", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert invoke.requests == []


def test_a_payload_that_is_not_json_is_lambda_s_400(emulator: tuple[Target, InvokeServer]) -> None:
    target, invoke = emulator
    _function(target, "fn")
    with pytest.raises(ClientError) as refused:
        target.client("lambda").invoke(FunctionName="fn", Payload=b"not json")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert invoke.requests == []


def test_dynamodb_goes_to_its_process_and_the_rest_to_moto(
    emulator: tuple[Target, InvokeServer],
) -> None:
    target, _ = emulator
    # the DynamoDB process named is not there: the answer says so, not moto's own DynamoDB
    with pytest.raises(ClientError) as failed:
        target.client("dynamodb").list_tables()
    assert "did not answer" in failed.value.response["Error"]["Message"]
    # every other service is moto's, as it was
    target.client("s3").create_bucket(
        Bucket="composed", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    assert [b["Name"] for b in target.client("s3").list_buckets()["Buckets"]] == ["composed"]


def test_get_account_settings_reports_the_limit_minus_what_functions_reserve(
    emulator: tuple[Target, InvokeServer],
) -> None:
    # AWS (Lambda API reference, GetAccountSettings): UnreservedConcurrentExecutions is the
    # account's limit less what its functions reserve; moto has no such operation (404).
    target, _ = emulator
    _function(target, "reserving")
    _function(target, "free")
    lam = target.client("lambda")
    lam.put_function_concurrency(FunctionName="reserving", ReservedConcurrentExecutions=20)

    settings = lam.get_account_settings()

    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 980
    assert settings["AccountUsage"]["FunctionCount"] == 2
    assert settings["AccountUsage"]["TotalCodeSize"] > 0
