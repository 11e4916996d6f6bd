"""`filegate upload` resumed with the same command on the local stack (issue 11, item 3).

The interruption comes at a known point, not after a sleep: a relay in front of the stack's
upload API passes every API request through and points each part URL it hands out at itself.
It forwards a part's PUT to the URL S3 signed (same headers, same bytes) and records the part's
number, or, for the parts it is told to hold, keeps the request waiting. The test polls the
emulator's ListParts until the parts let through are held, then sends SIGINT to the CLI. The
second run goes through the same relay, holding nothing, so the parts it forwards are the parts
the client sent. A network failure is the relay closing the connection of the parts it is told
to drop, unanswered; a run of several files is held on its last file only (the relay knows each
upload's file from the declarations it passed); a second run on a held file meets the first
one's lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.e2e.conftest import BIN, Stack, cli_env, filegate, wait_for

MiB = 1024 * 1024
PART = 8 * MiB  # filegate.parts: 8 MiB parts up to 80,000 MiB
SIZE = 65 * MiB  # above the local stack's 64 MiB multipart threshold: 9 parts
HELD_BEFORE_SIGINT = 2


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    done = filegate(stack.state_dir, "partner", "add", "resume partner", "--output", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["api_key"])


class _Relay(ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    http: urllib3.PoolManager
    hold_from: int  # parts numbered this or above wait until released (0: none)
    hold_files: set[str]  # ... of these files only (empty: of every file)
    drop_from: int  # parts numbered this or above: the connection is closed unanswered (0: none)
    release: threading.Event
    files: dict[str, str]  # upload id -> file name, from the declarations seen
    signed: dict[tuple[str, int], dict[str, Any]]  # (upload id, part) -> as the API signed it
    forwarded: list[tuple[str, int]]
    lock: threading.Lock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Relay

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._api()

    def do_POST(self) -> None:
        self._api()

    def do_PUT(self) -> None:
        _, _, upload_id, number = self.path.split("/")
        relay = self.server
        if relay.drop_from and int(number) >= relay.drop_from:
            self.close_connection = True  # as a network that resets the connection
            return
        held_file = not relay.hold_files or relay.files.get(upload_id) in relay.hold_files
        if relay.hold_from and int(number) >= relay.hold_from and held_file:
            relay.release.wait()
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        part = self.server.signed[(upload_id, int(number))]
        answer = self.server.http.request("PUT", part["url"], body=body, headers=part["headers"])
        with self.server.lock:
            self.server.forwarded.append((upload_id, int(number)))
        self._send(answer.status, answer.data, {"ETag": answer.headers.get("ETag", "")})

    def _api(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("x-api-key", "content-type")
        }
        answer = self.server.http.request(
            self.command, self.server.upstream + self.path.lstrip("/"), body=body, headers=headers
        )
        data = answer.data
        declared = self.command == "POST" and self.path.rstrip("/").endswith("/uploads")
        if declared and answer.status == 201:
            plan = json.loads(data)
            self.server.files[plan["upload_id"]] = json.loads(body)["filename"]
        if self.command == "POST" and self.path.endswith("/parts") and answer.status == 200:
            data = self._through_relay(json.loads(data))
        self._send(answer.status, data, {"Content-Type": "application/json"})

    def _through_relay(self, document: dict[str, Any]) -> bytes:
        upload_id = document["upload_id"]
        for part in document["parts"]:
            number = part["part_number"]
            self.server.signed[(upload_id, number)] = dict(part)
            part["url"] = f"{self.server.url}part/{upload_id}/{number}"
        return json.dumps(document).encode()

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def relay(stack: Stack) -> Iterator[_Relay]:
    server = _Relay(("127.0.0.1", 0), _Handler)
    server.upstream = str(stack.env["upload_api_url"])
    server.http = urllib3.PoolManager(maxsize=8)
    server.hold_from, server.release = 0, threading.Event()
    server.hold_files, server.drop_from, server.files = set(), 0, {}
    server.signed, server.forwarded, server.lock = {}, [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def command(*files: Path) -> list[str]:
    """The one command both runs use (the API URL comes from the environment)."""
    return [str(BIN / "filegate"), "upload", *map(str, files), "--wait", "--output", "json"]


def environment(key: str, state: Path, relay: _Relay) -> dict[str, str]:
    return cli_env(state, FILEGATE_API_KEY=key, FILEGATE_API_URL=relay.url)


def open_upload(stack: Stack, file: Path) -> dict[str, Any] | None:
    """The emulator's open multipart upload of ``file`` (ListMultipartUploads), if any."""
    uploads = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    mine = [u for u in uploads if u["Key"].endswith("/" + file.name)]
    return mine[0] if mine else None


