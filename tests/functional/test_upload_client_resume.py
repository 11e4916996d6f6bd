"""`UploadClient` with a resume state, over real HTTP against the fake upload API and S3 of
tests/functional/test_upload_client.py: a corrupt state file costs a line and the resume, never
the upload; a multipart upload that completes leaves no state behind, and one interrupted
(SIGINT while its parts are on their way) keeps its state and is not aborted.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from filegate.uploads.client import TransferConfig, UploadClient
from filegate.uploads.resume import ResumeStore
from tests.functional import test_upload_client
from tests.functional.test_upload_client import API_KEY, FakeService, Sleeps, write_random

fake = test_upload_client.fake  # the fixture: the fake upload API and S3, served on 127.0.0.1

KiB = 1024


def resuming_client(fake: FakeService, store: ResumeStore) -> UploadClient:
    config = TransferConfig(max_attempts=2, backoff_base_seconds=0.01, max_concurrency=2)
    return UploadClient(f"{fake.base}/api", API_KEY, config, sleep=Sleeps(), resume=store)


def test_a_corrupt_state_file_is_reported_and_the_file_uploads_afresh(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN a multipart-sized file whose state file holds garbage
    file = tmp_path / "data.bin"
    write_random(file, 300 * KiB)
    lines: list[str] = []
    store = ResumeStore(tmp_path / "uploads", f"{fake.base}/api/", API_KEY, lines.append)
    store.path_for(file).parent.mkdir(parents=True)
    store.path_for(file).write_bytes(b"\x00garbage{")

    # WHEN it is uploaded
    result = resuming_client(fake, store).upload(file)

    # THEN one line names the state file, the file is declared afresh and sent whole, and no
    # state is left once the upload completed
    assert len(lines) == 1
    assert str(store.path_for(file)) in lines[0]
    assert result.resumed_bytes == 0
    assert len(fake.requests("POST", "/api/uploads")) == 1
    assert len(fake.requests("POST", f"/api/uploads/{result.upload_id}/complete")) == 1
    assert not store.path_for(file).exists()


def test_an_interrupted_upload_keeps_its_state_and_is_not_aborted(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN a multipart upload interrupted by Ctrl-C (SIGINT to the main thread, as a terminal
    # sends it) once S3 holds part 2
    file = tmp_path / "data.bin"
    write_random(file, 300 * KiB)
    store = ResumeStore(tmp_path / "uploads", f"{fake.base}/api/", API_KEY)

    main = threading.main_thread().ident
    assert main is not None

    def interrupt(path: str) -> None:
        if path.endswith("/2"):
            signal.pthread_kill(main, signal.SIGINT)

    fake.after_put = interrupt

    # WHEN it is uploaded
    with pytest.raises(KeyboardInterrupt):
        resuming_client(fake, store).upload(file)

    # THEN its state is kept and neither abort nor complete was asked for
    state = store.load(file)
    assert state is not None
    assert state.file.size == 300 * KiB
    posts = [seen.path for seen in fake.seen if seen.method == "POST"]
    assert not [path for path in posts if path.endswith(("/abort", "/complete"))]
