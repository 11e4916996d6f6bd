"""Every Secrets Manager call: the partner webhooks' signing secrets.

One secret per partner with a webhook, named ``<prefix><partner_id>`` (the stack output
``WebhookSecretPrefix``, ``<LambdaName>/webhooks/``). `filegate partner webhook set` writes it
(``WebhookSecrets.put``) and shows it once; only the publisher's role may read it
(``secretsmanager:GetSecretValue`` on the prefix). Its existence is also what tells the
publisher that a partner has a webhook: ``WebhookSecrets.get`` answers None for a partner
without one. The publisher keeps what it read (a secret, or its absence) for ``ttl_seconds``,
so a warm container asks Secrets Manager at most once a minute per partner, and a webhook set,
rotated or removed takes effect within that time.
"""

from __future__ import annotations

import secrets as random_secrets
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import is_error
from filegate.publish.exceptions import WebhookError

TTL_SECONDS = 60.0
_MISSING = ("ResourceNotFoundException",)


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, hex (the HMAC key is its ASCII text)."""
    return random_secrets.token_hex(32)


class WebhookSecrets:
    """The webhook secrets under one prefix, through an injected ``secretsmanager`` client."""

    def __init__(
        self,
        prefix: str,
        client: Any,
        ttl_seconds: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}

    def name(self, partner_id: str) -> str:
        return f"{self.prefix}{partner_id}"

    def get(self, partner_id: str) -> str | None:
        """The partner's secret, or None when it has no webhook (cached ``ttl_seconds``)."""
        cached = self._cache.get(partner_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        value = self._read(partner_id)
        self._cache[partner_id] = (self._clock(), value)
        return value

    def _read(self, partner_id: str) -> str | None:
        answer = self._call("read", partner_id, self._client.get_secret_value)
        return None if answer is None else str(answer["SecretString"])

    def put(self, partner_id: str, value: str) -> None:
        """Create the partner's secret, or give it a new value."""
        name = self.name(partner_id)
        try:
            try:
                self._client.put_secret_value(SecretId=name, SecretString=value)
            except ClientError as exc:
                if not is_error(exc, *_MISSING):
                    raise
                self._client.create_secret(
                    Name=name,
                    SecretString=value,
                    Description=f"filegate: HMAC key of partner {partner_id}'s webhook",
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("write", partner_id, exc) from exc

    def exists(self, partner_id: str) -> bool:
        return self._call("describe", partner_id, self._client.describe_secret) is not None

    def delete(self, partner_id: str) -> bool:
        """Delete it at once (no recovery window: `set` makes a new one); False if absent."""
        if not self.exists(partner_id):
            return False  # asked first: moto's forced delete of a missing secret succeeds
        delete = self._client.delete_secret
        return self._call("delete", partner_id, delete, ForceDeleteWithoutRecovery=True) is not None

    def _call(
        self, verb: str, partner_id: str, operation: Callable[..., Any], **request: Any
    ) -> dict[str, Any] | None:
        """``operation``'s answer on the partner's secret, None when that secret does not exist."""
        try:
            answer: dict[str, Any] = operation(SecretId=self.name(partner_id), **request)
        except (ClientError, BotoCoreError) as exc:
            if is_error(exc, *_MISSING):
                return None
            raise self._error(verb, partner_id, exc) from exc
        return answer

    def _error(self, verb: str, partner_id: str, exc: Exception) -> WebhookError:
        return WebhookError(
            f"cannot {verb} the webhook secret {self.name(partner_id)} of partner {partner_id}:"
            f" {exc}; check that Secrets Manager is reachable and that you may"
            f" secretsmanager:*Secret* on it"
        )
