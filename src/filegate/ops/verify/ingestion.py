"""The checks of the ingestion path, S3 -> SQS -> the function -> the ledger: the function is
deployed, the bucket notifies the queue, the queue policy lets the bucket send, an event source
mapping (or, locally, the stack's runner) feeds the queue to the function, the function's
errors over the last 15 minutes, and its dead-letter queue."""

from __future__ import annotations

from datetime import timedelta

from filegate.ops.verify.base import Checks
from filegate.ops.verify.results import (
    DLQ,
    ERRORS,
    FUNCTION,
    MAPPING,
    NOTIFICATION,
    QUEUE_POLICY,
    CheckResult,
)
from filegate.ops.wiring import bucket_arn, function_name, policy_lets_bucket_send
from filegate.outputs import BUCKET_NAME, DLQ_URL, FUNCTION_NAME, QUEUE_ARN, QUEUE_URL
from filegate.queues import MessageQueue
from filegate.storage import BucketOps

ERRORS_WINDOW = timedelta(minutes=15)


class IngestionChecks(Checks):
    """The ingestion function, what feeds it, its errors and its dead letters."""

    def function_deployed(self) -> CheckResult:
        name = self.ref.output(FUNCTION_NAME)
        config = self.client("lambda").get_function_configuration(FunctionName=name)
        state = config.get("State", "Active")
        update = config.get("LastUpdateStatus", "Successful")
        detail = (
            f"{name}: {state}, last update {update}, {config.get('Runtime')},"
            f" code {str(config.get('CodeSha256', ''))[:12]}"
        )
        return CheckResult(FUNCTION, state == "Active" and update == "Successful", detail)

    def bucket_notification(self) -> CheckResult:
        bucket, queue_arn = self.ref.output(BUCKET_NAME), self.ref.output(QUEUE_ARN)
        config = BucketOps(self.client("s3")).notification_configuration(bucket)
        events = sorted(
            event
            for queue in config.get("QueueConfigurations", [])
            if queue.get("QueueArn") == queue_arn
            for event in queue.get("Events", [])
        )
        created = any(event.startswith("s3:ObjectCreated:") for event in events)
        detail = f"{bucket} -> {queue_arn.rsplit(':', 1)[-1]}: {', '.join(events) or 'none'}"
        if not created:
            detail += " (no s3:ObjectCreated events: paused? `filegate resume` restores it)"
        return CheckResult(NOTIFICATION, created, detail)

    def queue_policy(self) -> CheckResult:
        queue_arn, bucket = self.ref.output(QUEUE_ARN), self.ref.output(BUCKET_NAME)
        policy = MessageQueue(self.ref.output(QUEUE_URL), self.client("sqs")).policy()
        source = bucket_arn(bucket, queue_arn)
        allowed = policy_lets_bucket_send(policy, source)
        if allowed:
            return CheckResult(QUEUE_POLICY, True, f"s3.amazonaws.com may send from {source}")
        detail = f"no statement lets s3.amazonaws.com send messages from {source}"
        return CheckResult(QUEUE_POLICY, False, detail)

    def event_source_mapping(self) -> CheckResult:
        function, queue_arn = self.ref.output(FUNCTION_NAME), self.ref.output(QUEUE_ARN)
        mappings = self.client("lambda").list_event_source_mappings(EventSourceArn=queue_arn)
        ours = [
            m
            for m in mappings.get("EventSourceMappings", [])
            if function_name(m.get("FunctionArn", "")) == function
        ]
        if not ours:
            return CheckResult(MAPPING, False, f"no mapping from the queue to {function}")
        mapping = ours[0]
        state = str(mapping.get("State"))
        target = str(mapping.get("FunctionArn", "")).split(":function:", 1)[-1]
        if state == "Enabled":
            return CheckResult(MAPPING, True, f"queue -> {target}: Enabled")
        if state == "Disabled" and self.ref.local is not None and self.ref.local.runs_mapping():
            return CheckResult(
                MAPPING,
                True,
                f"queue -> {target}: the local stack's mapping runner feeds the function"
                " (the emulator's own mapping is disabled on purpose)",
            )
        return CheckResult(MAPPING, False, f"queue -> {target}: {state}")

    def errors_metric(self) -> CheckResult:
        name = self.ref.output(FUNCTION_NAME)
        # The next whole second: the emulator drops fractions of a second from EndTime, which
        # would leave out a datapoint published earlier in the current second.
        end = (self._clock() + timedelta(seconds=1)).replace(microsecond=0)
        datapoints = self.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=end - ERRORS_WINDOW,
            EndTime=end,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        errors = sum(float(point.get("Sum", 0)) for point in datapoints)
        detail = f"{errors:g} errors in {len(datapoints)} datapoints (AWS/Lambda Errors, Sum)"
        return CheckResult(ERRORS, errors == 0, detail)

    def dead_letter_queue(self) -> CheckResult:
        dead_letters = MessageQueue(self.ref.output(DLQ_URL), self.client("sqs"))
        visible, hidden = dead_letters.counts()
        detail = f"{visible} messages ({hidden} in flight)"
        if visible or hidden:
            detail += ": inspect them with `filegate dlq list`"
        return CheckResult(DLQ, visible == 0 and hidden == 0, detail)
