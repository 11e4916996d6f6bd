"""Every EventBridge call: PutEvents on the stack's bus (the publisher), and each partner
webhook's connection, API destination and rule (``WebhookRoutes``, `filegate partner webhook`).

PutEvents takes at most 10 entries per request and answers each entry on its own: a request
can succeed while some of its entries failed (``FailedEntryCount``, an ``ErrorCode`` per
failed entry; EventBridge API Reference, PutEvents: "check the FailedEntryCount ... and
resend the failed entries"). ``EventBus.publish`` resends just the failed entries, up to
``attempts`` times with a growing pause, and raises ``PublishError`` when any is still refused
(or the call itself fails): the invocation fails, and the event source mapping retries the
batch. Nothing is ever dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import error_code, is_error
from filegate.publish.exceptions import PublishError, WebhookError
from filegate.publish.mapping import VerdictEvent

logger = logging.getLogger(__name__)

MAX_ENTRIES = 10  # PutEvents' limit per request
ATTEMPTS = 4
FIRST_PAUSE_SECONDS = 0.1


class EventBus:
    """One EventBridge bus, through an injected ``events`` client (and sleep, for tests)."""

    def __init__(
        self,
        name: str,
        events_client: Any,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._events = events_client
        self._attempts = attempts
        self._sleep = sleep

    def publish(self, events: Sequence[VerdictEvent]) -> list[str]:
        """Put every event on the bus; EventBridge's id of each, in order."""
        ids: list[str] = []
        for start in range(0, len(events), MAX_ENTRIES):
            ids.extend(self._publish_chunk(events[start : start + MAX_ENTRIES]))
        return ids

    def _publish_chunk(self, events: Sequence[VerdictEvent]) -> list[str]:
        ids: dict[int, str] = {}
        pending = list(range(len(events)))
        errors: dict[int, str] = {}
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(FIRST_PAUSE_SECONDS * 2 ** (attempt - 1))
            answers = self._put([events[i] for i in pending])
            errors = {}
            for index, answer in zip(pending, answers, strict=True):
                if answer.get("EventId") and not answer.get("ErrorCode"):
                    ids[index] = str(answer["EventId"])
                else:
                    errors[index] = f"{answer.get('ErrorCode')}: {answer.get('ErrorMessage')}"
            pending = sorted(errors)
            if not pending:
                return [ids[i] for i in range(len(events))]
            logger.warning("EventBridge refused %d of %d entries", len(pending), len(answers))
        refused = "; ".join(f"{events[i].event_id} ({why})" for i, why in errors.items())
        raise PublishError(
            f"EventBridge bus {self.name} refused {len(errors)} event(s) after"
            f" {self._attempts} attempts: {refused}. The batch fails and is retried"
        )

    def _put(self, events: Sequence[VerdictEvent]) -> list[dict[str, Any]]:
        try:
            response = self._events.put_events(Entries=[e.entry(self.name) for e in events])
        except (ClientError, BotoCoreError) as exc:
            # A refused request (throttling, a service error) counts as every entry refused.
            code = error_code(exc) or type(exc).__name__
            return [{"ErrorCode": code, "ErrorMessage": str(exc)}] * len(events)
        entries: list[dict[str, Any]] = response.get("Entries", [])
        if len(entries) != len(events):
            raise PublishError(
                f"PutEvents on bus {self.name} answered {len(entries)} entries for"
                f" {len(events)} events"
            )
        return entries


# -- partner webhooks: a connection, an API destination and a rule per partner ---------------
# The connection's auth is required by EventBridge (CreateConnection: AuthorizationType and
# AuthParameters); filegate's proof is the body's HMAC, so the API-key header carries only
# this non-secret marker, the signature scheme's version.
WEBHOOK_HEADER = "X-Filegate-Webhook"
WEBHOOK_HEADER_VALUE = "v1"
TARGET_ID = "webhook"
_NAME_LIMIT = 64  # connection, API destination and rule names
_MISSING = ("ResourceNotFoundException",)


def webhook_name(stack_name: str, partner_id: str) -> str:
    """``<LambdaName>-wh-<partner>`` (the webhook role may invoke ``<LambdaName>-wh-*``), the
    partner id replaced by a digest of it when the whole would pass 64 characters."""
    name = f"{stack_name}-wh-{partner_id}"
    if len(name) <= _NAME_LIMIT:
        return name
    room = max(_NAME_LIMIT - len(stack_name) - 4, 8)
    digest = hashlib.sha256(partner_id.encode()).hexdigest()[:room]
    return f"{stack_name}-wh-{digest}"[:_NAME_LIMIT]


@dataclass(frozen=True)
class RetryPolicy:
    """The rule target's retries (EventBridge API Reference, RetryPolicy: 0-185 attempts, an
    event age of 60-86,400 seconds; both at their maximum by default)."""

    attempts: int = 185
    max_age_seconds: int = 86400


@dataclass(frozen=True)
class WebhookRoute:
    """What `partner webhook show` reports of one partner's route."""

    partner_id: str
    name: str
    url: str | None
    rule_state: str | None
    rule_arn: str | None
    destination_arn: str | None
    retry_attempts: int | None
    max_age_seconds: int | None
    dead_letter_arn: str | None


