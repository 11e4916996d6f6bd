"""The ingestion Lambda entry point: S3 object events in, ledger writes out.

Two input shapes: an SQS batch (each message body an S3 notification), answered with a partial
batch response so one bad message never fails the others; and an S3 notification invoked
directly (``aws lambda invoke --payload fileb://test.json``), which raises on the first failure
and returns a count of outcomes. The collaborators are built once per container, on the first
invocation, so importing this module stays cheap (boto3 is imported by the builder).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from filegate.errors import EventError
from filegate.events import ObjectEvent, is_test_event, parse_s3_event, parse_sqs_body
from filegate.ingest.records import Ingestor
from filegate.ledger import Ledger, Outcome
from filegate.settings import IngestSettings
from filegate.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

DEFAULT_METRICS_NAMESPACE = "Filegate"
METRIC_BY_OUTCOME = {
    Outcome.WRITTEN: "Processed",
    Outcome.DUPLICATE: "Duplicate",
    Outcome.STALE: "Stale",
    Outcome.IGNORED: "Ignored",
}
FAILED_METRIC = "Failed"

logger = Logger()
# The record logic logs through logging.getLogger(__name__): give it the same JSON output.
copy_config_to_registered_loggers(source_logger=logger, include={"filegate"})
metrics = Metrics()
if metrics.namespace is None:  # the template sets POWERTOOLS_METRICS_NAMESPACE
    metrics.namespace = DEFAULT_METRICS_NAMESPACE
tracer = Tracer(patch_modules=["botocore"])
# A batch where every message failed is still a partial response: SQS retries each message.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@functools.cache
def build_ingestor() -> Ingestor:
    """The collaborators, once per container (clear the cache to rebuild them)."""
    import boto3  # deferred: importing boto3 is most of a cold start

    settings = IngestSettings.from_env()
    # boto3's default session: one per container, and tests can observe its clients' calls.
    return Ingestor(
        ObjectStore(boto3.client("s3")),
        Ledger(settings.table_name, boto3.client("dynamodb")),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ingestor = build_ingestor()
    source = _event_source(event)
    if source == "aws:sqs":
        return _sqs_batch(event, context, ingestor)
    if source == "aws:s3" or is_test_event(event):
        return _direct(event, ingestor)
    raise EventError(f"Records[0].eventSource={source!r}: expected an SQS batch or S3 event")


def _event_source(event: dict[str, Any]) -> str | None:
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return None
    source = records[0].get("eventSource") or records[0].get("EventSource")
    return str(source) if source else None


def _sqs_batch(event: dict[str, Any], context: LambdaContext, ingestor: Ingestor) -> dict[str, Any]:
    response: PartialItemFailureResponse = process_partial_response(
        event=event,
        record_handler=functools.partial(_sqs_record, ingestor),
        processor=processor,
        context=context,
    )
    return dict(response)


def _sqs_record(ingestor: Ingestor, record: SQSRecord) -> None:
    """One SQS message; raising marks just this message as a batch item failure."""
    logger.append_keys(message_id=record.message_id)
    try:
        for object_event in _parsed(parse_sqs_body, record.body):
            _ingest(ingestor, object_event)
    finally:
        logger.remove_keys(["message_id"])


def _direct(event: dict[str, Any], ingestor: Ingestor) -> dict[str, Any]:
    outcomes = Counter(_ingest(ingestor, e) for e in _parsed(parse_s3_event, event))
    return {metric.lower(): outcomes[outcome] for outcome, metric in METRIC_BY_OUTCOME.items()}


def _parsed(parse: Callable[[Any], list[ObjectEvent]], payload: Any) -> list[ObjectEvent]:
    try:
        events = parse(payload)
    except EventError:
        _failed("the event cannot be parsed")
        raise
    if not events:
        # Counted as ignored: it is acknowledged, and the invocation still reports a metric.
        metrics.add_metric(name=METRIC_BY_OUTCOME[Outcome.IGNORED], unit=MetricUnit.Count, value=1)
        logger.info("no object events (an s3:TestEvent or an empty notification)")
    return events


def _ingest(ingestor: Ingestor, event: ObjectEvent) -> Outcome:
    logger.append_keys(s3_key=event.key)
    try:
        return _recorded(ingestor, event)
    finally:
        logger.remove_keys(["s3_key"])


@tracer.capture_method
def _recorded(ingestor: Ingestor, event: ObjectEvent) -> Outcome:
    try:
        outcome = ingestor.ingest(event)
    except Exception:
        _failed(f"{event.event_name} could not be recorded")
        raise
    metrics.add_metric(name=METRIC_BY_OUTCOME[outcome], unit=MetricUnit.Count, value=1)
    logger.info(
        "object event %s",
        outcome.value,
        extra={"event_name": event.event_name, "sequencer": event.sequencer, "outcome": outcome},
    )
    return outcome


def _failed(message: str) -> None:
    metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
    logger.exception(message)
