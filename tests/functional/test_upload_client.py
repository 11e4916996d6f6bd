"""The upload client over real HTTP, against a fake upload API and fake S3 on 127.0.0.1.

``FakeService`` is an ``http.server`` in a thread that plays both the upload API (``/api/...``)
and the presigned-URL target (``/s3/...``). It answers the way the real API does (a PUT plan
up to its threshold, a MULTIPART plan above it, part URLs signed for the SHA-256 the client
gives, in pages), checks a PUT's body against its ``x-amz-checksum-sha256`` as S3 does (400
BadDigest), can be told to fail given requests with given statuses or to find given parts
damaged on the way, and records every request it served: method, path, headers as sent, the
body's size and SHA-256 (bodies are hashed as they stream in, never kept whole). Tests assert on
those records and on what the client returns; the client's internals are not patched. Backoff
goes through an injected sleep that records the delays and does not wait.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from filegate.errors import UploadClientError
from filegate.uploads.client import MiB, TransferConfig, UploadClient

UPLOAD_ID = "up-" + "a" * 26
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # the client's clock, unless a test moves it
S3_BAD_DIGEST = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>BadDigest</Code>'
    b"<Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>"
)
S3_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>900</X-Amz-Expires></Error>"
)
API_KEY = "fg_p1_secret"
READ_BYTES = 256 * 1024  # how much the fake server reads from a body at once
FILEGATE = Path(sys.executable).parent / "filegate"


@dataclass(frozen=True)
class Seen:
    """One request the fake service served."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    json: Any = None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class FakeService:
    """The fake API + S3: its plan rules, the failures to inject, and what it saw."""

    base: str = ""
    threshold: int = 64 * 1024
    part_size: int = 64 * 1024
    status: str = "PENDING"
    expires_at: datetime = NOW + timedelta(minutes=15)  # the plan's URLs and declaration
    refreshed_until: datetime = NOW + timedelta(minutes=30)  # what POST .../parts gives
    after_put: Callable[[str], None] = lambda path: None  # told of each part or file received
    on_sign: Callable[[dict[str, Any]], None] = lambda body: None  # told of each signing
    damaged: dict[str, int] = field(default_factory=dict)  # PUT path -> times to say BadDigest
    signed: set[int] = field(default_factory=set)  # parts that have a URL
    seen: list[Seen] = field(default_factory=list)
    failures: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    retry_after: str | None = None  # the Retry-After of an injected 429, as a quota sends it
    expired: dict[str, int] = field(default_factory=dict)  # PUT path -> times to say expired
    declared_size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, path: str, *statuses: int) -> None:
        """Answer the next requests to ``method path`` with these statuses, in order."""
        self.failures[(method, path)] = list(statuses)

    def fail_always(self, method: str, path: str, status: int) -> None:
        self.fail(method, path, *[status] * 100)

    def refuse_as_expired(self, path: str, times: int = 1) -> None:
        """Answer the next PUTs to ``path`` as S3 answers an expired presigned URL."""
        self.expired[path] = times

    def damage(self, path: str, times: int = 1) -> None:
        """The next PUTs to ``path`` arrive damaged: S3 answers BadDigest."""
        self.damaged[path] = times

    def says_damaged(self, path: str) -> bool:
        with self.lock:
            if self.damaged.get(path, 0) <= 0:
                return False
            self.damaged[path] -= 1
            return True

    def says_expired(self, path: str) -> bool:
        with self.lock:
            if self.expired.get(path, 0) <= 0:
                return False
            self.expired[path] -= 1
            return True

    def injected(self, method: str, path: str) -> int | None:
        with self.lock:
            queue = self.failures.get((method, path))
            return queue.pop(0) if queue else None

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def requests(self, method: str, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method and s.path == path]

    def plan(self, declaration: dict[str, Any]) -> dict[str, Any]:
        head = {
            "upload_id": UPLOAD_ID,
            "key": f"p1/{UPLOAD_ID}/{declaration['filename']}",
            "status": "PENDING",
            "expires_at": stamp(self.expires_at),
        }
        size = declaration["size"]
        if size <= self.threshold:
            if "sha256" not in declaration:
                return {"error": {"code": "invalid_request", "message": "sha256 is required",
                                  "field": "sha256"}}  # fmt: skip
            headers = {
                "Content-Type": declaration["content_type"],
                "Content-Length": str(size),
                "x-amz-checksum-sha256": checksum_of_hex(declaration["sha256"]),
                "x-amz-sdk-checksum-algorithm": "SHA256",
                "x-amz-server-side-encryption": "AES256",
            }
            return {**head, "method": "PUT", "url": f"{self.base}/s3/object", "headers": headers}
        return {**head, "method": "MULTIPART", **self._parts(size)}

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /uploads/{id}/parts: the parts asked for, each URL binding the
        SHA-256 given for it; a part's first URL is /s3/part/N (expiring with the plan), the
        next ones /s3/fresh/N (``refreshed_until``)."""
        checksums = {p["part_number"]: p["checksum_sha256"] for p in document["parts"]}
        parts, fresh = [], bool(self.signed & set(checksums)) or not checksums
        for part in self._part_list(self.declared_size):
            number = part["part_number"]
            if number in checksums:
                where = "fresh" if number in self.signed else "part"
                part["url"] = f"{self.base}/s3/{where}/{number}"
                part["headers"]["x-amz-checksum-sha256"] = checksums[number]
                parts.append(part)
        self.signed |= set(checksums)
        return {
            "upload_id": UPLOAD_ID,
            "status": "PENDING",
            "expires_at": stamp(self.refreshed_until if fresh else self.expires_at),
            "parts": parts,
        }

    def _part_list(self, size: int) -> list[dict[str, Any]]:
        offsets = range(0, size, self.part_size)
        return [
            {
                "part_number": number,
                "offset": offset,
                "size": min(self.part_size, size - offset),
                "headers": {"Content-Length": str(min(self.part_size, size - offset))},
            }
            for number, offset in enumerate(offsets, start=1)
        ]

    def _parts(self, size: int) -> dict[str, Any]:
        self.declared_size = size
        return {
            "part_size": self.part_size,
            "part_count": len(range(0, size, self.part_size)),
            "sign_parts": {"method": "POST", "path": f"/uploads/{UPLOAD_ID}/parts"},
            "complete": {"method": "POST", "path": f"/uploads/{UPLOAD_ID}/complete"},
            "abort": {"method": "POST", "path": f"/uploads/{UPLOAD_ID}/abort"},
        }

    def view(self) -> dict[str, Any]:
        return {"upload_id": UPLOAD_ID, "status": self.status, "reason": "sha256 differs"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3's pool expects
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the records are the log."""

    def _serve(self) -> None:
        fake = self.server.fake
        size, digest, body = self._drain()
        document = json.loads(body) if body and self.path.startswith("/api/") else None
        fake.record(
            Seen(self.command, self.path, tuple(self.headers.items()), size, digest, document)
        )
        status = fake.injected(self.command, self.path)
        if status is not None:
            error = {"code": "injected", "message": f"injected {status}"}
            quota = status == 429 and fake.retry_after
            self._answer(
                status, {"error": error}, {"Retry-After": fake.retry_after} if quota else None
            )
        elif self.command == "PUT" and fake.says_expired(self.path):
            self._answer(HTTPStatus.FORBIDDEN, None, raw=S3_EXPIRED)
        elif self.command == "PUT" and (
            fake.says_damaged(self.path) or not _matches(self.headers, digest)
        ):
            self._answer(HTTPStatus.BAD_REQUEST, None, raw=S3_BAD_DIGEST)
        elif self.command == "PUT":
            fake.after_put(self.path)  # before answering: the client goes on once answered
            etag = '"etag-' + self.path.rsplit("/", 1)[-1] + '"'
            self._answer(HTTPStatus.OK, None, {"ETag": etag})
        elif self.command == "POST" and self.path == "/api/uploads":
            plan = fake.plan(document)
            self._answer(HTTPStatus.BAD_REQUEST if "error" in plan else HTTPStatus.CREATED, plan)
        elif self.command == "POST" and self.path == f"/api/uploads/{UPLOAD_ID}/parts":
            fake.on_sign(document)
            self._answer(HTTPStatus.OK, fake.sign(document))
        else:
            self._answer(HTTPStatus.OK, fake.view())

    def _drain(self) -> tuple[int, str, bytes]:
        """Read the body in bounded reads; keep it only for the API (JSON; a page of 1,000
        part numbers and checksums is ~80 KB), hash it always."""
        left = int(self.headers.get("Content-Length") or 0)
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        while left:
            chunk = self.rfile.read(min(READ_BYTES, left))
            if not chunk:
                break
            digest.update(chunk)
            size, left = size + len(chunk), left - len(chunk)
            if self.path.startswith("/api/"):
                kept += chunk
        return size, digest.hexdigest(), bytes(kept)

    def _answer(
        self,
        status: int,
        document: Any,
        headers: dict[str, str] | None = None,
        raw: bytes = b"",
    ) -> None:
        body = raw if document is None else json.dumps(document).encode()
        self.send_response(status)
        for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