class WebhookRoutes:
    """The partners' webhook routes on one bus, through an injected ``events`` client."""

    def __init__(self, bus_name: str, stack_name: str, events_client: Any) -> None:
        self.bus_name = bus_name
        self.stack_name = stack_name
        self._events = events_client

    def put(
        self,
        partner_id: str,
        url: str,
        role_arn: str,
        dead_letter_arn: str,
        retry: RetryPolicy,
        detail_type: str,
        source: str,
    ) -> WebhookRoute:
        """Create or update the connection, the destination, the rule and its target."""
        name = webhook_name(self.stack_name, partner_id)
        try:
            connection_arn = self._connection(name, partner_id)
            destination_arn = self._destination(name, connection_arn, url, partner_id)
            pattern = {
                "source": [source],
                "detail-type": [detail_type],
                "detail": {"partner_id": [partner_id]},
            }
            self._events.put_rule(
                Name=name,
                EventBusName=self.bus_name,
                EventPattern=json.dumps(pattern),
                State="ENABLED",
                Description=f"filegate: partner {partner_id}'s signed webhook",
            )
            target = {
                "Id": TARGET_ID,
                "Arn": destination_arn,
                "RoleArn": role_arn,
                "InputPath": "$.detail",
                "RetryPolicy": {
                    "MaximumRetryAttempts": retry.attempts,
                    "MaximumEventAgeInSeconds": retry.max_age_seconds,
                },
                "DeadLetterConfig": {"Arn": dead_letter_arn},
            }
            answer = self._events.put_targets(
                Rule=name, EventBusName=self.bus_name, Targets=[target]
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("create", partner_id, name, exc) from exc
        if answer.get("FailedEntryCount"):
            raise WebhookError(
                f"EventBridge refused the target of rule {name}: {answer.get('FailedEntries')}"
            )
        return self.describe(partner_id)

    def _connection(self, name: str, partner_id: str) -> str:
        auth = {
            "ApiKeyAuthParameters": {
                "ApiKeyName": WEBHOOK_HEADER,
                "ApiKeyValue": WEBHOOK_HEADER_VALUE,
            }
        }
        described = self._get("describe_connection", Name=name)
        if described is None:
            answer = self._events.create_connection(
                Name=name,
                Description=f"filegate: partner {partner_id}'s webhook",
                AuthorizationType="API_KEY",
                AuthParameters=auth,
            )
        else:
            answer = self._events.update_connection(
                Name=name, AuthorizationType="API_KEY", AuthParameters=auth
            )
        return str(answer["ConnectionArn"])

    def _destination(self, name: str, connection_arn: str, url: str, partner_id: str) -> str:
        fields = {
            "Name": name,
            "ConnectionArn": connection_arn,
            "InvocationEndpoint": url,
            "HttpMethod": "POST",
            "Description": f"filegate: partner {partner_id}'s webhook endpoint",
        }
        if self._get("describe_api_destination", Name=name) is None:
            answer = self._events.create_api_destination(**fields)
        else:
            answer = self._events.update_api_destination(**fields)
        return str(answer["ApiDestinationArn"])

    def describe(self, partner_id: str) -> WebhookRoute:
        name = webhook_name(self.stack_name, partner_id)
        try:
            rule = self._get("describe_rule", Name=name, EventBusName=self.bus_name)
            destination = self._get("describe_api_destination", Name=name)
            targets = (
                self._events.list_targets_by_rule(Rule=name, EventBusName=self.bus_name)["Targets"]
                if rule
                else []
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("describe", partner_id, name, exc) from exc
        target: dict[str, Any] = next((t for t in targets if t.get("Id") == TARGET_ID), {})
        retry = target.get("RetryPolicy", {})
        return WebhookRoute(
            partner_id=partner_id,
            name=name,
            url=destination.get("InvocationEndpoint") if destination else None,
            rule_state=rule.get("State") if rule else None,
            rule_arn=rule.get("Arn") if rule else None,
            destination_arn=destination.get("ApiDestinationArn") if destination else None,
            retry_attempts=retry.get("MaximumRetryAttempts"),
            max_age_seconds=retry.get("MaximumEventAgeInSeconds"),
            dead_letter_arn=target.get("DeadLetterConfig", {}).get("Arn"),
        )

    def delete(self, partner_id: str) -> bool:
        """Remove the rule's target, the rule, the destination and the connection; False when
        there was none of them."""
        name = webhook_name(self.stack_name, partner_id)
        found = False
        try:
            if self._get("describe_rule", Name=name, EventBusName=self.bus_name) is not None:
                self._events.remove_targets(Rule=name, EventBusName=self.bus_name, Ids=[TARGET_ID])
                self._events.delete_rule(Name=name, EventBusName=self.bus_name)
                found = True
            if self._get("describe_api_destination", Name=name) is not None:
                self._events.delete_api_destination(Name=name)
                found = True
            if self._get("describe_connection", Name=name) is not None:
                self._events.delete_connection(Name=name)
                found = True
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete", partner_id, name, exc) from exc
        return found

    def _get(self, operation: str, **request: Any) -> dict[str, Any] | None:
        """A Describe* answer, or None when the resource does not exist."""
        try:
            answer: dict[str, Any] = getattr(self._events, operation)(**request)
        except ClientError as exc:
            if is_error(exc, *_MISSING):
                return None
            raise
        return answer

    def _error(self, verb: str, partner_id: str, name: str, exc: Exception) -> WebhookError:
        return WebhookError(
            f"cannot {verb} the webhook {name} of partner {partner_id} on bus {self.bus_name}:"
            f" {exc}; check that you may manage EventBridge rules, connections and API"
            " destinations there"
        )
