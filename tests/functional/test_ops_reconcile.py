"""Reconcile against in-process moto: classification, and repair through the real handler."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from ops_pipeline import BUCKET, CODE_BUCKET, STACK, Pipeline, build_pipeline

from filegate.errors import IntakeError
from filegate.ledger import Declaration, Ledger
from filegate.ops.intake import Intake
from filegate.ops.reconcile import Reconciler, Verdict, require_flowing
from filegate.storage import BucketOps


@pytest.fixture
def pipeline(table: str) -> Pipeline:
    return build_pipeline(table)


@pytest.fixture
def reconciler(pipeline: Pipeline, ledger: Ledger) -> Reconciler:
    # The repair's wait plays the event source mapping: each poll runs the handler first.
    return Reconciler(BucketOps(pipeline.s3), ledger, BUCKET, sleep=pipeline.pump)


def _put(pipeline: Pipeline, key: str, body: bytes, content_type: str = "text/plain") -> None:
    pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)


def _detached(pipeline: Pipeline) -> None:
    pipeline.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})


def _attached(pipeline: Pipeline) -> None:
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration=pipeline.notification()
    )
    pipeline.drain(pipeline.queue_url)  # the s3:TestEvent


def _verdicts(reconciler: Reconciler, prefix: str = "") -> dict[str, Verdict]:
    return {f.key: f.verdict for f in reconciler.compare(prefix).findings}


def _gaps_while_detached(pipeline: Pipeline) -> None:
    """recorded/ok, recorded/overwritten, recorded/deleted, and never-recorded objects."""
    for name in ("ok", "overwritten", "deleted"):
        _put(pipeline, f"p/{name}.txt", b"first")
    pipeline.pump()
    _detached(pipeline)
    _put(pipeline, "p/overwritten.txt", b"second, longer")
    pipeline.s3.delete_object(Bucket=BUCKET, Key="p/deleted.txt")
    _put(pipeline, "p/unseen.txt", b"never recorded")
    _attached(pipeline)


def test_a_recorded_bucket_has_no_gaps(pipeline: Pipeline, reconciler: Reconciler) -> None:
    _put(pipeline, "p/a.txt", b"a")
    _put(pipeline, "p/b.txt", b"b")
    pipeline.s3.delete_object(Bucket=BUCKET, Key="p/b.txt")
    pipeline.pump()
    comparison = reconciler.compare()
    assert comparison.ok
    assert comparison.objects == 1
    assert comparison.items == 2


def test_events_missed_while_detached_are_classified(
    pipeline: Pipeline, reconciler: Reconciler
) -> None:
    _gaps_while_detached(pipeline)
    assert _verdicts(reconciler) == {
        "p/overwritten.txt": Verdict.DIFFERS,
        "p/deleted.txt": Verdict.GONE,
        "p/unseen.txt": Verdict.MISSING,
    }
    assert _verdicts(reconciler, prefix="p/un") == {"p/unseen.txt": Verdict.MISSING}


def test_repair_redrives_missing_and_differing_objects(
    pipeline: Pipeline, reconciler: Reconciler
) -> None:
    # GIVEN the gaps of a detached period
    _gaps_while_detached(pipeline)
    # WHEN repaired
    report = reconciler.repair(reconciler.compare(), timeout=5)
    # THEN the missing and differing objects are recorded from real copy events
    assert {r.key: r.recorded for r in report.repairs} == {
        "p/overwritten.txt": True,
        "p/unseen.txt": True,
    }
    for key, size in (("p/overwritten.txt", "14"), ("p/unseen.txt", "14")):
        item = pipeline.item(key)
        assert item is not None
        assert item["event_name"]["S"] == "ObjectCreated:Copy"
        assert item["size"]["N"] == size
        assert item["processing_status"]["S"] == "RECEIVED"
    # AND the object is unchanged: same bytes, same content type
    head = pipeline.s3.head_object(Bucket=BUCKET, Key="p/unseen.txt")
    assert head["ContentType"] == "text/plain"
    body = pipeline.s3.get_object(Bucket=BUCKET, Key="p/unseen.txt")["Body"].read()
    assert body == b"never recorded"
    # AND the gone object is still reported: no real event can be made for it safely
    assert not report.ok
    assert [f.key for f in report.final.gaps] == ["p/deleted.txt"]


def test_repair_of_a_declared_upload_judges_it(
    pipeline: Pipeline, reconciler: Reconciler, ledger: Ledger
) -> None:
    # GIVEN a declared upload that arrived while the bucket sent no events
    content = b"id,amount\n1,2\n"
    key = "acme/up-aaaaaaaaaaaaaaaaaaaaaaaaaa/invoice.csv"
    ledger.declare(
        Declaration(
            key=key,
            bucket=BUCKET,
            upload_id="up-aaaaaaaaaaaaaaaaaaaaaaaaaa",
            partner_id="acme",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content_type="text/csv",
            method="PUT",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    _detached(pipeline)
    pipeline.s3.put_object(
        Bucket=BUCKET, Key=key, Body=content, ContentType="text/csv", ChecksumAlgorithm="SHA256"
    )
    _attached(pipeline)
    assert _verdicts(reconciler) == {key: Verdict.MISSING}
    # WHEN repaired THEN the ingestion judges it as on arrival
    report = reconciler.repair(reconciler.compare(), timeout=5)
    assert report.ok
    item = pipeline.item(key)
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"


def test_a_declared_upload_not_arrived_is_no_gap(
    pipeline: Pipeline, reconciler: Reconciler, ledger: Ledger
) -> None:
    ledger.declare(
        Declaration(
            key="acme/up-bbbbbbbbbbbbbbbbbbbbbbbbbb/later.csv",
            bucket=BUCKET,
            upload_id="up-bbbbbbbbbbbbbbbbbbbbbbbbbb",
            partner_id="acme",
            size=1,
            sha256="0" * 64,
            content_type="text/csv",
            method="PUT",
            expires_at=datetime.now(UTC),
        )
    )
    comparison = reconciler.compare()
    assert comparison.ok
    assert len(comparison.of(Verdict.DECLARED)) == 1


def test_repair_reports_copies_the_ledger_never_records(pipeline: Pipeline, ledger: Ledger) -> None:
    # GIVEN nothing consuming the queue (a function that is down)
    _detached(pipeline)
    _put(pipeline, "p/stuck.txt", b"x")
    _attached(pipeline)
    idle = Reconciler(BucketOps(pipeline.s3), ledger, BUCKET, sleep=lambda _: None)
    # WHEN repaired with a short deadline THEN the copy is made but not recorded: gaps remain
    report = idle.repair(idle.compare(), timeout=0)
    (repair,) = report.repairs
    assert repair.version_id
    assert not repair.recorded
    assert "deadline" in repair.problem
    assert not report.ok


def test_repair_refuses_while_intake_is_paused(pipeline: Pipeline) -> None:
    intake = Intake(BucketOps(pipeline.s3), STACK, BUCKET, CODE_BUCKET)
    intake.pause()
    with pytest.raises(IntakeError, match="filegate resume"):
        require_flowing(intake.status())
    intake.resume()
    require_flowing(intake.status())