def _matches(headers: Any, digest: str) -> bool:
    """S3's check: the body's SHA-256 is the one its (part) URL binds, when it binds one."""
    declared = headers.get("x-amz-checksum-sha256")
    return declared is None or declared == checksum_of_hex(digest)


def checksum_of_hex(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeService


@pytest.fixture
def fake() -> Iterator[FakeService]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeService(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Sleeps:
    """The injected sleep: records each delay, waits for none."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Progress:
    """A progress subscriber that keeps every report."""

    reports: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_progress(self, bytes_transferred: int) -> None:
        with self.lock:
            self.reports.append(bytes_transferred)


@dataclass
class Clock:
    """The injected clock: stands still until a test moves it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def make_client(
    fake: FakeService, sleeps: Sleeps | None = None, clock: Clock | None = None, **config: Any
) -> UploadClient:
    settings = {
        "max_attempts": 3,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.04,
        # The client's guess of the API's threshold: right, unless a test says otherwise.
        "hash_first_bytes": fake.threshold,
    }
    return UploadClient(
        f"{fake.base}/api",
        API_KEY,
        TransferConfig(**{**settings, **config}),
        sleep=sleeps or Sleeps(),
        clock=clock or Clock(),
    )


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checksum(data: bytes) -> str:
    """The SHA-256 as S3's x-amz-checksum-sha256 carries it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --- single PUT ----------------------------------------------------------------------------


def test_a_single_put_sends_the_plans_headers_and_the_files_bytes(
    fake: FakeService, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "report.csv", 10_000)

    result = make_client(fake).upload(tmp_path / "report.csv")

    (declared,) = fake.requests("POST", "/api/uploads")
    assert declared.json == {
        "filename": "report.csv",
        "size": 10_000,
        "sha256": sha256(data),
        "content_type": "text/csv",
    }
    assert declared.header_values("x-api-key") == [API_KEY]
    (put,) = fake.requests("PUT", "/s3/object")
    plan = fake.plan(declared.json)
    for name, value in plan["headers"].items():
        assert set(put.header_values(name)) == {value}, name
    assert (put.size, put.sha256) == (len(data), sha256(data))
    assert (result.method, result.status, result.sha256) == ("PUT", "PENDING", sha256(data))
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete") == []


def test_each_of_the_plans_headers_is_sent_once(fake: FakeService, tmp_path: Path) -> None:
    write_random(tmp_path / "a.bin", 1000)

    make_client(fake).upload(tmp_path / "a.bin")

    (put,) = fake.requests("PUT", "/s3/object")
    names = [name.lower() for name, _ in put.headers]
    assert names.count("content-length") == 1


# --- multipart -----------------------------------------------------------------------------


def test_multipart_sends_each_parts_byte_range_and_completes_with_the_etags_in_order(
    fake: FakeService, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "big.bin", 5 * fake.part_size + 123)

    result = make_client(fake, max_concurrency=4).upload(tmp_path / "big.bin")

    assert result.method == "MULTIPART"
    (declared,) = fake.requests("POST", "/api/uploads")
    assert "sha256" not in declared.json  # given at completion: the file is read once
    slices = [
        data[offset : offset + fake.part_size] for offset in range(0, len(data), fake.part_size)
    ]
    for number, expected in enumerate(slices, start=1):
        (sent,) = fake.requests("PUT", f"/s3/part/{number}")
        assert (sent.size, sent.sha256) == (len(expected), sha256(expected))
        assert sent.header_values("Content-Length")[0] == str(len(expected))
        assert sent.header_values("x-amz-checksum-sha256") == [checksum(expected)]
    (complete,) = fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")
    assert complete.json == {
        "parts": [
            {"part_number": n, "etag": f"etag-{n}", "checksum_sha256": checksum(slices[n - 1])}
            for n in range(1, 7)
        ],
        "sha256": sha256(data),
    }
    assert result.sha256 == sha256(data)
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort") == []


def test_a_part_that_fails_twice_with_503_is_retried_and_the_upload_completes(
    fake: FakeService, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.fail("PUT", "/s3/part/2", 503, 503)

    make_client(fake, max_attempts=3).upload(tmp_path / "big.bin")

    attempts = fake.requests("PUT", "/s3/part/2")
    assert len(attempts) == 3
    part = data[fake.part_size : 2 * fake.part_size]
    assert all((a.size, a.sha256) == (len(part), sha256(part)) for a in attempts)
    assert len(fake.requests("PUT", "/s3/part/1")) == len(fake.requests("PUT", "/s3/part/3")) == 1
    (complete,) = fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")
    assert [p["etag"] for p in complete.json["parts"]] == ["etag-1", "etag-2", "etag-3"]


@pytest.mark.parametrize("status", [503, 500, 429])
def test_a_part_that_always_fails_raises_and_the_upload_is_aborted(
    fake: FakeService, tmp_path: Path, status: int
) -> None:
    write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.fail_always("PUT", "/s3/part/2", status)

    with pytest.raises(UploadClientError) as raised:
        make_client(fake, max_attempts=4).upload(tmp_path / "big.bin")

    assert "failed 4 times" in str(raised.value)
    assert f"HTTP {status}" in str(raised.value)
    assert len(fake.requests("PUT", "/s3/part/2")) == 4
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort")) == 1
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete") == []


def test_a_part_refused_with_a_4xx_is_not_retried_and_the_upload_is_aborted(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.fail_always("PUT", "/s3/part/3", 403)

    with pytest.raises(UploadClientError, match="HTTP 403"):
        make_client(fake, max_attempts=4).upload(tmp_path / "big.bin")

    assert len(fake.requests("PUT", "/s3/part/3")) == 1
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort")) == 1


# --- URLs that expire before a large file is sent ------------------------------------------

PARTS_PATH = f"/api/uploads/{UPLOAD_ID}/parts"


def paths_of(fake: FakeService, method: str) -> list[str]:
    return [seen.path for seen in fake.seen if seen.method == method]


def test_part_urls_are_asked_for_in_pages_as_large_as_the_api_allows_each_with_its_sha256(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN a file of 1,200 parts (of 1 KiB): more than one page of part URLs (the API's page
    # limit is 1,000), all within how far the client hashes ahead of sending
    fake.threshold, fake.part_size = 1024, 1024
    data = write_random(tmp_path / "big.bin", 1200 * fake.part_size)

    make_client(fake, max_concurrency=1).upload(tmp_path / "big.bin")

    # THEN the URLs came in few pages, the largest a full page of 1,000 parts (the parts hashed
    # ahead, not a pool of parts held in memory, bound a page), each part asked for once, each
    # bound to its part's SHA-256
    pages = [r.json["parts"] for r in fake.requests("POST", PARTS_PATH)]
    assert 2 <= len(pages) <= 3
    assert max(len(page) for page in pages) == 1000
    asked = sorted(p["part_number"] for page in pages for p in page)
    assert asked == list(range(1, 1201))
    checksums = {p["part_number"]: p["checksum_sha256"] for page in pages for p in page}
    for number in (1, 1000, 1001, 1200):
        part = data[(number - 1) * fake.part_size :][: fake.part_size]
        assert checksums[number] == checksum(part)
    assert paths_of(fake, "PUT") == [f"/s3/part/{n}" for n in range(1, 1201)]
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")) == 1


def test_parts_whose_urls_are_about_to_expire_are_signed_again_before_they_are_sent(
    fake: FakeService, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "big.bin", 3 * fake.part_size)
    clock = Clock()

    def slow_link(path: str) -> None:
        if path == "/s3/part/1":  # the first part took 14.5 of the URLs' 15 minutes
            clock.now = NOW + timedelta(minutes=14, seconds=30)

    fake.after_put = slow_link

    make_client(fake, clock=clock, max_concurrency=1).upload(tmp_path / "big.bin")

    # (a keep-alive, an empty list of parts, may also be sent while part 1's bytes flow)
    _, again = [r for r in fake.requests("POST", PARTS_PATH) if r.json["parts"]]
    assert again.json == {
        "parts": [
            {
                "part_number": n,
                "checksum_sha256": checksum(data[(n - 1) * fake.part_size :][: fake.part_size]),
            }
            for n in (2, 3)
        ]
    }
    assert paths_of(fake, "PUT") == ["/s3/part/1", "/s3/fresh/2", "/s3/fresh/3"]
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")) == 1
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort") == []


def test_a_part_refused_as_expired_is_signed_again_and_sent_again(
    fake: FakeService, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.refuse_as_expired("/s3/part/2")

    make_client(fake, max_concurrency=1).upload(tmp_path / "big.bin")

    _, again = fake.requests("POST", PARTS_PATH)
    part = data[fake.part_size : 2 * fake.part_size]
    assert again.json == {"parts": [{"part_number": 2, "checksum_sha256": checksum(part)}]}
    assert paths_of(fake, "PUT") == ["/s3/part/1", "/s3/part/2", "/s3/fresh/2", "/s3/part/3"]
    (sent,) = fake.requests("PUT", "/s3/fresh/2")
    assert sent.sha256 == sha256(part)
    (complete,) = fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")
    assert [p["etag"] for p in complete.json["parts"]] == ["etag-1", "etag-2", "etag-3"]


def test_the_upload_is_kept_alive_before_completing_when_its_expiry_is_near(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "big.bin", 3 * fake.part_size)
    clock = Clock()

    def slow_link(path: str) -> None:
        if path == "/s3/part/3":  # the last part took 14.5 minutes
            clock.now = NOW + timedelta(minutes=14, seconds=30)

    fake.after_put = slow_link

    make_client(fake, clock=clock, max_concurrency=1).upload(tmp_path / "big.bin")

    _, keep_alive = fake.requests("POST", PARTS_PATH)
    assert keep_alive.json == {"parts": []}
    posts = paths_of(fake, "POST")
    assert posts.index(PARTS_PATH) < posts.index(f"/api/uploads/{UPLOAD_ID}/complete")


def test_a_client_clock_far_ahead_costs_no_refresh_loop(fake: FakeService, tmp_path: Path) -> None:
    write_random(tmp_path / "big.bin", 3 * fake.part_size)

    make_client(fake, clock=Clock(NOW + timedelta(days=1)), max_concurrency=1).upload(
        tmp_path / "big.bin"
    )

    assert len(fake.requests("POST", PARTS_PATH)) == 1
    assert paths_of(fake, "PUT") == ["/s3/part/1", "/s3/part/2", "/s3/part/3"]
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")) == 1


def test_a_signing_refused_with_409_fails_the_upload_and_aborts_it(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.fail_always("POST", PARTS_PATH, 409)

    with pytest.raises(UploadClientError, match="409") as raised:
        make_client(fake, max_concurrency=1).upload(tmp_path / "big.bin")

    assert raised.value.status == 409
    assert paths_of(fake, "PUT") == []
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort")) == 1


# --- parts S3 refuses for their checksum (BadDigest) ---------------------------------------


def test_a_part_s3_refuses_for_its_checksum_is_read_and_sent_again(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN part 2 damaged on its way to S3 once
    data = write_random(tmp_path / "big.bin", 3 * fake.part_size)
    fake.damage("/s3/part/2")

    make_client(fake, max_attempts=3, max_concurrency=1).upload(tmp_path / "big.bin")

    # THEN it was read from the file and sent again, with the same checksum, and completed
    part = data[fake.part_size : 2 * fake.part_size]
    first, second = fake.requests("PUT", "/s3/part/2")
    assert (first.sha256, second.sha256) == (sha256(part), sha256(part))
    assert second.header_values("x-amz-checksum-sha256") == [checksum(part)]
    (complete,) = fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete")
    assert complete.json["parts"][1]["checksum_sha256"] == checksum(part)
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort") == []


def test_a_part_changed_on_disk_between_its_hashing_and_its_sending_gives_up_and_aborts(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN a file whose first part is rewritten once it was hashed (its URL asked for): the
    # client keeps only digests, and reads a part from the file when it sends it
    path = tmp_path / "big.bin"
    write_random(path, 3 * fake.part_size)
    fake.on_sign = lambda _: _rewrite(path, 10)

    # WHEN it is uploaded
    with pytest.raises(UploadClientError) as raised:
        make_client(fake, max_attempts=3, max_concurrency=1).upload(path)

    # THEN S3 refused part 1 three times, the error names the file and the part, and the
    # multipart upload was aborted, never completed
    message = str(raised.value)
    assert f"part 1 of {path} failed 3 times" in message
    assert "BadDigest" in message
    assert "aborted" in message
    assert len(fake.requests("PUT", "/s3/part/1")) == 3
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort")) == 1
    assert fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/complete") == []


def _rewrite(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"written meanwhile")


def test_the_cli_names_the_part_that_keeps_failing_its_checksum_and_exits_2(
    fake: FakeService, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    write_random(path, 3 * fake.part_size)
    fake.damage("/s3/part/2", times=100)

    done = subprocess.run(
        [str(FILEGATE), "upload", str(path), "--api", f"{fake.base}/api"],
        capture_output=True,
        text=True,
        env={**os.environ, "FILEGATE_API_KEY": API_KEY, "NO_COLOR": "1", "COLUMNS": "500"},
        timeout=120,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert f"part 2 of {path}" in done.stderr
    assert "BadDigest" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(fake.requests("POST", f"/api/uploads/{UPLOAD_ID}/abort")) == 1


# --- the API's answers ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415])
def test_a_4xx_from_the_api_is_not_retried_and_the_error_names_the_status(
    fake: FakeService, tmp_path: Path, status: int
) -> None:
    write_random(tmp_path / "a.bin", 100)
    fake.fail("POST", "/api/uploads", status)

    with pytest.raises(UploadClientError) as raised:
        make_client(fake, max_attempts=5).upload(tmp_path / "a.bin")

    assert raised.value.status == status
    assert f"answered {status}: injected {status}" in str(raised.value)
    assert len(fake.requests("POST", "/api/uploads")) == 1
    assert [s for s in fake.seen if s.method == "PUT"] == []


def test_a_quota_429_that_resets_after_the_longest_backoff_fails_at_once_with_its_message(
    fake: FakeService, tmp_path: Path
) -> None:
    # A daily quota answers Retry-After: the seconds to the next UTC day (docs/quotas.md).
    write_random(tmp_path / "a.bin", 100)
    fake.retry_after = "3600"
    fake.fail("POST", "/api/uploads", 429, 429, 429)

    with pytest.raises(UploadClientError) as raised:
        make_client(fake, max_attempts=5).upload(tmp_path / "a.bin")

    assert raised.value.status == 429
    assert "answered 429: injected 429" in str(raised.value)
    assert len(fake.requests("POST", "/api/uploads")) == 1


def test_a_429_that_resets_within_the_backoff_is_retried(fake: FakeService, tmp_path: Path) -> None:
    # The rate's window is one second (Retry-After: 1).
    write_random(tmp_path / "a.bin", 100)
    fake.retry_after = "1"
    fake.fail("POST", "/api/uploads", 429)

    result = make_client(fake, max_attempts=3).upload(tmp_path / "a.bin")

    assert result.upload_id == UPLOAD_ID
    assert len(fake.requests("POST", "/api/uploads")) == 2


def test_a_5xx_from_the_api_is_retried(fake: FakeService, tmp_path: Path) -> None:
    write_random(tmp_path / "a.bin", 100)
    fake.fail("POST", "/api/uploads", 502, 503)

    result = make_client(fake, max_attempts=3).upload(tmp_path / "a.bin")

    assert result.upload_id == UPLOAD_ID
    assert len(fake.requests("POST", "/api/uploads")) == 3
    assert len(fake.requests("PUT", "/s3/object")) == 1


def test_wait_polls_until_a_final_status_and_returns_the_reason(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "a.bin", 100)
    client = make_client(fake)
    result = client.upload(tmp_path / "a.bin")
    fake.status = "REJECTED"

    final = client.wait(result, timeout=5)

    assert (final.status, final.reason, final.accepted) == ("REJECTED", "sha256 differs", False)


def test_wait_goes_on_past_expired_until_the_late_event_judges_the_upload(
    fake: FakeService, tmp_path: Path
) -> None:
    # The declaration was marked EXPIRED while the object's event was still on its way; the
    # ingestion judges by S3's eventTime and the verdict comes after.
    write_random(tmp_path / "a.bin", 100)
    client = make_client(fake, lambda _seconds: setattr(fake, "status", "ACCEPTED"))
    result = client.upload(tmp_path / "a.bin")
    fake.status = "EXPIRED"

    final = client.wait(result, timeout=5)

    assert final.status == "ACCEPTED"


# --- backoff and progress ------------------------------------------------------------------


def test_backoff_goes_through_the_injected_sleep_grows_and_stays_under_the_maximum(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "a.bin", 100)
    fake.fail_always("PUT", "/s3/object", 503)
    sleeps = Sleeps()
    client = make_client(
        fake, sleeps, max_attempts=6, backoff_base_seconds=0.01, backoff_max_seconds=0.04
    )

    with pytest.raises(UploadClientError, match="failed 6 times"):
        client.upload(tmp_path / "a.bin")

    ceilings = [0.01, 0.02, 0.04, 0.04, 0.04]  # base * 2**n, capped at backoff_max
    assert len(sleeps.delays) == len(ceilings)
    for delay, ceiling in zip(sleeps.delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert sleeps.delays[:3] == sorted(sleeps.delays[:3])
    assert max(sleeps.delays) <= 0.04


def test_progress_adds_up_to_the_file_size_even_after_a_retried_part(
    fake: FakeService, tmp_path: Path
) -> None:
    write_random(tmp_path / "big.bin", 4 * fake.part_size + 7)
    fake.fail("PUT", "/s3/part/3", 503)
    progress = Progress()

    make_client(fake).upload(tmp_path / "big.bin", subscriber=progress)

    assert len(fake.requests("PUT", "/s3/part/3")) == 2
    assert -fake.part_size in progress.reports  # the failed attempt is taken back whole
    assert sum(progress.reports) == 4 * fake.part_size + 7


def test_parts_are_read_and_sent_in_blocks_of_chunk_bytes_not_8_kib(
    fake: FakeService, tmp_path: Path
) -> None:
    # GIVEN parts of 3 MiB and a client reading 1 MiB at a time
    data = write_random(tmp_path / "big.bin", 6 * MiB + 5)
    fake.threshold, fake.part_size = MiB, 3 * MiB
    progress = Progress()

    # WHEN it is uploaded
    make_client(fake, chunk_bytes=MiB).upload(tmp_path / "big.bin", subscriber=progress)

    # THEN each part went out in whole 1 MiB blocks (http.client alone would read 8 KiB ones)
    assert sorted(progress.reports) == [5] + [MiB] * 6
    parts = [fake.requests("PUT", f"/s3/part/{n}")[0] for n in (1, 2, 3)]
    assert [p.sha256 for p in parts] == [
        sha256(data[: 3 * MiB]),
        sha256(data[3 * MiB : 6 * MiB]),
        sha256(data[6 * MiB :]),
    ]


# --- memory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "part_size", "limit"),
    [
        (256 * MiB, 50 * MiB, 32 * MiB),
        (64 * MiB, 50 * MiB, 32 * MiB),
        (64 * MiB, 8 * MiB, 32 * MiB),
    ],
    ids=["single-put", "multipart-parts-of-50-mib", "multipart-parts-of-8-mib"],
)
def test_a_200_mib_file_goes_through_in_bounded_memory(
    fake: FakeService, tmp_path: Path, threshold: int, part_size: int, limit: int
) -> None:
    # GIVEN a sparse 200 MiB file (zeros): one PUT, or a plan of parts of 50 MiB, or of 8 MiB
    # (as S3's rule gives up to 78 GiB); the client hashes up to 512 MiB ahead of sending but
    # keeps only digests: a part is read from the file again when sent
    path = tmp_path / "huge.bin"
    with path.open("wb") as handle:
        handle.truncate(200 * MiB)
    fake.threshold, fake.part_size = threshold, part_size
    progress = Progress()
    chunk = MiB

    # WHEN it is uploaded with Python's allocations traced (client and fake server alike)
    tracemalloc.start()
    try:
        make_client(fake, chunk_bytes=chunk, max_concurrency=4).upload(path, subscriber=progress)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN every byte arrived, no read took more than chunk_bytes, and the peak stayed under
    # the limit: blocks being hashed and sent, whatever the part's or the file's size
    puts = [s for s in fake.seen if s.method == "PUT"]
    assert sum(s.size for s in puts) == 200 * MiB
    assert max(progress.reports) <= chunk
    assert peak < limit, f"peak traced memory {peak / MiB:.1f} MiB"


# --- the CLI -------------------------------------------------------------------------------


def test_the_cli_exits_2_naming_a_missing_file_and_sends_nothing(
    fake: FakeService, tmp_path: Path
) -> None:
    present = tmp_path / "present.txt"
    present.write_text("here")
    missing = tmp_path / "missing.txt"

    done = subprocess.run(
        [str(FILEGATE), "upload", str(present), str(missing), "--api", f"{fake.base}/api"],
        capture_output=True,
        text=True,
        env={**os.environ, "FILEGATE_API_KEY": API_KEY, "NO_COLOR": "1", "COLUMNS": "500"},
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert str(missing) in done.stderr
    assert str(present) not in done.stderr
    assert fake.seen == []


def test_the_cli_with_wait_exits_1_when_a_file_is_rejected_and_reports_the_reason(
    fake: FakeService, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_text("id,amount\n1,100\n")
    fake.status = "REJECTED"

    done = subprocess.run(
        [
            str(FILEGATE),
            "upload",
            str(path),
            "--wait",
            "--output",
            "json",
            "--api",
            fake.base + "/api",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "FILEGATE_API_KEY": API_KEY, "NO_COLOR": "1", "COLUMNS": "500"},
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    (result,) = json.loads(done.stdout)
    assert (result["status"], result["reason"]) == ("REJECTED", "sha256 differs")
