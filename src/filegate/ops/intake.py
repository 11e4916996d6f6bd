"""Pausing and resuming intake: the runbook's rollback step 1, "stop traffic", and its undo.

Pause detaches the upload bucket's event notifications (an empty notification configuration),
after saving the configuration that was there where every operator finds it: a JSON object
``filegate/intake/<stack>.json`` in the stack's artifact bucket (its ``CodeBucket`` parameter),
written only if absent (If-None-Match), so two operators pausing at once cannot overwrite the
original with an empty one. Resume puts back exactly the saved configuration, then deletes the
saved copy. Objects uploaded while paused send no event (S3 drops them): `filegate reconcile`
finds them and ``--repair`` re-drives them.

States, from the saved copy and the bucket's live configuration:
- active: nothing saved, notifications attached;
- paused: saved copy, nothing attached;
- detached: nothing saved, nothing attached (not filegate's doing: redeploy the stack);
- conflict: saved copy AND notifications attached. If the live configuration equals the saved
  one, a pause or resume was interrupted half-way and either command finishes its own job;
  otherwise someone re-attached notifications by hand or by a deploy, and filegate refuses
  to guess (IntakeError, exit 2).
Pausing a paused bucket or resuming an active one changes nothing and says so (exit 0):
the commands are safe to repeat from a runbook.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import IntakeError, StackError
from filegate.events import iso_utc
from filegate.outputs import BUCKET_NAME
from filegate.stackref import StackRef
from filegate.storage import BucketOps

STATE_PREFIX = "filegate/intake/"
CODE_BUCKET_PARAMETER = "CodeBucket"
_FORMAT = 1

Clock = Callable[[], datetime]


class IntakeState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DETACHED = "detached"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class SavedIntake:
    """The notification configuration a pause detached, and who detached it when."""

    configuration: dict[str, Any]
    paused_at: str
    paused_by: str

    def to_json(self, stack: str, bucket: str) -> bytes:
        document = {
            "format": _FORMAT,
            "stack": stack,
            "bucket": bucket,
            "paused_at": self.paused_at,
            "paused_by": self.paused_by,
            "notification_configuration": self.configuration,
        }
        return json.dumps(document, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class IntakeStatus:
    """What the bucket's notifications are now, and what a pause saved (if anything)."""

    state: IntakeState
    bucket: str
    saved_at: str  # s3://artifact-bucket/filegate/intake/<stack>.json
    live: dict[str, Any]
    saved: SavedIntake | None
    changed: bool = False  # set by pause/resume when they changed something
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "bucket": self.bucket,
            "saved_copy": self.saved_at,
            "paused_at": self.saved.paused_at if self.saved else None,
            "paused_by": self.saved.paused_by if self.saved else None,
            "live_configuration": self.live,
            "saved_configuration": self.saved.configuration if self.saved else None,
            "changed": self.changed,
            "message": self.message,
        }


def state_of(live: dict[str, Any], saved: SavedIntake | None) -> IntakeState:
    """The intake state from the live configuration and the saved copy (see the docstring)."""
    # EventBridgeConfiguration is {} when enabled: its presence, not its value, attaches it.
    attached = any(value or name == "EventBridgeConfiguration" for name, value in live.items())
    if saved is None:
        return IntakeState.ACTIVE if attached else IntakeState.DETACHED
    return IntakeState.CONFLICT if attached else IntakeState.PAUSED


