"""Reconcile against in-process moto: classification, and repair through the real handler.

Repair sends the ingest queue S3-shaped events; ``pipeline.pump`` (the repair's sleep) plays
the event source mapping, so the real handler records them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.model_instances import model_data
from moto.s3.models import FakeKey, s3_backends
from ops_pipeline import BUCKET, CODE_BUCKET, STACK, Pipeline, build_pipeline

from filegate.errors import IntakeError
from filegate.ingest import handler
from filegate.ledger import Declaration, Ledger
from filegate.ops.intake import Intake
from filegate.ops.reconcile import Reconciler, Verdict, require_flowing
from filegate.queues import MessageQueue
from filegate.storage import BucketOps


@pytest.fixture
def pipeline(table: str) -> Pipeline:
    return build_pipeline(table)


@pytest.fixture
def reconciler(pipeline: Pipeline, ledger: Ledger) -> Reconciler:
    # The repair's wait plays the event source mapping: each poll runs the handler first.
    return Reconciler(BucketOps(pipeline.s3), ledger, BUCKET, _queue(pipeline), sleep=pipeline.pump)


def _queue(pipeline: Pipeline) -> MessageQueue:
    return MessageQueue(pipeline.queue_url, pipeline.sqs)


def _versions(pipeline: Pipeline) -> list[tuple[str, str]]:
    """Every version and delete marker in the bucket: (key, version id)."""
    listed = pipeline.s3.list_object_versions(Bucket=BUCKET)
    entries = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    return sorted((e["Key"], e["VersionId"]) for e in entries)


def _current_version(pipeline: Pipeline, key: str) -> str:
    return str(pipeline.s3.head_object(Bucket=BUCKET, Key=key)["VersionId"])


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


def test_repair_redrives_every_gap_through_the_queue_without_writing_s3(
    pipeline: Pipeline, reconciler: Reconciler
) -> None:
    # GIVEN the gaps of a detached period: differing, gone and missing
    _gaps_while_detached(pipeline)
    versions = _versions(pipeline)
    # WHEN repaired
    report = reconciler.repair(reconciler.compare(), timeout=5)
    # THEN each gap was re-driven and recorded, and no gap remains
    assert {r.key: (r.event_name, r.recorded) for r in report.repairs} == {
        "p/deleted.txt": ("ObjectRemoved:Reconcile", True),
        "p/overwritten.txt": ("ObjectCreated:Reconcile", True),
        "p/unseen.txt": ("ObjectCreated:Reconcile", True),
    }
    assert report.ok
    # AND the bucket holds exactly the versions it held: nothing was copied or deleted
    assert _versions(pipeline) == versions
    # AND the items record the current versions, from HeadObject as for S3's own events
    for key, size in (("p/overwritten.txt", "14"), ("p/unseen.txt", "14")):
        item = pipeline.item(key)
        assert item is not None
        assert item["event_name"]["S"] == "ObjectCreated:Reconcile"
        assert item["version_id"]["S"] == _current_version(pipeline, key)
        assert item["size"]["N"] == size
        assert item["processing_status"]["S"] == "RECEIVED"
    gone = pipeline.item("p/deleted.txt")
    assert gone is not None
    assert gone["processing_status"]["S"] == "DELETED"
    assert gone["size"]["N"] == "5"  # a deletion keeps what the ledger knew of the object


def test_a_redriven_event_never_overwrites_a_newer_state(
    pipeline: Pipeline, reconciler: Reconciler
) -> None:
    # GIVEN an object the ledger missed, found missing
    _detached(pipeline)
    _put(pipeline, "p/raced.txt", b"listed")
    _attached(pipeline)
    before = reconciler.compare()
    assert [f.key for f in before.gaps] == ["p/raced.txt"]
    # AND, after the listing, a newer write whose own event is recorded first
    _put(pipeline, "p/raced.txt", b"newer, after the listing")
    pipeline.pump()
    newer = pipeline.item("p/raced.txt")
    assert newer is not None
    # WHEN the listed state is re-driven
    report = reconciler.repair(before, timeout=5)
    # THEN the ledger keeps the newer state, and the key reconciles
    assert pipeline.item("p/raced.txt") == newer
    assert report.ok


class _Between:
    """A progress sink that runs ``action`` when the comparison turns to its second read."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self._phases = 0

    def start(self, description: str, total: int | None = None) -> None:
        self._phases += 1
        if self._phases == 2:
            self._action()

    def advance(self, units: int = 1) -> None:
        pass


def test_an_upload_recorded_between_the_two_reads_is_not_undone(
    pipeline: Pipeline, ledger: Ledger
) -> None:
    # GIVEN a key recorded, then written again and recorded while reconcile reads the ledger
    # and the bucket (between the two reads)
    _put(pipeline, "p/moving.txt", b"first")
    pipeline.pump()

    def upload_and_record() -> None:
        _put(pipeline, "p/moving.txt", b"second, during reconcile")
        pipeline.pump()

    racing = Reconciler(
        BucketOps(pipeline.s3),
        ledger,
        BUCKET,
        _queue(pipeline),
        progress=_Between(upload_and_record),
        sleep=pipeline.pump,
    )
    before = racing.compare()
    recorded = pipeline.item("p/moving.txt")
    # WHEN whatever the comparison found is repaired
    report = Reconciler(
        BucketOps(pipeline.s3), ledger, BUCKET, _queue(pipeline), sleep=pipeline.pump
    ).repair(before, timeout=5)
    # THEN the ledger still records the second write, and the bucket reconciles
    assert pipeline.item("p/moving.txt") == recorded
    assert recorded is not None
    assert recorded["version_id"]["S"] == _current_version(pipeline, "p/moving.txt")
    assert report.ok


