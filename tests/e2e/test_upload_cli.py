"""`filegate upload` exit codes on the local stack: a missing file, a file that changes while it
is uploaded, `--wait` when every file is ACCEPTED.

The file changes on disk after it was declared and before the client reads it, as a file still
being written would. The change is made at a deterministic point: a small relay in front of the
stack's upload API changes the file when it sees the declaration go by, and passes every
request and answer through unchanged. The file is above the multipart threshold, so it is
declared without its SHA-256 and read once, each part hashed as it is read and those very bytes
sent: what S3 stores, what its part checksums bind and the whole-file SHA-256 given at
completion all describe the file as it was read, so it is ACCEPTED under that SHA-256. (A part
too large to keep in memory, read again when sent, is refused by S3 if it changed meanwhile:
tests/functional/test_upload_client.py; `--wait` exiting 1 on a REJECTED verdict: there too.)
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.e2e.conftest import BIN, Stack, cli_env, filegate

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    done = filegate(stack.state_dir, "partner", "add", "cli partner", "--output", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["api_key"])


def upload_cli(
    stack: Stack, key: str, *args: str, api: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "filegate"), "upload", *args, *(["--api", api] if api else [])],
        capture_output=True,
        text=True,
        env=cli_env(stack.state_dir, FILEGATE_API_KEY=key),
        timeout=300,
        check=False,
    )


class _Relay(ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    on_declare: Callable[[dict[str, Any]], None]
    http: urllib3.PoolManager


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Relay

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST" and self.path.rstrip("/").endswith("/uploads"):
            self.server.on_declare(json.loads(body))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("x-api-key", "content-type")
        }
        answer = self.server.http.request(
            self.command, self.server.upstream + self.path.lstrip("/"), body=body, headers=headers
        )
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.data)))
        self.end_headers()
        self.wfile.write(answer.data)


@pytest.fixture
def relay(stack: Stack) -> Iterator[_Relay]:
    server = _Relay(("127.0.0.1", 0), _RelayHandler)
    server.upstream = str(stack.env["upload_api_url"])
    server.on_declare = lambda _: None
    server.http = urllib3.PoolManager()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def relay_url(relay: _Relay) -> str:
    return f"http://127.0.0.1:{relay.server_address[1]}/"


def test_a_missing_file_exits_2_naming_it(stack: Stack, api_key: str, tmp_path: Path) -> None:
    missing = tmp_path / "not here.csv"

    done = upload_cli(stack, api_key, str(missing), "--wait")

    assert done.returncode == 2, done.stdout + done.stderr
    assert str(missing) in done.stderr.replace("\n", "")


def test_a_file_that_changes_after_its_declaration_is_accepted_as_it_was_read(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # GIVEN a multipart-sized file that changes right after it was declared
    changing = tmp_path / "changing.bin"
    changing.write_bytes(b"v" * (65 * MiB))
    declared: list[dict[str, Any]] = []

    def change_the_file(declaration: dict[str, Any]) -> None:
        if declaration["filename"] == changing.name:
            declared.append(declaration)
            with changing.open("r+b") as handle:
                handle.write(b"CHANGED")  # same size: only the SHA-256 tells

    relay.on_declare = change_the_file

    # WHEN it is uploaded with --wait
    done = upload_cli(
        stack, api_key, str(changing), "--wait", "--output", "json", api=relay_url(relay)
    )

    # THEN it was declared without a SHA-256, and is ACCEPTED under the SHA-256 of the bytes
    # read and sent (the file as changed), recorded in the ledger at completion
    assert done.returncode == 0, done.stdout + done.stderr
    assert [d.get("sha256") for d in declared] == [None]
    (result,) = json.loads(done.stdout)
    sent = hashlib.sha256(changing.read_bytes()).hexdigest()
    assert (result["status"], result["sha256"]) == ("ACCEPTED", sent)
    item = stack.item(result["key"])
    assert item is not None
    assert item["declared_sha256"]["S"] == sent


def test_wait_exits_0_when_every_file_is_accepted(
    stack: Stack, api_key: str, relay: _Relay, tmp_path: Path
) -> None:
    # The same relay, changing nothing: the exit code 1 above is the verdict's, not the relay's.
    file = tmp_path / "plain.txt"
    file.write_text("hello\n")

    done = upload_cli(stack, api_key, str(file), "--wait", "--output", "json", api=relay_url(relay))

    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)[0]["status"] == "ACCEPTED"
