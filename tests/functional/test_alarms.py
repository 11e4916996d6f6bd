"""Local alarms against in-process moto: evaluation, CloudWatch's message on SNS -> SQS, reads.

GIVEN the template's Errors and DLQ alarms on an encrypted alerts topic with the local outbox
queue subscribed, WHEN metrics arrive and the evaluator runs, THEN the alarm state in
DescribeAlarms and the message in the outbox are what CloudWatch would have produced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import REGION
from test_template_deploys import deploy, url_support  # noqa: F401 - url_support: a fixture

from filegate.aws import Target
from filegate.local import sqs_metrics
from filegate.local.alarms import AlarmEvaluator, subscribe_outbox
from filegate.ops import alarms as ops
from filegate.ops.alarms import AlarmError
from filegate.ops.verify import Verifier
from filegate.stackref import StackRef

FUNCTION = "filegate-ingest"
ERRORS_ALARM = f"{FUNCTION}-errors"
DLQ_ALARM = f"{FUNCTION}-dlq-not-empty"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@pytest.fixture
def topic(aws: None) -> str:
    key = client("kms").create_key()["KeyMetadata"]["KeyId"]
    arn = client("sns").create_topic(Name=f"{FUNCTION}-alerts", Attributes={"KmsMasterKeyId": key})[
        "TopicArn"
    ]
    client("sns").subscribe(TopicArn=arn, Protocol="email", Endpoint="ops@example.com")
    return str(arn)


@pytest.fixture
def outbox(topic: str) -> str:
    return subscribe_outbox(Target(region=REGION), topic)


@pytest.fixture
def stack(topic: str, outbox: str) -> StackRef:
    """The template's Errors and DLQ alarms, as the local provisioning creates them."""
    cloudwatch = client("cloudwatch")
    common = {"EvaluationPeriods": 1, "TreatMissingData": "notBreaching", "AlarmActions": [topic]}
    cloudwatch.put_metric_alarm(
        AlarmName=ERRORS_ALARM,
        AlarmDescription="The ingestion function raised errors; check its logs.",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": FUNCTION}],
        Statistic="Sum",
        Period=300,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName=DLQ_ALARM,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": f"{FUNCTION}-dlq"}],
        Statistic="Maximum",
        Period=60,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
        **common,
    )
    cloudwatch.put_metric_alarm(  # someone else's alarm: not the stack's
        AlarmName="unrelated",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": "another-function"}],
        TreatMissingData="notBreaching",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    outputs = {"AlertsTopicArn": topic, "FunctionName": FUNCTION}
    return StackRef(Target(region=REGION), "filegate", outputs)


def put_errors(value: float, at: datetime | None = None) -> None:
    client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}],
                "Value": value,
                "Timestamp": at or datetime.now(UTC),
            }
        ],
    )


