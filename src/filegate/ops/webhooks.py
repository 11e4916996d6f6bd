"""A partner's webhook (`filegate partner webhook set|show|remove`): its signing secret and
its EventBridge route, made, shown and removed together.

``set`` checks the partner and the URL, writes a fresh secret (``publish.secrets``: the only
Secrets Manager calls) and creates or updates the connection, the API destination and the
partner's rule with its target, retries and dead-letter queue (``publish.bus.WebhookRoutes``:
the only EventBridge calls). The secret is returned once, to be shown once; nothing else can
read it back but the publisher. ``redrive`` puts the events of the webhook dead-letter queue
back on the bus once the partner's endpoint works again (docs/runbook.md, section 11): the
same signed detail, so the partner's rule delivers it again and its signature still verifies
(unless the secret was replaced since). docs/webhooks.md is the design.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from filegate.errors import ConfigError, PartnerError
from filegate.ops.events import REDRIVE_VISIBILITY_SECONDS
from filegate.outputs import (
    EVENT_BUS_NAME,
    FUNCTION_NAME,
    PARTNERS_TABLE_NAME,
    WEBHOOK_DLQ_URL,
    WEBHOOK_ROLE_ARN,
    WEBHOOK_SECRET_PREFIX,
)
from filegate.publish.bus import EventBus, RetryPolicy, WebhookRoute, WebhookRoutes
from filegate.publish.mapping import VerdictEvent
from filegate.publish.secrets import WebhookSecrets, new_secret
from filegate.publish.webhook import WEBHOOK_DETAIL_TYPE, WEBHOOK_SOURCE
from filegate.queues import Message, MessageQueue
from filegate.stackref import StackRef
from filegate.uploads.partners import PartnerRegistry

MAX_URL_LENGTH = 2048  # CreateApiDestination's InvocationEndpoint
LOCAL_HTTP_HOST = "127.0.0.1"
_URL_CHARACTERS = re.compile(r"[-()_.!~*';/?:@&=+$,%A-Za-z0-9]+")


def check_url(url: str, local: bool) -> str:
    """The endpoint URL if EventBridge would call it: https (or, for the local stack only,
    http://127.0.0.1), a host, no credentials, at most 2,048 characters."""
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or not _URL_CHARACTERS.fullmatch(url):
        raise ConfigError(
            f"URL {url!r} is not valid: at most {MAX_URL_LENGTH} characters, percent-encoded"
        )
    local_http = parts.scheme == "http" and parts.hostname == LOCAL_HTTP_HOST
    if parts.scheme != "https" and not (local and local_http):
        where = " (or http://127.0.0.1 on the local stack)" if local else ""
        raise ConfigError(
            f"URL {url!r} is not valid: API destinations call https:// endpoints only{where}"
        )
    if not parts.hostname or parts.username or parts.password:
        raise ConfigError(f"URL {url!r} is not valid: it needs a host and no user:password@")
    return url


@dataclass(frozen=True)
class WebhookSet:
    """What `set` did: the route, and the secret (shown once)."""

    route: WebhookRoute
    secret: str
    secret_name: str

    def document(self) -> dict[str, Any]:
        return {**asdict(self.route), "secret": self.secret, "secret_name": self.secret_name}


class PartnerWebhooks:
    """The partners' webhooks of one stack."""

    def __init__(self, ref: StackRef) -> None:
        self._ref = ref
        self._partners = PartnerRegistry(ref.output(PARTNERS_TABLE_NAME), ref.client("dynamodb"))
        self._secrets = WebhookSecrets(
            ref.output(WEBHOOK_SECRET_PREFIX), ref.client("secretsmanager")
        )
        self._routes = WebhookRoutes(
            ref.output(EVENT_BUS_NAME), ref.output(FUNCTION_NAME), ref.client("events")
        )

    def set(self, partner_id: str, url: str, retry: RetryPolicy) -> WebhookSet:
        check_url(url, self._ref.target.is_local)
        self._known(partner_id)
        dead_letter = MessageQueue(self._ref.output(WEBHOOK_DLQ_URL), self._ref.client("sqs"))
        dead_letter_arn = dead_letter.attributes(["QueueArn"])["QueueArn"]
        secret = new_secret()
        # The secret first: the publisher signs only for a partner whose secret exists, and a
        # rule without one would receive nothing.
        self._secrets.put(partner_id, secret)
        route = self._routes.put(
            partner_id,
            url,
            self._ref.output(WEBHOOK_ROLE_ARN),
            dead_letter_arn,
            retry,
            WEBHOOK_DETAIL_TYPE,
            WEBHOOK_SOURCE,
        )
        return WebhookSet(route, secret, self._secrets.name(partner_id))

    def show(self, partner_id: str) -> dict[str, Any]:
        self._known(partner_id)
        route = self._routes.describe(partner_id)
        return {**asdict(route), "secret_exists": self._secrets.exists(partner_id)}

    def remove(self, partner_id: str) -> bool:
        """Delete the route and the secret; False when the partner had no webhook."""
        self._known(partner_id)
        removed = self._routes.delete(partner_id)
        return self._secrets.delete(partner_id) or removed

    def redrive(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` dead-lettered webhooks put back on the bus, each deleted once the
        bus took it; one that is not a webhook event stays (visible again at the end)."""
        queue = MessageQueue(self._ref.output(WEBHOOK_DLQ_URL), self._ref.client("sqs"))
        bus = EventBus(self._ref.output(EVENT_BUS_NAME), self._ref.client("events"))

        def handle(message: Message) -> tuple[dict[str, Any], bool]:
            event = _dead_webhook(message)
            if event is None:
                return {"message_id": message.message_id, "redriven": False}, False
            bus.publish([event])
            partner = event.detail.get("partner_id")
            return {"message_id": message.message_id, "partner_id": partner, "redriven": True}, True

        return queue.work_off(limit, REDRIVE_VISIBILITY_SECONDS, handle)

    def _known(self, partner_id: str) -> None:
        if self._partners.get(partner_id) is None:
            raise PartnerError(
                f"partner {partner_id!r} does not exist in this stack: see `filegate partner list`"
            )


def _dead_webhook(message: Message) -> VerdictEvent | None:
    """The ``Partner Webhook`` event a dead letter holds (EventBridge sends the event itself)."""
    try:
        event = json.loads(message.body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("detail-type") != WEBHOOK_DETAIL_TYPE:
        return None
    detail = event.get("detail")
    return (
        VerdictEvent(WEBHOOK_DETAIL_TYPE, datetime.now(UTC), detail, WEBHOOK_SOURCE)
        if isinstance(detail, dict)
        else None
    )
