"""The stale-uploads metric and its alarm against in-process moto.

GIVEN the template deployed into moto (its alarm applied as the local provisioning applies
it), WHEN the scheduled function runs over a bucket with multipart uploads left open, THEN its
EMF line carries the count, the count turns the template's alarm to ALARM, and `filegate
alarms` / `filegate verify` (``stack_alarms``) see that alarm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import REGION
from test_template_deploys import PARAMETERS, deploy, url_support  # noqa: F401 - a fixture

from filegate.aws import Target
from filegate.local.alarms import AlarmEvaluator
from filegate.local.cloudwatch import emf_metrics
from filegate.local.provision import Provisioner
from filegate.ops import alarms as ops
from filegate.stackref import StackRef
from filegate.uploads import stale_metric

BUCKET = PARAMETERS["BucketName"]
ALARM = f"{PARAMETERS['LambdaName']}-stale-uploads"

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@pytest.fixture
def stack(aws: None, url_support: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackRef]:  # noqa: F811
    outputs = deploy()
    Provisioner(Target(region=REGION), "filegate").reapply({"StaleUploadsAlarm"})
    monkeypatch.setenv("UPLOAD_BUCKET", outputs["BucketName"])
    stale_metric.build.cache_clear()  # its S3 client must be made inside moto, for this bucket
    yield StackRef(Target(region=REGION), "filegate", outputs)
    stale_metric.build.cache_clear()


def run_publisher(capsys: pytest.CaptureFixture[str], now: datetime) -> tuple[Any, str]:
    answer = stale_metric.lambda_handler({"source": "aws.events"}, None, clock=lambda: now)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return answer, line


def initiated_of_open_uploads(count: int) -> datetime:
    s3 = client("s3")
    for number in range(count):
        s3.create_multipart_upload(Bucket=BUCKET, Key=f"acme/left-open-{number}.bin")
    uploads = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    return max(u["Initiated"] for u in uploads)  # moto reports one fixed time for every upload


def test_the_publisher_counts_uploads_open_longer_than_a_day(
    stack: StackRef, capsys: pytest.CaptureFixture[str]
) -> None:
    initiated = initiated_of_open_uploads(2)

    young, _ = run_publisher(capsys, initiated + timedelta(hours=1))
    old, line = run_publisher(capsys, initiated + timedelta(days=1, seconds=1))

    assert (young["StaleMultipartUploads"], young["OpenMultipartUploads"]) == (0, 2)
    assert (old["StaleMultipartUploads"], old["OpenMultipartUploads"]) == (2, 2)
    stale = {d["MetricName"]: (ns, d) for ns, d in emf_metrics(line)}["StaleMultipartUploads"]
    assert stale[0] == "filegate"
    assert stale[1]["Dimensions"] == [{"Name": "Bucket", "Value": BUCKET}]
    assert stale[1]["Value"] == 2.0


def test_the_templates_alarm_fires_on_the_count_and_the_stacks_alarms_know_it(
    stack: StackRef, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the template's alarm, OK while nothing is stale
    assert ALARM in {a["AlarmName"] for a in ops.stack_alarms(stack)}
    alarm = client("cloudwatch").describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [stack.outputs["AlertsTopicArn"]]

    # WHEN the scheduled function reports an upload left open for more than a day (its EMF
    # line turned into the metric, as CloudWatch Logs does; the local telemetry does the same)
    initiated_of_open_uploads(1)
    _, line = run_publisher(capsys, datetime.now(UTC))
    for namespace, datum in emf_metrics(line):
        client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[datum])
    AlarmEvaluator(Target(region=REGION)).evaluate_all()

    # THEN the alarm is in ALARM, as `filegate alarms` shows it
    states = {s.name: s for s in ops.alarm_states(stack)}
    assert states[ALARM].state == "ALARM"
    assert states[ALARM].metric == f"filegate StaleMultipartUploads (Bucket={BUCKET})"
    assert json.loads(line)["StaleMultipartUploads"] == 1