def alarm_state(name: str) -> dict[str, Any]:
    return dict(client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def test_an_error_turns_the_alarm_to_alarm_and_cloudwatchs_message_arrives(
    stack: StackRef,
) -> None:
    evaluator = AlarmEvaluator(Target(region=REGION))
    evaluator.evaluate_all()  # no data: notBreaching keeps OK, nothing is sent
    assert ops.notifications(stack) == []
    # WHEN the function fails once
    put_errors(1.0)
    transitions = evaluator.evaluate_all()
    # THEN DescribeAlarms shows ALARM with CloudWatch's reason
    alarm = alarm_state(ERRORS_ALARM)
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 datapoint [1.0 (")
    assert alarm["StateReason"].endswith("was greater than or equal to the threshold (1.0).")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [1.0]
    assert [(t.alarm_name, t.new_state) for t in transitions] == [(ERRORS_ALARM, "ALARM")]
    # AND the outbox holds CloudWatch's alarm message, in SNS's envelope
    (sent,) = ops.notifications(stack)
    assert sent.subject == f'ALARM: "{ERRORS_ALARM}" in Europe (Frankfurt)'
    assert sent.topic_arn == stack.outputs["AlertsTopicArn"]
    message = sent.message
    assert message["AlarmName"] == ERRORS_ALARM
    assert (message["OldStateValue"], message["NewStateValue"]) == ("OK", "ALARM")
    assert message["NewStateReason"] == alarm["StateReason"]
    assert message["AlarmArn"].endswith(f":alarm:{ERRORS_ALARM}")
    assert message["StateChangeTime"].endswith("+0000")
    assert message["Trigger"] == {
        "MetricName": "Errors",
        "Namespace": "AWS/Lambda",
        "StatisticType": "Statistic",
        "Statistic": "SUM",
        "Unit": None,
        "Dimensions": [{"value": FUNCTION, "name": "FunctionName"}],
        "Period": 300,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    }


def test_a_second_pass_sends_nothing_new(stack: StackRef) -> None:
    evaluator = AlarmEvaluator(Target(region=REGION))
    put_errors(2.0)
    evaluator.evaluate_all()
    assert evaluator.evaluate_all() == []
    assert len(ops.notifications(stack)) == 1


def test_errors_older_than_the_period_do_not_count(stack: StackRef) -> None:
    put_errors(3.0, at=datetime.now(UTC) - timedelta(seconds=400))
    AlarmEvaluator(Target(region=REGION)).evaluate_all()
    assert alarm_state(ERRORS_ALARM)["StateValue"] == "OK"


def test_someone_elses_set_alarm_state_runs_the_actions(stack: StackRef) -> None:
    # As on AWS, `aws cloudwatch set-alarm-state` notifies the topic.
    evaluator = AlarmEvaluator(Target(region=REGION))
    evaluator.evaluate_all()
    client("cloudwatch").set_alarm_state(
        AlarmName=DLQ_ALARM, StateValue="ALARM", StateReason="testing the notification"
    )
    transitions = evaluator.evaluate_all()
    assert (DLQ_ALARM, "ALARM", "testing the notification") in [
        (t.alarm_name, t.new_state, t.reason) for t in transitions
    ]
    (sent,) = ops.notifications(stack)
    assert sent.message["NewStateReason"] == "testing the notification"
    # ...and then the evaluator, seeing no data (notBreaching), sets it back to OK.
    assert alarm_state(DLQ_ALARM)["StateValue"] == "OK"


def test_queue_metrics_from_the_emulators_queues_drive_the_dlq_alarm(stack: StackRef) -> None:
    sqs = client("sqs")
    dlq = sqs.create_queue(QueueName=f"{FUNCTION}-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody="a poison message")
    published = sqs_metrics.publish_once(lambda region: client("cloudwatch"))
    assert published >= 2  # the outbox and the DLQ
    AlarmEvaluator(Target(region=REGION)).evaluate_all()
    assert alarm_state(DLQ_ALARM)["StateValue"] == "ALARM"
    (sent,) = ops.notifications(stack)
    assert sent.message["NewStateReason"].startswith("Threshold Crossed: 1 datapoint [1.0 (")


def test_reading_notifications_consumes_nothing(stack: StackRef) -> None:
    put_errors(1.0)
    AlarmEvaluator(Target(region=REGION)).evaluate_all()
    first, second = ops.notifications(stack), ops.notifications(stack)
    assert [n.message_id for n in first] == [n.message_id for n in second]
    assert len(first) == 1


def test_alarm_states_show_only_the_stacks_alarms(stack: StackRef) -> None:
    put_errors(1.0)
    AlarmEvaluator(Target(region=REGION)).evaluate_all()
    states = {s.name: s for s in ops.alarm_states(stack)}
    assert set(states) == {ERRORS_ALARM, DLQ_ALARM}
    assert states[ERRORS_ALARM].state == "ALARM"
    assert states[ERRORS_ALARM].metric == f"AWS/Lambda Errors (FunctionName={FUNCTION})"
    assert states[ERRORS_ALARM].updated.endswith("+00:00")
    assert [s.name for s in ops.alarm_states(stack, "alarm")] == [ERRORS_ALARM]


def test_notifications_need_a_subscribed_queue(topic: str) -> None:
    stack = StackRef(Target(region=REGION), "filegate", {"AlertsTopicArn": topic})
    with pytest.raises(AlarmError, match="no SQS queue is subscribed"):
        ops.notifications(stack)


def test_the_drill_needs_an_errors_alarm_on_the_function(stack: StackRef) -> None:
    other = StackRef(stack.target, "filegate", {**stack.outputs, "FunctionName": "another"})
    with pytest.raises(AlarmError, match="no alarm on the Errors of function another"):
        ops.drill(other)


@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # moto skips some types
def test_the_dashboard_deploys_with_the_stacks_names(aws: None, url_support: None) -> None:  # noqa: F811
    outputs = deploy()
    body = json.loads(
        client("cloudwatch").get_dashboard(DashboardName=outputs["DashboardName"])["DashboardBody"]
    )
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == [
        "Ingest queue depth",
        "Age of oldest ingest event (s)",
        "Dead-letter queue depth",
        "Invocations",
        "Errors",
        "Duration (ms)",
        "Throttles",
    ]
    lines = [line for w in body["widgets"] for line in w["properties"]["metrics"]]
    queues = {line[3] for line in lines if line[0] == "AWS/SQS"}
    functions = {line[3] for line in lines if line[0] == "AWS/Lambda"}
    assert queues == {
        outputs["QueueUrl"].rsplit("/", 1)[-1],
        outputs["DeadLetterQueueUrl"].rsplit("/", 1)[-1],
    }
    assert functions == {outputs["FunctionName"], outputs["UploadApiFunctionName"]}


def test_verify_and_alarms_agree_on_the_stacks_alarms(stack: StackRef, topic: str) -> None:
    # GIVEN an alarm of the stack named after another of its functions, notifying its topic,
    # and an alarm named like the stack's that notifies nobody: both in ALARM
    cloudwatch = client("cloudwatch")
    common = {
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    cloudwatch.put_metric_alarm(
        AlarmName="filegate-upload-api-errors", AlarmActions=[topic], **common
    )
    cloudwatch.put_metric_alarm(AlarmName=f"{FUNCTION}-someone-elses", **common)
    for name in ("filegate-upload-api-errors", f"{FUNCTION}-someone-elses"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    # WHEN `filegate alarms` lists them and `filegate verify` checks them
    listed = [s.name for s in ops.alarm_states(stack, "ALARM")]
    check = Verifier(stack).alarms()
    # THEN both see the same alarms: the one notifying the topic, not the look-alike
    assert listed == ["filegate-upload-api-errors"]
    assert not check.passed
    assert check.detail == "in ALARM: filegate-upload-api-errors"
