"""The resume state of `filegate upload` (filegate.uploads.resume): the state file, written
atomically, one per file, API and partner; an unreadable or corrupt one reported in one line
and ignored; and what the API's answers decide (continue without the held parts, report an
upload already ACCEPTED, or start over, aborting the old upload when the file changed).

The upload API is a fake callable that answers from a table and records the requests; no
network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from filegate.errors import UploadBusyError, UploadClientError
from filegate.settings import upload_state_dir
from filegate.uploads.resume import (
    Continue,
    FileIdentity,
    Finished,
    HeldPart,
    Resumer,
    ResumeStore,
    write_atomically,
)

API = "http://127.0.0.1:9/"
UPLOAD_ID = "up-" + "b" * 26
PART_SIZE = 8 * 1024 * 1024
CHECKSUMS = {1: "one=", 2: "two=", 3: "three="}
PLAN = {
    "upload_id": UPLOAD_ID,
    "key": f"p1/{UPLOAD_ID}/data.bin",
    "method": "MULTIPART",
    "part_size": PART_SIZE,
    "part_count": 3,
    "expires_at": "2026-12-06T12:00:00.000Z",
    "abort": {"method": "POST", "path": f"/uploads/{UPLOAD_ID}/abort"},
}


@dataclass
class FakeApi:
    """Answers (method, path) from ``answers``; an int answer is an error with that status."""

    answers: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, method: str, path: str, document: Any) -> Any:
        self.calls.append((method, path))
        answer = self.answers.get((method, path), {})
        if isinstance(answer, int):
            raise UploadClientError(f"{method} /{path} answered {answer}", status=answer)
        return answer


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def store(tmp_path: Path, lines: list[str]) -> ResumeStore:
    return ResumeStore(tmp_path / "uploads", API, "fg_secret_key", lines.append)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    return data


def identity(file: Path, sha256: str = "ab" * 32) -> FileIdentity:
    return FileIdentity.of(file, sha256)


def pending(held: list[dict[str, Any]], status: str = "PENDING") -> FakeApi:
    return FakeApi(
        {
            ("GET", f"uploads/{UPLOAD_ID}"): {"status": status, "declared": {"sha256": "ab" * 32}},
            ("GET", f"uploads/{UPLOAD_ID}/parts"): {"part_size": PART_SIZE, "parts": held},
        }
    )


def part(number: int, checksum: str) -> dict[str, Any]:
    return {
        "part_number": number,
        "size": PART_SIZE,
        "etag": f'"e{number}"',
        "checksum_sha256": checksum,
    }


# --- the state file ------------------------------------------------------------------------


def test_the_state_lives_under_the_state_dirs_uploads_folder() -> None:
    assert upload_state_dir({"FILEGATE_STATE_DIR": "/s"}) == Path("/s/uploads")
    assert upload_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/filegate/uploads")


def test_a_saved_state_is_loaded_back_and_holds_no_api_key(store: ResumeStore, file: Path) -> None:
    store.save(store.new_state(identity(file), PLAN))

    loaded = store.load(file)

    assert loaded is not None
    assert loaded.plan == PLAN
    assert loaded.file == identity(file)
    assert loaded.file.path == str(file.resolve())
    assert "fg_secret_key" not in store.path_for(file).read_text()


def test_one_state_file_per_file_per_api_and_per_partner(
    tmp_path: Path, store: ResumeStore, file: Path
) -> None:
    other_api = ResumeStore(store.directory, "http://127.0.0.1:10/", "fg_secret_key")
    other_partner = ResumeStore(store.directory, API, "fg_other_key")
    other_file = tmp_path / "other.bin"

    names = {
        store.path_for(file),
        other_api.path_for(file),
        other_partner.path_for(file),
        store.path_for(other_file),
    }

    assert len(names) == 4


def test_an_atomic_write_that_fails_leaves_the_old_file_whole_and_no_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.json"
    write_atomically(target, '{"old": true}')

    with pytest.raises(UnicodeEncodeError):
        write_atomically(target, '{"new": "\ud800"}')  # cannot be encoded: fails mid-write

    assert target.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"version": 99}', '{"version": 1, "file": {}}']
)
def test_a_corrupt_state_is_reported_in_one_line_and_ignored(
    store: ResumeStore, file: Path, lines: list[str], content: str
) -> None:
    where = store.path_for(file)
    where.parent.mkdir(parents=True)
    where.write_text(content)

    assert store.load(file) is None
    assert len(lines) == 1
    assert str(where) in lines[0]
    assert "starts over" in lines[0]


def test_an_unreadable_state_is_reported_and_ignored(
    store: ResumeStore, file: Path, lines: list[str]
) -> None:
    store.path_for(file).mkdir(parents=True)  # a directory where the file should be

    assert store.load(file) is None
    assert "cannot read the resume state" in lines[0]


def test_a_state_that_cannot_be_written_is_reported_and_the_upload_goes_on(
    tmp_path: Path, file: Path, lines: list[str]
) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("")
    store = ResumeStore(blocked / "uploads", API, "k", lines.append)

    store.save(store.new_state(identity(file), PLAN))  # does not raise

    assert "cannot write the resume state" in lines[0]


# --- what the API's answers decide ---------------------------------------------------------


def remembered(store: ResumeStore, file: Path, api: FakeApi) -> Resumer:
    resumer = Resumer(store, api)
    resumer.remember(identity(file), PLAN)
    return resumer


def test_no_state_declares_afresh_without_asking_the_api(store: ResumeStore, file: Path) -> None:
    api = FakeApi()

    assert Resumer(store, api).decide(file, identity(file)) is None
    assert api.calls == []


def test_a_pending_upload_of_the_same_file_continues_without_its_held_parts(
    store: ResumeStore, file: Path
) -> None:
    api = pending([part(1, "one="), part(2, "two=")])
    resumer = remembered(store, file, api)

    decision = resumer.decide(file, identity(file))

    assert isinstance(decision, Continue)
    assert decision.held == {
        1: HeldPart("e1", PART_SIZE, "one="),
        2: HeldPart("e2", PART_SIZE, "two="),
    }
    assert decision.resumed_bytes == 2 * PART_SIZE
    assert decision.plan["upload_id"] == UPLOAD_ID
    assert store.path_for(file).exists()  # kept until the upload completes


def test_a_held_part_that_no_longer_matches_aborts_the_old_upload_and_starts_over(
    store: ResumeStore, file: Path, lines: list[str]
) -> None:
    # (found by the client while it reads the held parts again: filegate.uploads.part_reader)
    api = pending([part(1, "one=")])
    resumer = remembered(store, file, api)

    resumer.changed(PLAN, file, "part 2 held in S3 no longer matches the file's bytes")

    assert ("POST", f"uploads/{UPLOAD_ID}/abort") in api.calls
    assert any("part 2" in line and "aborted it, starting over" in line for line in lines)
    assert not store.path_for(file).exists()


def test_a_file_whose_size_or_mtime_changed_is_aborted_and_starts_over(
    store: ResumeStore, file: Path, lines: list[str]
) -> None:
    api = pending([part(1, "one=")])
    resumer = remembered(store, file, api)
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    decision = resumer.decide(file, identity(file))

    assert decision is None
    assert ("POST", f"uploads/{UPLOAD_ID}/abort") in api.calls
    assert ("GET", f"uploads/{UPLOAD_ID}/parts") not in api.calls
    assert "changed since upload" in lines[-1]


@pytest.mark.parametrize("status", ["EXPIRED", "ABORTED", "REJECTED"])
def test_an_upload_no_longer_pending_starts_over_and_says_so(
    store: ResumeStore, file: Path, lines: list[str], status: str
) -> None:
    api = pending([], status=status)
    resumer = remembered(store, file, api)

    assert resumer.decide(file, identity(file)) is None
    assert lines == [f"upload {UPLOAD_ID} of {file.resolve()} is {status}; starting over"]
    assert not store.path_for(file).exists()


def test_an_upload_already_accepted_for_this_file_is_reported_not_sent_again(
    store: ResumeStore, file: Path
) -> None:
    api = pending([], status="ACCEPTED")
    resumer = remembered(store, file, api)

    decision = resumer.decide(file, identity(file))

    assert isinstance(decision, Finished)
    assert decision.view["status"] == "ACCEPTED"
    assert not store.path_for(file).exists()


def test_an_upload_the_api_does_not_know_starts_over(
    store: ResumeStore, file: Path, lines: list[str]
) -> None:
    api = FakeApi({("GET", f"uploads/{UPLOAD_ID}"): 404})
    resumer = remembered(store, file, api)

    assert resumer.decide(file, identity(file)) is None
    assert "unknown to this API" in lines[0]


def test_an_api_that_fails_costs_the_resume_not_the_upload(
    store: ResumeStore, file: Path, lines: list[str]
) -> None:
    api = FakeApi({("GET", f"uploads/{UPLOAD_ID}"): 503})
    resumer = remembered(store, file, api)

    assert resumer.decide(file, identity(file)) is None
    assert "cannot resume upload" in lines[0]


def test_an_api_that_cannot_be_reached_keeps_the_state_for_the_next_run(
    store: ResumeStore, file: Path
) -> None:
    # GIVEN an upload in flight whose API does not answer at all (connection refused)
    class Unreachable(FakeApi):
        def __call__(self, method: str, path: str, document: Any) -> Any:
            raise UploadClientError(f"{method} /{path}: connection refused", unreachable=True)

    resumer = remembered(store, file, Unreachable())

    # WHEN the rerun asks whether it resumes, THEN the network error is raised and the state
    # stays: the run after, once the API answers, resumes
    with pytest.raises(UploadClientError, match="connection refused"):
        resumer.decide(file, identity(file))
    assert store.path_for(file).exists()


# --- one run at a time per state -------------------------------------------------------------


def test_a_second_hold_on_the_same_file_is_refused_naming_the_holder_until_it_lets_go(
    store: ResumeStore, file: Path, tmp_path: Path
) -> None:
    # GIVEN a run holding the file's state (another process's store: its own open file)
    other = ResumeStore(tmp_path / "uploads", API, "fg_secret_key", lambda _: None)
    with store.hold(file):
        # WHEN another run asks for it, THEN it is refused at once, naming the holder's pid
        with pytest.raises(UploadBusyError) as raised, other.hold(file):
            pass
        assert f"another filegate upload (pid {os.getpid()})" in str(raised.value)
        assert str(file) in str(raised.value)
        # (another file, or the same file for another partner, is not held)
        with other.hold(tmp_path / "other.bin"):
            pass
    # AND once the first lets go, the next run holds it, and no lock file is left behind
    with other.hold(file):
        pass
    assert list((tmp_path / "uploads").glob("*.lock")) == []