class Intake:
    """Pause and resume of one bucket's notifications, the saved copy at ``state_bucket/key``."""

    def __init__(
        self,
        s3: BucketOps,
        stack: str,
        bucket: str,
        state_bucket: str,
        clock: Clock | None = None,
    ) -> None:
        self._s3 = s3
        self.stack = stack
        self.bucket = bucket
        self.state_bucket = state_bucket
        self.state_key = f"{STATE_PREFIX}{stack}.json"
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def location(self) -> str:
        return f"s3://{self.state_bucket}/{self.state_key}"

    def status(self) -> IntakeStatus:
        live = self._s3.notification_configuration(self.bucket)
        saved = self._saved()
        return IntakeStatus(state_of(live, saved), self.bucket, self.location, live, saved)

    def pause(self) -> IntakeStatus:
        """Save the live configuration, then detach it."""
        now = self.status()
        if now.state is IntakeState.PAUSED:
            assert now.saved is not None  # PAUSED has a saved copy
            return replace(now, message=f"already paused since {now.saved.paused_at}")
        if now.state is IntakeState.DETACHED:
            raise IntakeError(
                f"bucket {self.bucket} sends no events and filegate saved no configuration at"
                f" {self.location}: nothing to pause; redeploy the stack to re-attach them"
            )
        if now.state is IntakeState.CONFLICT:
            self._require_interrupted(now, "pause")
        else:
            self._save(now.live)
        self._s3.put_notification_configuration(self.bucket, {})
        return self._changed("paused: the bucket sends no events until `filegate resume`")

    def resume(self) -> IntakeStatus:
        """Put back exactly the saved configuration, then delete the saved copy."""
        now = self.status()
        if now.state is IntakeState.ACTIVE:
            return replace(now, message="not paused: the bucket's events are flowing")
        if now.state is IntakeState.DETACHED:
            raise IntakeError(
                f"bucket {self.bucket} sends no events, but there is no saved configuration at"
                f" {self.location} to restore: redeploy the stack to re-attach its notifications"
            )
        if now.state is IntakeState.CONFLICT:
            self._require_interrupted(now, "resume")
        else:
            assert now.saved is not None  # PAUSED has a saved copy
            self._s3.put_notification_configuration(self.bucket, now.saved.configuration)
        self._s3.delete(self.state_bucket, self.state_key)
        return self._changed("resumed: the saved notification configuration is attached again")

    def _save(self, live: dict[str, Any]) -> None:
        saved = SavedIntake(live, iso_utc(self._clock()), _operator())
        body = saved.to_json(self.stack, self.bucket)
        if not self._s3.create(self.state_bucket, self.state_key, body, "application/json"):
            raise IntakeError(
                f"another pause saved {self.location} at the same moment: run `filegate intake`"
                " to see the state, then pause again if needed"
            )

    def _saved(self) -> SavedIntake | None:
        body = self._s3.read(self.state_bucket, self.state_key)
        if body is None:
            return None
        try:
            document = json.loads(body)
            return SavedIntake(
                dict(document["notification_configuration"]),
                str(document["paused_at"]),
                str(document["paused_by"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntakeError(
                f"the saved intake state {self.location} is not filegate's JSON ({exc}):"
                " restore the bucket's notifications by hand, then delete that object"
            ) from exc

    def _require_interrupted(self, now: IntakeStatus, command: str) -> None:
        """A conflict is resolvable only when it is an interrupted pause or resume."""
        assert now.saved is not None
        if now.live != now.saved.configuration:
            raise IntakeError(
                f"cannot {command}: bucket {self.bucket} has notifications attached that differ"
                f" from the configuration saved at {self.location} by the pause of"
                f" {now.saved.paused_at}: someone re-attached them (a deploy?). Compare the two"
                " (`filegate intake --output json`), then delete the saved copy if the live one"
                " is right"
            )

    def _changed(self, message: str) -> IntakeStatus:
        return replace(self.status(), changed=True, message=message)


def for_stack(ref: StackRef, clock: Clock | None = None) -> Intake:
    """The stack's upload bucket (BucketName output), its state in the CodeBucket parameter."""
    return Intake(
        BucketOps(ref.client("s3")),
        ref.stack_name,
        ref.output(BUCKET_NAME),
        _code_bucket(ref),
        clock,
    )


def _code_bucket(ref: StackRef) -> str:
    try:
        stack = ref.client("cloudformation").describe_stacks(StackName=ref.stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(
            f"cannot describe stack {ref.stack_name} to find its artifact bucket: {exc};"
            " check --stack, --region and your credentials"
        ) from exc
    for parameter in stack.get("Parameters", []):
        if parameter["ParameterKey"] == CODE_BUCKET_PARAMETER:
            return str(parameter["ParameterValue"])
    raise StackError(
        f"stack {ref.stack_name} has no {CODE_BUCKET_PARAMETER} parameter, where filegate keeps"
        " the saved notification configuration: deploy the current template"
    )


def _operator() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (OSError, KeyError):
        return f"unknown@{socket.gethostname()}"
