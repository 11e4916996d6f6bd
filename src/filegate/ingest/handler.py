"""The ingestion Lambda entry point: S3 object events in, ledger writes out.

Two input shapes: an SQS batch (each message body an S3 notification), answered with a partial
batch response so one bad message never fails the others; and an S3 notification invoked
directly (``aws lambda invoke --payload fileb://test.json``), which raises on the first failure
and returns a count of outcomes. The collaborators are built once per container, on the first
invocation, so importing this module stays cheap (boto3 is imported by the builder).

Only what an invocation uses is imported: every module imported is init time on Lambda (loaded
from the zip's cpython-312 bytecode, or compiled at each cold start where the zip was built
without it: the code directory is read-only), so the partial batch response is built here, a
few lines, rather than by Powertools' batch utility, which imports its whole data_classes
package and asyncio (docs/benchmarks.md, "Cold start at its floor"). X-Ray patches botocore
when this module is imported (``Tracer(patch_modules=...)``), so every S3 and DynamoDB call of
an invocation is a subsegment of its trace.

The records of an SQS batch are recorded concurrently (up to RECORD_CONCURRENCY at once, on a
thread pool kept per container): each costs two round trips (HeadObject, the conditional
write), so a batch of ten takes about two round trips instead of twenty. Order does not
matter: the ledger's conditional writes already make the outcome independent of the order in
which events of one key are applied (at-least-once, unordered delivery). Per-record log keys
are thread-local, metric updates are serialised, and the X-Ray trace entity is handed to each
thread so their subsegments join the invocation's trace.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from filegate.errors import EventError
from filegate.events import ObjectEvent, is_test_event, parse_s3_event, parse_sqs_body
from filegate.ingest.records import Ingestor
from filegate.ledger import Ledger, Outcome
from filegate.settings import IngestSettings
from filegate.storage import ObjectStore

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from aws_lambda_powertools.utilities.typing import LambdaContext

DEFAULT_METRICS_NAMESPACE = "Filegate"
METRIC_BY_OUTCOME = {
    Outcome.WRITTEN: "Processed",
    Outcome.DUPLICATE: "Duplicate",
    Outcome.STALE: "Stale",
    Outcome.IGNORED: "Ignored",
}
FAILED_METRIC = "Failed"
# Records of one batch in flight at once: the mapping's batch size (10), so a whole batch.
RECORD_CONCURRENCY = 10

logger = Logger()
# The record logic logs through logging.getLogger(__name__): give it the same JSON output.
copy_config_to_registered_loggers(source_logger=logger, include={"filegate"})
metrics = Metrics()
if metrics.namespace is None:  # the template sets POWERTOOLS_METRICS_NAMESPACE
    metrics.namespace = DEFAULT_METRICS_NAMESPACE
tracer = Tracer(patch_modules=["botocore"])
_metrics_lock = threading.Lock()  # Powertools' metric set is not made for concurrent updates


@functools.cache
def record_pool() -> ThreadPoolExecutor:
    """The threads that record a batch's records, once per container."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=RECORD_CONCURRENCY, thread_name_prefix="record")


@functools.cache
def build_ingestor() -> Ingestor:
    """The collaborators, once per container (clear the cache to rebuild them)."""
    import boto3  # deferred: importing boto3 is most of a cold start

    settings = IngestSettings.from_env()
    # boto3's default session: one per container, and tests can observe its clients' calls.
    return Ingestor(
        ObjectStore(boto3.client("s3")),
        Ledger(
            settings.table_name, boto3.client("dynamodb"), partners_table=settings.partners_table
        ),
        settings.bucket,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ingestor = build_ingestor()
    source = _event_source(event)
    if source == "aws:sqs":
        return _sqs_batch(event, ingestor)
    if source == "aws:s3" or is_test_event(event):
        return _direct(event, ingestor)
    raise EventError(f"Records[0].eventSource={source!r}: expected an SQS batch or S3 event")


def _event_source(event: dict[str, Any]) -> str | None:
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return None
    source = records[0].get("eventSource") or records[0].get("EventSource")
    return str(source) if source else None


def _sqs_batch(event: dict[str, Any], ingestor: Ingestor) -> dict[str, Any]:
    """The batch's records on the record pool, answered with a partial batch response: the
    messages whose record raised, in the batch's order; a batch where every message failed is
    still a partial response, so SQS retries each message (AWS Lambda developer guide,
    "Handling errors for an SQS event source in Lambda": ``batchItemFailures``)."""
    pool, trace_entity = record_pool(), _trace_entity()
    records: list[dict[str, Any]] = event["Records"]
    running = [pool.submit(_in_thread, trace_entity, _sqs_record, ingestor, r) for r in records]
    failed = [r for r, job in zip(records, running, strict=True) if job.exception() is not None]
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failed]}


def _trace_entity() -> Any:
    """The invocation's X-Ray entity, for the record threads (None while tracing is off)."""
    return None if tracer.disabled else _xray().get_trace_entity()


def _xray() -> Any:
    # the X-Ray recorder (Powertools' default provider); typed by Powertools as its base class
    return tracer.provider


def _in_thread(trace_entity: Any, job: Callable[..., None], *arguments: Any) -> None:
    # X-Ray keeps its context per thread: hand the invocation's entity over, then clear it,
    # as the X-Ray SDK documents for thread pools.
    if trace_entity is not None:
        _xray().set_trace_entity(trace_entity)
    try:
        job(*arguments)
    finally:
        if trace_entity is not None:
            _xray().clear_trace_entities()


def _sqs_record(ingestor: Ingestor, record: dict[str, Any]) -> None:
    """One SQS message; raising marks just this message as a batch item failure."""
    logger.thread_safe_append_keys(message_id=record["messageId"])
    try:
        for object_event in _parsed(parse_sqs_body, record["body"]):
            _ingest(ingestor, object_event)
    finally:
        logger.thread_safe_remove_keys(["message_id"])


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
        _count(METRIC_BY_OUTCOME[Outcome.IGNORED])
        logger.info("no object events (an s3:TestEvent or an empty notification)")
    return events


def _ingest(ingestor: Ingestor, event: ObjectEvent) -> Outcome:
    logger.thread_safe_append_keys(s3_key=event.key)
    try:
        return _recorded(ingestor, event)
    finally:
        logger.thread_safe_remove_keys(["s3_key"])


@tracer.capture_method
def _recorded(ingestor: Ingestor, event: ObjectEvent) -> Outcome:
    try:
        outcome = ingestor.ingest(event)
    except Exception:
        _failed(f"{event.event_name} could not be recorded")
        raise
    _count(METRIC_BY_OUTCOME[outcome])
    logger.info(
        "object event %s",
        outcome.value,
        extra={"event_name": event.event_name, "sequencer": event.sequencer, "outcome": outcome},
    )
    return outcome


def _failed(message: str) -> None:
    _count(FAILED_METRIC)
    logger.exception(message)


def _count(name: str) -> None:
    with _metrics_lock:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
