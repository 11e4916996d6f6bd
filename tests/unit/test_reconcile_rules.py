"""The reconcile rule for one key: S3's latest version against the ledger item."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filegate.ledger import PRESENT, LedgerItem, Status, UploadStatus
from filegate.ops.reconcile import GAPS, Verdict, compare_key
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
