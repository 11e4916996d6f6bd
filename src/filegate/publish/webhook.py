"""Partner webhooks' signature: what the publisher puts on the bus for a partner that has a
webhook, and how that partner verifies it (docs/webhooks.md is the contract).

EventBridge API destinations cannot compute anything over the body they send, so filegate signs
it: for a verdict event of a partner with a webhook, the publisher also puts one ``Partner
Webhook`` event whose detail is ``{"partner_id", "payload", "signature", "timestamp"}``.
``payload`` is the exact JSON text of the verdict event's detail, ``signature`` is
``v1=<hex HMAC-SHA256 of "<timestamp>.<payload>">`` under the partner's secret. The partner's
rule sends that detail (InputPath ``$.detail``) to its endpoint; the partner recomputes the HMAC
over the payload string it received, never over a re-serialisation of it.

Standard library only: the Lambda package ships it, and partners may copy ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from filegate.publish.exceptions import SignatureError
from filegate.publish.mapping import VerdictEvent

WEBHOOK_DETAIL_TYPE = "Partner Webhook"
# A source of their own: a consumer's rule on source `filegate` sees each verdict once, never
# the webhooks' signed copies (docs/events.md).
WEBHOOK_SOURCE = "filegate.webhooks"
SCHEME = "v1"
# A delivery older than this is refused by `verify` (a replayed request); EventBridge retries
# for up to a day, so a partner that wants them must allow as much (docs/webhooks.md).
DEFAULT_TOLERANCE_SECONDS = 24 * 3600


def sign(secret: str, timestamp: int, payload: str) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>.<payload>"`` under ``secret``."""
    message = f"{timestamp}.{payload}".encode()
    return f"{SCHEME}={hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}"


def webhook_event(event: VerdictEvent, secret: str, now: datetime) -> VerdictEvent:
    """The ``Partner Webhook`` event that carries ``event``'s detail, signed, to its partner."""
    payload = json.dumps(event.detail, separators=(",", ":"), sort_keys=True)
    timestamp = int(now.timestamp())
    detail = {
        "partner_id": event.detail["partner_id"],
        "payload": payload,
        "signature": sign(secret, timestamp, payload),
        "timestamp": timestamp,
    }
    return VerdictEvent(WEBHOOK_DETAIL_TYPE, event.time, detail, WEBHOOK_SOURCE)


def verify(
    secret: str,
    body: Mapping[str, Any],
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """The verdict event's detail a webhook body carries, once its signature verified."""
    payload, signature, timestamp = (
        body.get("payload"),
        body.get("signature"),
        body.get("timestamp"),
    )
    if not isinstance(payload, str) or not isinstance(signature, str):
        raise SignatureError("the body has no 'payload' or 'signature' string")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise SignatureError("the body's 'timestamp' is not an integer")
    if not hmac.compare_digest(sign(secret, timestamp, payload), signature):
        raise SignatureError("the signature does not match the payload and timestamp")
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise SignatureError(f"the timestamp is more than {tolerance_seconds} s from now")
    detail = json.loads(payload)
    if not isinstance(detail, dict):
        raise SignatureError("the payload is not a JSON object")
    return detail
