"""Pause and resume against in-process moto: exactly the original configuration comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ops_pipeline import BUCKET, CODE_BUCKET, STACK, Pipeline, build_pipeline

from filegate.errors import IntakeError
from filegate.ops.intake import Intake, IntakeState
from filegate.storage import BucketOps

SAVED_KEY = f"filegate/intake/{STACK}.json"


@pytest.fixture
def pipeline(table: str) -> Pipeline:
    return build_pipeline(table)


@pytest.fixture
def intake(pipeline: Pipeline) -> Intake:
    return Intake(BucketOps(pipeline.s3), STACK, BUCKET, CODE_BUCKET)


def _filtered(pipeline: Pipeline) -> dict[str, Any]:
    """A configuration with ids, filters and two targets: restoring it is not trivial."""
    return {
        "QueueConfigurations": [
            {
                "Id": "csv-only",
                "QueueArn": pipeline.queue_arn,
                "Events": ["s3:ObjectCreated:Put", "s3:ObjectCreated:Copy"],
                "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
            },
            {"Id": "removals", "QueueArn": pipeline.queue_arn, "Events": ["s3:ObjectRemoved:*"]},
        ]
    }


def _saved(pipeline: Pipeline) -> dict[str, Any]:
    body = pipeline.s3.get_object(Bucket=CODE_BUCKET, Key=SAVED_KEY)["Body"].read()
    return dict(json.loads(body))


def _saved_exists(pipeline: Pipeline) -> bool:
    listed = pipeline.s3.list_objects_v2(Bucket=CODE_BUCKET, Prefix=SAVED_KEY)
    return bool(listed.get("KeyCount"))


def test_pause_stops_events_and_resume_restores_exactly(pipeline: Pipeline, intake: Intake) -> None:
    # GIVEN a configuration with ids and filters
    original = _filtered(pipeline)
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=original
    )
    pipeline.drain(pipeline.queue_url)
    # WHEN intake is paused
    paused = intake.pause()
    # THEN nothing is attached, the original is saved, and an upload sends no event
    assert paused.changed
    assert paused.state is IntakeState.PAUSED
    assert pipeline.live_notification() == {}
    assert _saved(pipeline)["notification_configuration"] == original
    pipeline.s3.put_object(Bucket=BUCKET, Key="while-paused.csv", Body=b"a")
    assert pipeline.depth(pipeline.queue_url) == 0
    # WHEN it is resumed
    resumed = intake.resume()
    # THEN the very same configuration is attached and the saved copy is gone
    assert resumed.changed
    assert resumed.state is IntakeState.ACTIVE
    assert pipeline.live_notification() == original
    assert not _saved_exists(pipeline)
    pipeline.drain(pipeline.queue_url)  # moto's s3:TestEvent
    pipeline.s3.put_object(Bucket=BUCKET, Key="after.csv", Body=b"b")
    assert any("after.csv" in body for body in pipeline.bodies(pipeline.queue_url))


def test_pausing_twice_keeps_the_original_saved(pipeline: Pipeline, intake: Intake) -> None:
    intake.pause()
    again = intake.pause()
    assert not again.changed
    assert again.state is IntakeState.PAUSED
    assert "already paused" in again.message
    assert _saved(pipeline)["notification_configuration"] == pipeline.notification()
    intake.resume()
    assert pipeline.live_notification() == pipeline.notification()


def test_resuming_an_active_bucket_changes_nothing(pipeline: Pipeline, intake: Intake) -> None:
    result = intake.resume()
    assert not result.changed
    assert result.state is IntakeState.ACTIVE
    assert pipeline.live_notification() == pipeline.notification()
    assert not _saved_exists(pipeline)


def test_a_bucket_without_notifications_is_not_paused(pipeline: Pipeline, intake: Intake) -> None:
    pipeline.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    assert intake.status().state is IntakeState.DETACHED
    with pytest.raises(IntakeError, match="nothing to pause"):
        intake.pause()
    with pytest.raises(IntakeError, match="no saved configuration"):
        intake.resume()
    assert not _saved_exists(pipeline)


def test_notifications_reattached_while_paused_are_not_overwritten(
    pipeline: Pipeline, intake: Intake
) -> None:
    # GIVEN a pause, then someone attaches a different configuration by hand
    intake.pause()
    other = _filtered(pipeline)
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=other
    )
    assert intake.status().state is IntakeState.CONFLICT
    # THEN neither command guesses: both refuse and change nothing
    with pytest.raises(IntakeError, match="differ from the configuration saved"):
        intake.resume()
    with pytest.raises(IntakeError, match="differ from the configuration saved"):
        intake.pause()
    assert pipeline.live_notification() == other
    assert _saved(pipeline)["notification_configuration"] == pipeline.notification()


def test_an_interrupted_pause_is_finished_by_the_next_pause(
    pipeline: Pipeline, intake: Intake
) -> None:
    # GIVEN a pause that saved the configuration and stopped before detaching it
    intake.pause()
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=pipeline.notification()
    )
    assert intake.status().state is IntakeState.CONFLICT
    # WHEN pause runs again THEN it detaches; resume restores the same configuration
    assert intake.pause().state is IntakeState.PAUSED
    assert pipeline.live_notification() == {}
    intake.resume()
    assert pipeline.live_notification() == pipeline.notification()


def test_an_interrupted_resume_is_finished_by_the_next_resume(
    pipeline: Pipeline, intake: Intake
) -> None:
    # GIVEN a resume that restored the configuration and stopped before deleting the copy
    intake.pause()
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=pipeline.notification()
    )
    # WHEN resume runs again THEN it only removes the saved copy
    assert intake.resume().state is IntakeState.ACTIVE
    assert not _saved_exists(pipeline)
    assert pipeline.live_notification() == pipeline.notification()


def test_a_corrupt_saved_copy_is_reported_not_restored(pipeline: Pipeline, intake: Intake) -> None:
    pipeline.s3.put_object(Bucket=CODE_BUCKET, Key=SAVED_KEY, Body=b"not json")
    with pytest.raises(IntakeError, match="not filegate's JSON"):
        intake.resume()
    assert pipeline.live_notification() == pipeline.notification()


def test_the_saved_copy_is_only_created_once(pipeline: Pipeline) -> None:
    s3 = BucketOps(pipeline.s3)
    assert s3.create(CODE_BUCKET, SAVED_KEY, b"{}", "application/json")
    assert not s3.create(CODE_BUCKET, SAVED_KEY, b"[]", "application/json")
    assert s3.read(CODE_BUCKET, SAVED_KEY) == b"{}"
