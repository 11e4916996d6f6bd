"""The runbook's alarm drill on the local stack, by hand (raw AWS CLI) and with `filegate alarms`.

"Fake a failure to check the SNS subscription": a direct invocation the function cannot parse
fails, the Errors alarm turns ALARM, and CloudWatch's alarm message reaches the alerts topic,
readable in the local outbox queue. The stack is this module's own: the drill leaves alarms
in ALARM, which other modules' tests must not inherit.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BIN, Stack, cli_env, filegate, own_stack, wait_for

ALARM_WAIT_SECONDS = 30  # the local evaluator runs every 5 s


@pytest.fixture(scope="module")
def alarm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-alarms")) as started:
        yield started


def aws(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The AWS CLI against the local stack, as the runbook shows it."""
    env = cli_env(
        stack.state_dir,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=stack.env["region"],
    )
    command = [str(BIN / "aws"), "--endpoint-url", stack.env["endpoint_url"], *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def fg_json(stack: Stack, *args: str) -> Any:
    result = filegate(stack.state_dir, *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def notifications_to(stack: Stack, alarm: str, state: str) -> list[dict[str, Any]]:
    sent = fg_json(stack, "alarms", "notifications")
    return [n for n in sent if n["alarm_name"] == alarm and n["new_state"] == state]


def test_raw_lambda_invoke_fails_and_the_errors_alarm_notifies(
    alarm_stack: Stack, tmp_path: Path
) -> None:
    stack, function = alarm_stack, alarm_stack.env["FunctionName"]
    errors_alarm = f"{function}-errors"
    # GIVEN the runbook's invocation: a payload file the function cannot parse
    payload, out = tmp_path / "test.json", tmp_path / "out.json"
    payload.write_text('{"drill": true}')
    # WHEN it is invoked through the Lambda API
    invoked = aws(
        stack,
        *("lambda", "invoke", "--function-name", function),
        *("--payload", f"fileb://{payload}", str(out)),
    )
    # THEN the deployed code ran and failed, as Lambda reports it
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["FunctionError"] == "Unhandled"
    error = json.loads(out.read_text())
    assert error["errorType"] == "EventError"
    assert "expected an SQS batch or S3 event" in error["errorMessage"]
    # AND the Errors alarm turns ALARM (describe-alarms, as the runbook reads it)

    def alarm_state() -> str:
        described = aws(stack, "cloudwatch", "describe-alarms", "--alarm-names", errors_alarm)
        alarms = json.loads(described.stdout)["MetricAlarms"]
        return str(alarms[0]["StateValue"]) if alarms else ""

    wait_for(lambda: alarm_state() == "ALARM", timeout=ALARM_WAIT_SECONDS, interval=1)
    # AND CloudWatch's message reached the topic, readable in the outbox
    (sent,) = wait_for(
        lambda: notifications_to(stack, errors_alarm, "ALARM"), ALARM_WAIT_SECONDS, 1
    )
    assert sent["subject"] == f'ALARM: "{errors_alarm}" in Europe (Frankfurt)'
    assert sent["topic_arn"] == stack.env["AlertsTopicArn"]
    assert sent["reason"].startswith("Threshold Crossed: 1 datapoint [1.0 (")
    assert sent["message"]["Trigger"]["MetricName"] == "Errors"
    assert sent["message"]["Trigger"]["Dimensions"] == [{"value": function, "name": "FunctionName"}]
    # AND the function's log holds the failure
    assert any("EventError" in line for line in stack.log_messages())


def test_filegate_alarms_shows_the_states(alarm_stack: Stack) -> None:
    function = alarm_stack.env["FunctionName"]
    alarms = {a["name"]: a for a in fg_json(alarm_stack, "alarms")}
    assert set(alarms) == {
        f"{function}-errors",
        f"{function}-upload-api-errors",
        f"{function}-throttles",
        f"{function}-dlq-not-empty",
        f"{function}-queue-age",
        f"{function}-stale-uploads",
        f"{function}-events-errors",
        f"{function}-events-dlq-not-empty",
        f"{function}-webhooks-dlq-not-empty",
    }
    assert alarms[f"{function}-stale-uploads"]["state"] == "OK"  # nothing left open: no data
    assert alarms[f"{function}-errors"]["metric"] == f"AWS/Lambda Errors (FunctionName={function})"
    table = filegate(alarm_stack.state_dir, "alarms", "list", "--state", "ALARM")
    assert table.returncode == 0, table.stderr
    assert f"{function}-errors" in table.stdout
    assert f"{function}-queue-age" not in table.stdout


def test_outbox_is_readable_with_the_raw_aws_cli(alarm_stack: Stack) -> None:
    topic = alarm_stack.env["AlertsTopicArn"]
    listed = aws(alarm_stack, "sns", "list-subscriptions-by-topic", "--topic-arn", topic)
    (outbox,) = [
        s["Endpoint"] for s in json.loads(listed.stdout)["Subscriptions"] if s["Protocol"] == "sqs"
    ]
    assert outbox.endswith(":filegate-ingest-alerts-outbox")
    url = f"{alarm_stack.env['endpoint_url']}/{outbox.split(':')[4]}/{outbox.split(':')[5]}"
    received = aws(
        alarm_stack,
        *("sqs", "receive-message", "--queue-url", url),
        *("--max-number-of-messages", "10", "--visibility-timeout", "0"),
    )
    bodies = [json.loads(m["Body"]) for m in json.loads(received.stdout)["Messages"]]
    assert any(json.loads(b["Message"])["NewStateValue"] == "ALARM" for b in bodies)


def test_filegate_alarms_drill_passes(alarm_stack: Stack) -> None:
    errors_alarm = f"{alarm_stack.env['FunctionName']}-errors"
    cloudwatch = alarm_stack.target.client("cloudwatch")
    before = cloudwatch.describe_alarms(AlarmNames=[errors_alarm])["MetricAlarms"][0]["StateValue"]
    drilled = filegate(alarm_stack.state_dir, "alarms", "drill", "--output", "json")
    assert drilled.returncode == 0, drilled.stderr
    result = json.loads(drilled.stdout)
    assert result["passed"] is True
    assert result["alarm_state"] == "ALARM"
    assert result["function_error"].startswith("EventError")
    assert result["notification"]["new_state"] == "ALARM"
    # An alarm already in ALARM (after the first test, when run in order) is set to OK first,
    # so that the drill sees a new transition.
    assert ("setting it to OK first" in drilled.stderr) == (before == "ALARM")


def test_a_poison_message_in_the_dlq_fires_the_dlq_alarm(alarm_stack: Stack) -> None:
    dlq_alarm = f"{alarm_stack.env['FunctionName']}-dlq-not-empty"
    alarm_stack.sqs.send_message(QueueUrl=alarm_stack.env["QueueUrl"], MessageBody="not JSON")
    # 5 receives 2 s apart reach the DLQ; queue metrics every 10 s; evaluation every 5 s.
    (sent,) = wait_for(lambda: notifications_to(alarm_stack, dlq_alarm, "ALARM"), 90, 2)
    assert sent["reason"].endswith("was greater than the threshold (0.0).")


def test_invoking_an_unknown_function_is_not_found(alarm_stack: Stack) -> None:
    invoked = aws(alarm_stack, "lambda", "invoke", "--function-name", "nope", os.devnull)
    assert invoked.returncode != 0
    assert "ResourceNotFoundException" in invoked.stderr


def test_the_dashboard_exists(alarm_stack: Stack) -> None:
    name = alarm_stack.env["DashboardName"]
    got = aws(alarm_stack, "cloudwatch", "get-dashboard", "--dashboard-name", name)
    assert got.returncode == 0, got.stderr
    body = json.loads(json.loads(got.stdout)["DashboardBody"])
    assert len(body["widgets"]) == 7
