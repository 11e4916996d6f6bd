"""The publisher's own errors (the rest of the family is in ``filegate.errors``)."""

from __future__ import annotations

from filegate.errors import FilegateError


class PublishError(FilegateError):
    """EventBridge did not take every event of a batch, even after retries.

    It fails the invocation on purpose: the event source mapping retries the batch (halved
    each time, BisectBatchOnFunctionError) and, past its retry limit, sends the batch's
    description to the publisher's dead-letter queue, where the alarm shows it. Events of the
    batch that did go out are sent again on a retry: consumers deduplicate on ``event_id``.
    """


class RecordError(FilegateError):
    """A stream record is not a ledger item change this publisher understands; names the field."""


class SignatureError(FilegateError):
    """A webhook body does not verify (``webhook.verify``): names what is wrong with it."""


class WebhookError(FilegateError):
    """A partner webhook's secret, connection, destination or rule could not be read or
    changed; names the resource and what to do."""