def held_parts(stack: Stack, upload: dict[str, Any], at_least: int = 0) -> list[dict[str, Any]]:
    """ListParts of ``upload``; [] until it holds ``at_least`` parts."""
    listed = stack.s3.list_parts(
        Bucket=stack.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
    ).get("Parts", [])
    return list(listed) if len(listed) >= at_least else []


def interrupt_after_parts(
    stack: Stack, key: str, state: Path, relay: _Relay, file: Path, *others: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    """Run the command (``others`` first, then ``file``), SIGINT it once S3 holds the parts of
    ``file`` let through; the open upload, its held parts (as ListParts gave them just
    before) and the finished process."""
    relay.hold_from = HELD_BEFORE_SIGINT + 1
    process = subprocess.Popen(
        command(*others, file),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(key, state, relay),
    )
    try:
        upload = wait_for(lambda: open_upload(stack, file), timeout=120)
        held = wait_for(lambda: held_parts(stack, upload, HELD_BEFORE_SIGINT), timeout=120)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    relay.hold_from = 0
    return upload, held, subprocess.CompletedProcess(process.args, process.returncode, out, err)


def run_again(stack: Stack, key: str, state: Path, relay: _Relay, *files: Path) -> Any:
    done = subprocess.run(
        command(*files),
        capture_output=True,
        text=True,
        env=environment(key, state, relay),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(done.stdout)[0]


def test_an_interrupted_upload_resumes_with_the_same_command_sending_only_missing_parts(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN a 9-part upload interrupted by Ctrl-C once S3 holds parts 1 and 2
    file = tmp_path / "resumed.bin"
    file.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"

    upload, held, first = interrupt_after_parts(stack, api_key, state, relay, file)

    # THEN it exits 130 with one line saying how to resume, no traceback, and keeps its state
    assert first.returncode == 130, first.stdout + first.stderr
    assert "run the same command again to resume" in first.stderr.replace("\n", " ")
    assert "Traceback" not in first.stderr
    assert len(list((state / "uploads").glob("*.json"))) == 1
    assert [p["PartNumber"] for p in held] == [1, 2]

    # WHEN the same command runs again
    relay.forwarded.clear()
    _, result = run_again(stack, api_key, state, relay, file)

    # THEN the file is ACCEPTED, the held parts' bytes count as resumed and were not sent again
    assert result["status"] == "ACCEPTED"
    assert result["resumed_bytes"] == sum(p["Size"] for p in held) == 2 * PART
    assert result["upload_id"] in upload["Key"]
    sent = sorted(number for _, number in relay.forwarded)
    assert sent == list(range(HELD_BEFORE_SIGINT + 1, 10))
    assert open_upload(stack, file) is None
    assert list((state / "uploads").glob("*.json")) == []
    item = stack.item(upload["Key"])
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"
    assert item["declared_sha256"]["S"] == hashlib.sha256(file.read_bytes()).hexdigest()


def test_a_file_changed_between_the_runs_starts_over_and_the_old_upload_is_aborted(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN an upload interrupted once S3 holds parts 1 and 2
    file = tmp_path / "changed.bin"
    file.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    old, _, first = interrupt_after_parts(stack, api_key, state, relay, file)
    assert first.returncode == 130, first.stdout + first.stderr

    # WHEN part 1 of the file changes (same size) and the same command runs again
    with file.open("r+b") as handle:
        handle.write(b"CHANGED")
    relay.forwarded.clear()
    done, result = run_again(stack, api_key, state, relay, file)

    # THEN it says so in one line, aborts the old multipart upload, starts over from part 1,
    # and the new content is ACCEPTED under its own SHA-256
    assert "changed since upload" in done.stderr.replace("\n", " ")
    uploads = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert old["UploadId"] not in [u["UploadId"] for u in uploads]
    assert result["resumed_bytes"] == 0
    assert result["status"] == "ACCEPTED"
    assert result["key"] != old["Key"]
    assert sorted(number for _, number in relay.forwarded) == list(range(1, 10))
    assert result["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    old_item = stack.item(old["Key"])
    assert old_item is not None
    assert old_item["processing_status"]["S"] == "ABORTED"


# --- what interrupts a run, and what the next run does (issue 11, item 3) --------------------


def test_a_network_failure_keeps_the_upload_and_its_state_and_the_same_command_resumes(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN a 9-part upload whose parts from 3 on meet a network that drops the connection
    file = tmp_path / "network.bin"
    file.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    relay.drop_from = HELD_BEFORE_SIGINT + 1

    # WHEN it is uploaded, THEN after its retries it exits 2 with a message saying that the
    # same command resumes, no traceback, and neither the multipart upload nor its state is gone
    first = subprocess.run(
        command(file),
        capture_output=True,
        text=True,
        env=environment(api_key, state, relay),
        timeout=300,
        check=False,
    )
    assert first.returncode == 2, first.stdout + first.stderr
    said = first.stderr.replace("\n", " ")
    assert "run the same command again to resume" in said
    assert re.search(r"multipart upload up-\w+ was aborted", said) is None
    assert "Traceback" not in first.stderr
    assert len(list((state / "uploads").glob("*.json"))) == 1
    upload = open_upload(stack, file)
    assert upload is not None
    held = held_parts(stack, upload)
    assert [p["PartNumber"] for p in held] == [1, 2]

    # WHEN the network is back and the same command runs again, THEN only the missing parts
    # are sent and the file is ACCEPTED
    relay.drop_from = 0
    relay.forwarded.clear()
    _, result = run_again(stack, api_key, state, relay, file)
    assert result["status"] == "ACCEPTED"
    assert result["resumed_bytes"] == 2 * PART
    assert sorted(number for _, number in relay.forwarded) == list(range(3, 10))
    assert list((state / "uploads").glob("*.json")) == []


def test_a_run_of_several_files_interrupted_does_not_send_the_finished_ones_again(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN `filegate upload first.bin small.csv last.bin` interrupted by Ctrl-C while last.bin
    # is on its way (first.bin, 9 parts, and small.csv, one PUT, were sent)
    first, small, last = tmp_path / "first.bin", tmp_path / "small.csv", tmp_path / "last.bin"
    first.write_bytes(os.urandom(SIZE))
    small.write_text("id,amount\n1,100\n")
    last.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    relay.hold_files = {last.name}
    _, _, interrupted = interrupt_after_parts(stack, api_key, state, relay, last, first, small)
    assert interrupted.returncode == 130, interrupted.stdout + interrupted.stderr
    sent_first = [
        number for upload_id, number in relay.forwarded if relay.files[upload_id] == first.name
    ]
    assert sorted(sent_first) == list(range(1, 10))

    # WHEN the same command runs again
    relay.hold_files = set()
    relay.forwarded.clear()
    done, _ = run_again(stack, api_key, state, relay, first, small, last)

    # THEN first.bin and small.csv are reported under their first uploads, nothing of them is
    # sent again (no new declaration, no part), last.bin resumes, and all three are ACCEPTED
    results = {Path(r["file"]).name: r for r in json.loads(done.stdout)}
    assert [r["status"] for r in results.values()] == ["ACCEPTED"] * 3
    again = [relay.files[upload_id] for upload_id, _ in relay.forwarded]
    assert set(again) == {last.name}
    declared = [name for name in relay.files.values() if name in (first.name, small.name)]
    assert sorted(declared) == sorted([first.name, small.name])  # once each, in the first run
    assert results[last.name]["resumed_bytes"] == HELD_BEFORE_SIGINT * PART
    assert list((state / "uploads").glob("*.json")) == []


def test_a_second_run_on_the_same_file_is_refused_while_the_first_holds_its_state(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN a run of `filegate upload locked.bin` on its way (parts 3 on held by the relay)
    file = tmp_path / "locked.bin"
    file.write_bytes(os.urandom(SIZE))
    state = tmp_path / "state"
    relay.hold_from = HELD_BEFORE_SIGINT + 1
    running = subprocess.Popen(
        command(file),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(api_key, state, relay),
    )
    try:
        upload = wait_for(lambda: open_upload(stack, file), timeout=120)
        wait_for(lambda: held_parts(stack, upload, HELD_BEFORE_SIGINT), timeout=120)

        # WHEN the same command runs again meanwhile
        second = subprocess.run(
            command(file),
            capture_output=True,
            text=True,
            env=environment(api_key, state, relay),
            timeout=60,
            check=False,
        )

        # THEN it stops at once with exit 2, saying which run holds the file, and sends nothing
        assert second.returncode == 2, second.stdout + second.stderr
        said = second.stderr.replace("\n", " ")
        assert f"another filegate upload (pid {running.pid})" in said
        assert "Traceback" not in second.stderr
        assert len(relay.files) == 1  # one declaration: the first run's
    finally:
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=60)
    # and the first run's state is whole: the same command resumes it
    relay.hold_from = 0
    relay.release.clear()
    _, result = run_again(stack, api_key, state, relay, file)
    assert result["status"] == "ACCEPTED"