def test_repair_of_a_late_delete_keeps_an_upload_made_after_the_listing(
    pipeline: Pipeline, reconciler: Reconciler
) -> None:
    # GIVEN an object deleted while detached: the ledger still says RECEIVED
    _put(pipeline, "p/back.txt", b"first")
    pipeline.pump()
    _detached(pipeline)
    pipeline.s3.delete_object(Bucket=BUCKET, Key="p/back.txt")
    _attached(pipeline)
    before = reconciler.compare()
    assert [f.verdict for f in before.gaps] == [Verdict.GONE]
    # AND an upload of the same key after the listing, recorded
    _put(pipeline, "p/back.txt", b"uploaded again")
    pipeline.pump()
    # WHEN the deletion is re-driven THEN the ledger keeps the upload
    report = reconciler.repair(before, timeout=5)
    item = pipeline.item("p/back.txt")
    assert item is not None
    assert item["processing_status"]["S"] == "RECEIVED"
    assert item["size"]["N"] == "14"
    assert report.ok


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


def test_repair_reports_events_the_ledger_never_records(pipeline: Pipeline, ledger: Ledger) -> None:
    # GIVEN nothing consuming the queue (a function that is down)
    _detached(pipeline)
    _put(pipeline, "p/stuck.txt", b"x")
    _attached(pipeline)
    versions = _versions(pipeline)
    idle = Reconciler(
        BucketOps(pipeline.s3), ledger, BUCKET, _queue(pipeline), sleep=lambda _: None
    )
    # WHEN repaired with a short deadline
    report = idle.repair(idle.compare(), timeout=0)
    # THEN the event waits in the queue, not recorded: gaps remain, S3 is untouched
    (repair,) = report.repairs
    assert repair.message_id
    assert repair.version_id == _current_version(pipeline, "p/stuck.txt")
    assert not repair.recorded
    assert "deadline" in repair.problem
    assert not report.ok
    assert pipeline.depth(pipeline.queue_url) == 1
    assert _versions(pipeline) == versions


def test_repair_reports_a_queue_it_cannot_send_to(pipeline: Pipeline, ledger: Ledger) -> None:
    _detached(pipeline)
    _put(pipeline, "p/unsent.txt", b"x")
    _attached(pipeline)
    missing = MessageQueue(pipeline.queue_url + "-gone", pipeline.sqs)
    broken = Reconciler(BucketOps(pipeline.s3), ledger, BUCKET, missing, sleep=lambda _: None)
    (repair,) = broken.repair(broken.compare(), timeout=0).repairs
    assert repair.message_id is None
    assert "SendMessage" in repair.problem
    assert "sqs:SendMessage" in repair.problem


def test_repair_refuses_while_intake_is_paused(pipeline: Pipeline) -> None:
    intake = Intake(BucketOps(pipeline.s3), STACK, BUCKET, CODE_BUCKET)
    intake.pause()
    with pytest.raises(IntakeError, match="filegate resume"):
        require_flowing(intake.status())
    intake.resume()
    require_flowing(intake.status())


SIX_GIB = 6 * 1024**3  # above CopyObject's 5 GB limit (S3 API Reference, CopyObject)


@pytest.fixture
def six_gib_key() -> Iterator[type]:
    """A kind of moto stored object whose size says 6 GiB, whatever its bytes (a class, so
    that moto's deep copies of listed versions keep it). moto registers every model class it
    sees by module (``model_data``); the registration goes when the test ends."""
    module = "tests.filegate_six_gib"
    yield type("SixGiBKey", (FakeKey,), {"__module__": module, "size": property(lambda _: SIX_GIB)})
    model_data.pop(module.split(".")[1], None)


def _served(client: Any) -> list[str]:
    """The S3 operations ``client`` makes from now on (botocore's own event hooks)."""
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def _served_by_new_clients() -> list[str]:
    """The S3 operations of clients the default session makes from now on."""
    calls: list[str] = []
    session = boto3.DEFAULT_SESSION or boto3.Session()
    session.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def test_repair_of_an_object_above_5_gb_never_touches_its_bytes(
    pipeline: Pipeline, reconciler: Reconciler, six_gib_key: type
) -> None:
    # GIVEN an object of 6 GiB the ledger missed. moto keeps every byte in memory, so the
    # object holds 1 KiB and its size in the emulator's state says 6 GiB: ListObjectVersions
    # and HeadObject report 6 GiB, and any path that copied it (CopyObject refuses more than
    # 5 GB) or read it whole would fail on the mismatch or show in the calls below.
    _detached(pipeline)
    _put(pipeline, "p/huge.bin", b"h" * 1024, "application/octet-stream")
    _attached(pipeline)
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(BUCKET, "p/huge.bin")
    stored.__class__ = six_gib_key  # this object only: it goes when the test's moto does
    listed = pipeline.s3.list_object_versions(Bucket=BUCKET, Prefix="p/huge")["Versions"]
    assert listed[0]["Size"] == SIX_GIB
    # the repair's own client, and the ingestion's (built from the default session on its
    # first invocation, after this)
    repair_calls = _served(pipeline.s3)
    handler.build_ingestor.cache_clear()
    ingest_calls = _served_by_new_clients()

    # WHEN repaired
    report = reconciler.repair(reconciler.compare(), timeout=5)

    # THEN the item records the 6 GiB object, and nothing but a listing and one HeadObject
    # touched S3: no GetObject, no CopyObject, no UploadPartCopy
    assert report.ok
    item = pipeline.item("p/huge.bin")
    assert item is not None
    assert item["size"]["N"] == str(SIX_GIB)
    assert item["event_name"]["S"] == "ObjectCreated:Reconcile"
    assert set(repair_calls) == {"ListObjectVersions"}
    assert ingest_calls == ["HeadObject"]
