"""The reconcile rule for one key: S3's latest version against the ledger item."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from filegate.ledger import PRESENT, LedgerItem, Status, UploadStatus
from filegate.ops.reconcile import (
    GAPS,
    REDRIVE_CREATED,
    REDRIVE_REMOVED,
    Finding,
    Verdict,
    compare_key,
    redrive_event,
    redrive_time,
)
from filegate.storage import LatestVersion, latest_versions

KEY = "partner/file.csv"
STATUSES = [s.value for s in Status] + [s.value for s in UploadStatus]


def _object(size: int = 3, version: str | None = "v2", etag: str | None = "e2") -> LatestVersion:
    return LatestVersion(KEY, version, deleted=False, size=size, etag=etag)


def _marker() -> LatestVersion:
    return LatestVersion(KEY, "dm", deleted=True)


def _item(
    status: str, size: int | None = 3, version: str | None = "v2", etag: str | None = "e2"
) -> LedgerItem:
    return LedgerItem(
        key=KEY,
        bucket="b",
        status=status,
        event_name="ObjectCreated:Put",
        event_time="2026-01-01T00:00:00.000Z",
        prefix="partner",
        first_seen_at="",
        updated_at="",
        size=size,
        version_id=version,
        etag=etag,
    )


def test_an_object_without_an_item_is_missing() -> None:
    assert compare_key(KEY, _object(), None).verdict is Verdict.MISSING


def test_an_object_the_ledger_thinks_deleted_or_undelivered_is_missing() -> None:
    for status in ("DELETED", "PENDING", "EXPIRED", "ABORTED"):
        finding = compare_key(KEY, _object(), _item(status))
        assert finding.verdict is Verdict.MISSING, status
        assert status in finding.detail


def test_a_present_item_whose_object_is_gone_is_gone() -> None:
    for s3 in (_marker(), None):
        finding = compare_key(KEY, s3, _item("RECEIVED"))
        assert finding.verdict is Verdict.GONE
        assert "RECEIVED" in finding.detail


def test_a_declaration_without_an_object_is_no_gap() -> None:
    assert compare_key(KEY, None, _item("PENDING")).verdict is Verdict.DECLARED
    for status in ("EXPIRED", "ABORTED", "DELETED"):
        assert compare_key(KEY, _marker(), _item(status)).verdict is Verdict.CONSISTENT


def test_an_upload_rejected_because_s3_refused_its_bytes_is_no_gap_and_holds_no_object() -> None:
    # REJECTED with no S3 event (Ledger.reject): nothing was stored, nothing is gone
    refused = replace(_item("REJECTED", size=None, version=None, etag=None), event_time="")
    assert compare_key(KEY, None, refused).verdict is Verdict.CONSISTENT
    assert compare_key(KEY, _marker(), refused).verdict is Verdict.CONSISTENT
    # an object there after all is one whose arrival the ledger never recorded
    finding = compare_key(KEY, _object(), refused)
    assert finding.verdict is Verdict.MISSING
    assert "REJECTED" in finding.detail
    # REJECTED by the ingestion (an S3 event) is an object like any other
    assert compare_key(KEY, None, _item("REJECTED")).verdict is Verdict.GONE


def test_each_difference_is_named() -> None:
    finding = compare_key(KEY, _object(size=4, version="v3", etag="e3"), _item("ACCEPTED"))
    assert finding.verdict is Verdict.DIFFERS
    assert "size 3 in the ledger, 4 in S3" in finding.detail
    assert "version v2 in the ledger, v3 in S3" in finding.detail
    assert "ETag e2 in the ledger, e3 in S3" in finding.detail


def test_unknown_or_null_versions_are_not_compared() -> None:
    for ledger_version, s3_version in ((None, "v3"), ("null", "v3"), ("v2", "null")):
        finding = compare_key(
            KEY, _object(version=s3_version), _item("RECEIVED", version=ledger_version)
        )
        assert finding.verdict is Verdict.CONSISTENT


@given(
    exists=st.booleans(),
    status=st.none() | st.sampled_from(STATUSES),
    same=st.booleans(),
)
def test_the_verdict_follows_presence_on_both_sides(
    exists: bool, status: str | None, same: bool
) -> None:
    s3 = _object() if exists else _marker()
    item = None if status is None else _item(status, size=3 if same else 9)
    verdict = compare_key(KEY, s3, item).verdict
    recorded = status in PRESENT
    if exists and not recorded:
        assert verdict is Verdict.MISSING
    elif exists:
        assert verdict is (Verdict.CONSISTENT if same else Verdict.DIFFERS)
    elif recorded:
        assert verdict is Verdict.GONE
    else:
        assert verdict not in GAPS


def test_only_the_latest_versions_are_listed() -> None:
    page = {
        "Versions": [
            {"Key": "a", "VersionId": "1", "IsLatest": False, "Size": 1, "ETag": '"x"'},
            {"Key": "a", "VersionId": "2", "IsLatest": True, "Size": 2, "ETag": '"y"'},
            {"Key": "b", "VersionId": "3", "IsLatest": False, "Size": 3, "ETag": '"z"'},
        ],
        "DeleteMarkers": [{"Key": "b", "VersionId": "4", "IsLatest": True}],
    }
    latest = {v.key: v for v in latest_versions(iter([page]))}
    assert latest["a"] == LatestVersion("a", "2", deleted=False, size=2, etag="y")
    assert latest["b"].deleted
    assert latest["b"].version_id == "4"


# ------------------------------------------------------------------ re-drive

LISTED_AT = "2026-01-01T10:00:00+00:00"  # ListObjectVersions' LastModified: whole seconds


def _listed(last_modified: str = LISTED_AT, deleted: bool = False) -> LatestVersion:
    if deleted:
        return LatestVersion(KEY, "dm", deleted=True, last_modified=last_modified)
    return LatestVersion(KEY, "v2", False, size=3, etag="e2", last_modified=last_modified)


def _recorded_at(event_time: str, status: str = "RECEIVED") -> LedgerItem:
    item = _item(status, version="v1", etag="e1")
    return LedgerItem(**{**item.__dict__, "event_time": event_time})


def test_a_redrive_of_an_object_the_ledger_never_saw_is_at_its_last_modified() -> None:
    finding = compare_key(KEY, _listed(), None)
    assert redrive_time(finding) == "2026-01-01T10:00:00.000Z"


def test_a_redrive_is_after_an_older_recorded_event_at_the_version_s_last_modified() -> None:
    finding = compare_key(KEY, _listed(), _recorded_at("2026-01-01T09:59:58.250Z"))
    assert finding.verdict is Verdict.DIFFERS
    assert redrive_time(finding) == "2026-01-01T10:00:00.000Z"


def test_a_redrive_is_1_ms_after_a_recorded_event_the_listing_s_second_hides() -> None:
    # S3 lists LastModified to the second: the missed write may look older than the one
    # the ledger recorded within the same second (or a newer version was deleted since)
    finding = compare_key(KEY, _listed(), _recorded_at("2026-01-01T10:00:00.300Z"))
    assert redrive_time(finding) == "2026-01-01T10:00:00.301Z"


def test_a_gone_object_with_no_version_left_is_redriven_just_after_the_recorded_event() -> None:
    finding = compare_key(KEY, None, _recorded_at("2026-01-01T10:00:00.999Z"))
    assert finding.verdict is Verdict.GONE
    assert redrive_time(finding) == "2026-01-01T10:00:01.000Z"
    event = redrive_event(finding, "b", "2026-01-01T10:00:01.000Z")
    assert (event.event_name, event.version_id, event.is_removed) == (REDRIVE_REMOVED, None, True)


def test_a_delete_marker_is_redriven_as_a_removal_naming_it() -> None:
    finding = compare_key(KEY, _listed(deleted=True), _recorded_at("2026-01-01T09:00:00.000Z"))
    event = redrive_event(finding, "b", "t")
    assert (event.event_name, event.version_id) == (REDRIVE_REMOVED, "dm")


def test_an_object_is_redriven_as_created_naming_the_listed_version() -> None:
    finding = compare_key(KEY, _listed(), None)
    event = redrive_event(finding, "b", "t")
    assert (event.event_name, event.version_id, event.size, event.etag) == (
        REDRIVE_CREATED,
        "v2",
        3,
        "e2",
    )
    assert event.is_created


def test_a_redrive_needs_a_time() -> None:
    assert redrive_time(Finding(KEY, Verdict.MISSING, s3=LatestVersion(KEY, "v", False))) is None
