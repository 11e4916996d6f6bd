"""AWS API calls per object event, counted: what the ingestion handler costs per event.

In-process moto (``mock_aws``) with the local mode's S3 event patches, a versioned bucket that
notifies an SQS queue, and the ledger table. Real S3 notifications are taken from the queue,
wrapped as Lambda's SQS event, and given to ``lambda_handler``. Every call the handler's clients
complete is counted through botocore's ``after-call`` event on boto3's default session (the
session the handler builds its clients from); set-up calls use another session and are not
counted. Targets: one HeadObject and one conditional write per created object, one write per
removed object, no successful write for a duplicate delivery.

    .venv/bin/python benchmarks/api_calls.py
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import save, table

REGION = "eu-central-1"
BUCKET = "filegate-bench-calls"
TABLE = "filegate-bench-ledger"
OBJECTS = 10
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "DDB_TABLE": TABLE,
    "UPLOAD_BUCKET": BUCKET,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "filegate",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


@dataclass
class Context:
    """The Lambda context attributes Powertools reads."""

    function_name: str = "filegate-ingest"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:filegate-ingest"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class CallLog:
    """Each (operation, HTTP status) the default session's clients complete."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def after_call(self, model: Any, http_response: Any, **_: Any) -> None:
        self.calls.append((model.name, http_response.status_code))

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """(all calls, successful calls) since the last take."""
        calls, self.calls = self.calls, []
        return Counter(n for n, _ in calls), Counter(n for n, s in calls if s < 300)


class Scenario:
    """A bucket notifying a queue, the ledger table, and the handler fed from the queue."""

    def __init__(self) -> None:
        import boto3

        setup = boto3.Session(region_name=REGION)
        self.s3, self.sqs = setup.client("s3"), setup.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName="bench-events")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self._bucket()
        setup.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "s3_key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.receive()  # the s3:TestEvent

    def _bucket(self) -> None:
        location = {"LocationConstraint": REGION}
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration=location)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": self.queue_arn, "Events": events}]
            },
        )

    def receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", []):
            messages += batch
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )
        return messages

    def invoke(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        from filegate.ingest import handler
        from filegate.local.esm import sqs_event

        with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines
            result: dict[str, Any] = handler.lambda_handler(
                sqs_event(messages, self.queue_arn, REGION), Context()
            )
        return result


def measure() -> dict[str, Any]:
    os.environ.update(ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from filegate.ingest import handler
    from filegate.local import patches

    patches.apply()
    log = CallLog()
    rows: list[dict[str, Any]] = []
    with mock_aws():
        boto3.setup_default_session(region_name=REGION)
        handler.build_ingestor.cache_clear()
        boto3.DEFAULT_SESSION.events.register("after-call.*.*", log.after_call)  # type: ignore[union-attr]
        scenario = Scenario()
        keys = [f"calls/{i:02d}.txt" for i in range(OBJECTS)]
        for key in keys:
            scenario.s3.put_object(Bucket=BUCKET, Key=key, Body=b"counted")
        created = scenario.receive()
        rows.append(_run(scenario, log, "created (new objects)", created))
        rows.append(_run(scenario, log, "created, delivered again (duplicate)", created))
        for key in keys:
            scenario.s3.delete_object(Bucket=BUCKET, Key=key)
        removed = scenario.receive()
        rows.append(_run(scenario, log, "removed", removed))
        rows.append(_run(scenario, log, "removed, delivered again (duplicate)", removed))
        rows.append(_run(scenario, log, "created, delivered after the removal (stale)", created))
    return {"objects_per_batch": OBJECTS, "scenarios": rows, "targets_met": _targets(rows)}


def _run(
    scenario: Scenario, log: CallLog, name: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    log.take()
    result = scenario.invoke(messages)
    calls, successful = log.take()
    count = len(messages)
    return {
        "scenario": name,
        "events": count,
        "failures": len(result.get("batchItemFailures", [])),
        "calls": dict(calls),
        "successful": dict(successful),
        "head_per_event": calls["HeadObject"] / count,
        "writes_per_event": calls["UpdateItem"] / count,
        "successful_writes_per_event": successful["UpdateItem"] / count,
        "other_calls": sum(n for op, n in calls.items() if op not in ("HeadObject", "UpdateItem")),
    }


TARGETS = {
    # scenario -> (HeadObject per event, write attempts per event, successful writes per event)
    "created (new objects)": (1, 1, 1),
    "created, delivered again (duplicate)": (1, 1, 0),
    "removed": (0, 1, 1),
    "removed, delivered again (duplicate)": (0, 1, 0),
    "created, delivered after the removal (stale)": (1, 1, 0),
}


def _targets(rows: list[dict[str, Any]]) -> dict[str, bool]:
    return {
        row["scenario"]: (
            row["head_per_event"],
            row["writes_per_event"],
            row["successful_writes_per_event"],
        )
        == TARGETS[row["scenario"]]
        and row["other_calls"] == 0
        and row["failures"] == 0
        for row in rows
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [
            row["scenario"],
            row["events"],
            f"{row['head_per_event']:g}",
            f"{row['writes_per_event']:g}",
            f"{row['successful_writes_per_event']:g}",
            row["other_calls"],
            "/".join(str(n) for n in TARGETS[row["scenario"]]),
            "met" if figures["targets_met"][row["scenario"]] else "MISSED",
        ]
        for row in figures["scenarios"]
    ]
    headers = ["scenario", "events", "HeadObject/ev", "UpdateItem/ev", "ok writes/ev",
               "other calls", "target head/write/ok", "result"]  # fmt: skip
    return table(headers, rows)


def main() -> None:
    figures = measure()
    print(f"AWS API calls per object event (batches of {OBJECTS}, in-process moto)")
    print(render(figures))
    save("api_calls", figures)


if __name__ == "__main__":
    main()
