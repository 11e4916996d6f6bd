"""The runbook's rollback step 1 and its undo on the local stack: pause, upload, resume,
reconcile, repair (re-driven through the ingest queue, S3 untouched), and the object is in the
ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, own_stack, wait_for
from tests.e2e.ops_stack import marker_recorded, notification, notify_by_hand, run, run_json

MARKER = "marker/notified by hand.txt"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("filegate-ops-reconcile")) as running:
        yield running


def test_pause_upload_resume_reconcile_repair(stack: Stack) -> None:
    key = "paused/uploaded while paused.txt"
    attached = notification(stack)
    assert attached.get("QueueConfigurations")
    # GIVEN intake paused
    paused = run_json(stack, "pause")
    assert paused["state"] == "paused"
    assert paused["changed"]
    assert notification(stack) == {}
    assert run_json(stack, "intake")["state"] == "paused"
    assert not run_json(stack, "pause")["changed"]  # pausing again changes nothing
    # WHEN an object is uploaded THEN the ledger does not learn of it: a marker uploaded after
    # it and notified by hand (S3 would have queued the object's event during its PUT, before
    # the marker's) is recorded, the queue is empty, and the object is still unknown
    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"late", ContentType="text/plain")
    stack.s3.put_object(Bucket=stack.bucket, Key=MARKER, Body=b"marker", ContentType="text/plain")
    notify_by_hand(stack, MARKER)
    wait_for(lambda: marker_recorded(stack, MARKER), timeout=30)
    assert stack.item(key) is None
    # AND repair refuses while paused: its events would not flow
    refused = run(stack, "reconcile", "--repair")
    assert refused.returncode == 2
    assert "filegate resume" in refused.stderr
    # WHEN intake is resumed THEN exactly the same configuration is attached
    resumed = run_json(stack, "resume")
    assert resumed["state"] == "active"
    assert notification(stack) == attached
    # AND reconcile reports the object missing, with exit code 1
    found = run_json(stack, "reconcile", "--prefix", "paused/", expect=1)
    assert [f["key"] for f in found["missing"]] == [key]
    assert not found["ok"]
    versions = _versions(stack, "paused/")
    # WHEN repaired THEN exit code 0, and the object is in the ledger
    repaired = run_json(stack, "reconcile", "--prefix", "paused/", "--repair", "--timeout", "60")
    assert repaired["ok"]
    assert [(r["key"], r["event_name"], r["recorded"]) for r in repaired["repairs"]] == [
        (key, "ObjectCreated:Reconcile", True)
    ]
    item = stack.item(key)
    assert item is not None
    assert item["processing_status"]["S"] == "RECEIVED"
    assert item["event_name"]["S"] == "ObjectCreated:Reconcile"
    assert item["size"]["N"] == "4"
    assert item["version_id"]["S"] == repaired["repairs"][0]["version_id"]
    # AND the bucket was not written: the same single version, no copy
    assert _versions(stack, "paused/") == versions
    assert [v for _, v in versions] == [item["version_id"]["S"]]
    # AND the whole bucket is consistent
    assert run_json(stack, "reconcile")["ok"]


def _versions(stack: Stack, prefix: str) -> list[tuple[str, str]]:
    listed = stack.s3.list_object_versions(Bucket=stack.bucket, Prefix=prefix)
    entries = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    return sorted((e["Key"], e["VersionId"]) for e in entries)


def test_table_output_names_the_gap(stack: Stack) -> None:
    run_json(stack, "pause")
    stack.s3.put_object(Bucket=stack.bucket, Key="table/unseen.txt", Body=b"x")
    run_json(stack, "resume")
    shown = run(stack, "reconcile", "--prefix", "table/")
    assert shown.returncode == 1
    assert "missing" in shown.stdout
    assert "table/unseen.txt" in shown.stdout
    assert run(stack, "reconcile", "--prefix", "table/", "--repair").returncode == 0
