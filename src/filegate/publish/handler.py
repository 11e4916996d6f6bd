"""The verdict-events publisher's Lambda entry point: a batch of ledger stream records in,
events on the stack's EventBridge bus out.

Invoked by the event source mapping on the ledger table's stream. Each record becomes at
most one event (``mapping.verdict_event``); the batch's events go out together
(``bus.EventBus.publish``); any failure raises, so the mapping retries the batch (halving it,
``BisectBatchOnFunctionError``) and in the end sends its description to the publisher's
dead-letter queue. Each event published is then logged as one JSON line (message
``event published``, the event under ``event``): `filegate events tail` reads the bus's
events from these lines in the function's log group, on AWS as locally, without a rule or
queue of its own. For a partner with a webhook (its secret exists, ``secrets``), each of its
events also goes out as a signed ``Partner Webhook`` event (``webhook``, docs/webhooks.md), in
the same PutEvents batch.

The collaborators are built once per container, on the first invocation (boto3 is imported
there). X-Ray patches botocore when this module is imported, as the ingestion's handler does.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from filegate.publish.bus import EventBus
from filegate.publish.exceptions import RecordError
from filegate.publish.mapping import PUBLISHED_MESSAGE, VerdictEvent, verdict_event
from filegate.publish.secrets import WebhookSecrets
from filegate.publish.webhook import webhook_event
from filegate.settings import PublisherSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"filegate"})
tracer = Tracer(patch_modules=["botocore"])


@functools.cache
def build_bus() -> EventBus:
    """The bus, once per container (clear the cache to rebuild it)."""
    import boto3  # deferred: importing boto3 is most of a cold start

    settings = PublisherSettings.from_env()
    return EventBus(settings.event_bus_name, boto3.client("events"))


@functools.cache
def build_secrets() -> WebhookSecrets | None:
    """The partner webhooks' secrets, once per container; None on a stack without webhooks."""
    import boto3

    prefix = PublisherSettings.from_env().webhook_secret_prefix
    return WebhookSecrets(prefix, boto3.client("secretsmanager")) if prefix else None


def webhooks(events: list[VerdictEvent], now: datetime) -> list[VerdictEvent]:
    """A signed ``Partner Webhook`` event for each event of a partner that has a webhook."""
    secrets = build_secrets()
    if secrets is None:
        return []
    signed: list[VerdictEvent] = []
    for event in events:
        partner = event.detail.get("partner_id")
        secret = secrets.get(str(partner)) if partner else None
        if secret:
            signed.append(webhook_event(event, secret, now))
    return signed


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records")
    if not isinstance(records, list):
        raise RecordError("the event has no Records list: expected a DynamoDB stream batch")
    events = [found for record in records if (found := _mapped(record)) is not None]
    outgoing = events + webhooks(events, datetime.now(UTC))
    ids = build_bus().publish(outgoing) if outgoing else []
    for published, eventbridge_id in zip(events, ids[: len(events)], strict=True):
        logger.info(
            PUBLISHED_MESSAGE,
            extra={"event": published.document(eventbridge_id), "s3_key": published.detail["key"]},
        )
    return {"records": len(records), "published": len(events)}


def _mapped(record: Any) -> VerdictEvent | None:
    if not isinstance(record, dict):
        raise RecordError("a stream record is not an object")
    try:
        return verdict_event(record)
    except RecordError:
        logger.exception("stream record %s cannot be read", record.get("eventID"))
        raise
