"""The intake state from the bucket's live notification configuration and the saved copy."""

from __future__ import annotations

from filegate.ops.intake import IntakeState, SavedIntake, state_of

QUEUE = {"QueueConfigurations": [{"QueueArn": "arn:aws:sqs:eu-central-1:1:q", "Events": ["s3:*"]}]}
SAVED = SavedIntake(QUEUE, "2026-01-01T00:00:00.000Z", "ops@host")


def test_each_state() -> None:
    assert state_of(QUEUE, None) is IntakeState.ACTIVE
    assert state_of({}, SAVED) is IntakeState.PAUSED
    assert state_of({}, None) is IntakeState.DETACHED
    assert state_of(QUEUE, SAVED) is IntakeState.CONFLICT


def test_an_eventbridge_target_counts_as_attached() -> None:
    # S3 reports an enabled EventBridge target as an empty object
    assert state_of({"EventBridgeConfiguration": {}}, None) is IntakeState.ACTIVE
    assert state_of({"QueueConfigurations": []}, None) is IntakeState.DETACHED
