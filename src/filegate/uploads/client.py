"""The partner-side upload client: hash, declare, upload, and read the ledger's verdict.

For each file: the whole file's SHA-256 and each part's (at the part size S3's limits give,
``filegate.parts``) while reading it once, ``POST /uploads`` to declare it, then either one
presigned PUT or the multipart plan's parts in parallel (each part's URL signed for its SHA-256,
each part streamed from its offset in the file, so memory stays constant whatever the size),
``complete`` with every part's ETag and SHA-256, and with ``wait`` the ledger's verdict. Failed
requests and parts are retried with exponential backoff and jitter, except a 429 whose
Retry-After is longer than 5 s (a partner quota, docs/quotas.md), which fails at once with the
API's message naming the quota. A part S3 refuses because
its bytes do not match its SHA-256 (BadDigest: corrupted on the way, or the file changed since
it was hashed) is read and sent again, up to ``max_attempts`` times; then the client gives up
with an error naming the file and the part. A multipart upload that fails for good is aborted.
A part whose URL is about to expire (or that S3 refused as expired) is signed again through the
API first (``part_urls``), which also keeps the declaration alive while a large file is still on
its way. Progress reaches a subscriber as
s3transfer's does: ``on_progress(bytes_transferred)`` (negative when a retried part starts over).
Given a ``ResumeStore`` (``filegate.uploads.resume``), a multipart upload's state is kept while
it is on its way, and the same file uploaded again sends only the parts S3 does not hold yet; a
Ctrl-C (KeyboardInterrupt) leaves the multipart upload open and its state in place, and the part
senders are daemon threads that start no further part, so the process exits at once.
This module runs on partners' machines: it never imports the AWS SDK.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urljoin

import urllib3

from filegate.errors import ConfigError, UploadClientError
from filegate.parts import MAX_OBJECT_SIZE, part_size_for
from filegate.uploads.digests import FileDigests, file_digests
from filegate.uploads.part_urls import Clock, PartUrls
from filegate.uploads.resume import Continue, FileIdentity, Finished, Resumer, ResumeStore

MiB = 1024 * 1024
FINAL_STATUSES = frozenset({"ACCEPTED", "REJECTED", "EXPIRED", "ABORTED"})
# Once the bytes are in S3, EXPIRED is not the last word: the ingestion judges an upload by
# when S3 says the object arrived, so an event delivered late (after the declaration was marked
# EXPIRED) still turns it ACCEPTED or REJECTED. A client that sent its file waits for that.
VERDICT_STATUSES = FINAL_STATUSES - {"EXPIRED"}
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Seconds: a 429 asking to wait longer than this is not retried (see _beyond_backoff).
_LONGEST_RETRY_AFTER = 5.0
# How S3 refuses a presigned request that came too late: past X-Amz-Expires (403), or past the
# signing credentials' session (400).
_EXPIRED_SIGNATURES = (b"Request has expired", b"<Code>ExpiredToken</Code>")
# How S3 refuses a body that does not match the checksum its URL binds.
_BAD_DIGEST = b"<Code>BadDigest</Code>"


@dataclass(frozen=True)
class TransferConfig:
    """How the client transfers: parallel parts, attempts, backoff, buffer size."""

    max_concurrency: int = 4
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    chunk_bytes: int = MiB
    timeout_seconds: float = 120.0
    refresh_margin_seconds: float = 60.0

    def __post_init__(self) -> None:
        checks = {
            "max_concurrency": 1 <= self.max_concurrency <= 64,
            "max_attempts": 1 <= self.max_attempts <= 20,
            "backoff_base_seconds": self.backoff_base_seconds >= 0,
            "chunk_bytes": 64 * 1024 <= self.chunk_bytes <= 64 * MiB,
            "timeout_seconds": self.timeout_seconds > 0,
            "refresh_margin_seconds": self.refresh_margin_seconds >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"transfer setting {name}={getattr(self, name)} is out of range")


class ProgressSubscriber(Protocol):
    def on_progress(self, bytes_transferred: int) -> None: ...


@dataclass(frozen=True)
class UploadResult:
    """What happened to one file: its declaration, and the ledger's status when known."""

    path: Path
    upload_id: str
    key: str
    size: int
    sha256: str
    method: str
    status: str
    reason: str | None = None
    resumed_bytes: int = 0  # bytes S3 already held from an earlier, interrupted run

    @property
    def accepted(self) -> bool:
        return self.status == "ACCEPTED"


@dataclass
class _Counter:
    """Bytes sent, for progress, thread-safe."""

    subscriber: ProgressSubscriber | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        if self.subscriber is not None and count:
            with self.lock:
                self.subscriber.on_progress(count)


class _FileSlice:
    """A read-only window [offset, offset + size) of a file, streamed in chunks.

    urllib3 gets ``chunks()``, not the slice: given a file-like body, http.client reads and
    sends it 8 KiB at a time, 131,072 reads and sends per GiB (twice the client's CPU).
    """

    def __init__(
        self, path: Path, offset: int, size: int, chunk_bytes: int, on_read: Callable[[int], None]
    ) -> None:
        self._file: BinaryIO = path.open("rb")
        self._file.seek(offset)
        self._left = size
        self._chunk_bytes = chunk_bytes
        self._on_read = on_read

    def chunks(self) -> Iterator[bytes]:
        return iter(lambda: self.read(self._chunk_bytes), b"")

    def read(self, amount: int = -1) -> bytes:
        wanted = self._left if amount is None or amount < 0 else min(amount, self._left)
        data = self._file.read(wanted) if wanted else b""
        self._left -= len(data)
        self._on_read(len(data))
        return data

    def close(self) -> None:
        self._file.close()


def guess_content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class UploadClient:
    """Uploads files through the upload API; see the module docstring."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        config: TransferConfig | None = None,
        http: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        resume: ResumeStore | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("an API key is needed: pass --api-key or set FILEGATE_API_KEY")
        self._api = api_url if api_url.endswith("/") else api_url + "/"
        self._key = api_key
        self._config = config or TransferConfig()
        self._http = http or urllib3.PoolManager(
            maxsize=self._config.max_concurrency + 2, retries=False
        )
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._resumer = Resumer(resume, self._api_call) if resume else None

    def upload(
        self,
        path: Path,
        content_type: str | None = None,
        subscriber: ProgressSubscriber | None = None,
    ) -> UploadResult:
        """Declare and upload one file; the result's status is PENDING until the ledger speaks."""
        size, digests = self._inspect(path)
        sha256 = digests.sha256

        def at(part_size: int) -> FileDigests:
            """The parts' digests at the part size of an upload begun before (read again only
            if the API's rule has changed since)."""
            nonlocal digests
            if part_size != digests.part_size:
                digests = file_digests(path, part_size, self._config.chunk_bytes)
            return digests

        identity = FileIdentity.of(path, sha256)
        resumer = self._resumer
        decision = resumer.decide(path, identity, lambda n: at(n).parts) if resumer else None
        if isinstance(decision, Finished):
            return _finished(path, size, decision.view)
        if isinstance(decision, Continue):
            return self._resume(path, size, decision, at(decision.plan["part_size"]), subscriber)
        declaration = {
            "filename": path.name,
            "size": size,
            "sha256": sha256,
            "content_type": content_type or guess_content_type(path),
        }
        plan = self._api_call("POST", "uploads", declaration)
        counter = _Counter(subscriber)
        if plan["method"] == "MULTIPART":
            if plan["part_size"] != digests.part_size:  # an API with another part-size rule
                digests = file_digests(path, plan["part_size"], self._config.chunk_bytes)
            if self._resumer:
                self._resumer.remember(identity, plan)
            self._multipart(path, plan, digests.parts, counter)
        else:
            self._put(path, _Target(plan["url"], plan["headers"]), (0, size), counter)
        return UploadResult(
            path=path,
            upload_id=plan["upload_id"],
            key=plan["key"],
            size=size,
            sha256=sha256,
            method=plan["method"],
            status=plan.get("status", "PENDING"),
        )

    def _resume(
        self,
        path: Path,
        size: int,
        decision: Continue,
        digests: FileDigests,
        subscriber: ProgressSubscriber | None,
    ) -> UploadResult:
        """Send the parts S3 does not hold yet, then complete with every part."""
        plan, counter = decision.plan, _Counter(subscriber)
        counter.add(decision.resumed_bytes)
        held = {number: etag for number, (etag, _) in decision.held.items()}
        self._multipart(path, plan, digests.parts, counter, held)
        return UploadResult(
            path=path,
            upload_id=plan["upload_id"],
            key=plan["key"],
            size=size,
            sha256=digests.sha256,
            method=plan["method"],
            status="PENDING",
            resumed_bytes=decision.resumed_bytes,
        )

    def status(self, upload_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._api_call("GET", f"uploads/{upload_id}")
        return answer

    def receipt(self, upload_id: str) -> dict[str, Any]:
        """The signed receipt of an ACCEPTED upload, as the API answered it (docs/receipts.md)."""
        answer: dict[str, Any] = self._api_call("GET", f"uploads/{upload_id}/receipt")
        return answer

    def receipt_public_key(self) -> dict[str, Any]:
        """The receipt key's ARN and public key (PEM), from the upload API."""
        answer: dict[str, Any] = self._api_call("GET", "receipts/public-key")
        return answer

    def wait(
        self, result: UploadResult, timeout: float = 60.0, interval: float = 0.5
    ) -> UploadResult:
        """Poll the ledger until the upload has a verdict, or the timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.status(result.upload_id)
            if view["status"] in VERDICT_STATUSES or time.monotonic() >= deadline:
                return UploadResult(
                    **{**result.__dict__, "status": view["status"], "reason": view.get("reason")}
                )
            self._sleep(interval)

    def _inspect(self, path: Path) -> tuple[int, FileDigests]:
        if not path.is_file():
            raise UploadClientError(f"{path} is not a readable file")
        size = path.stat().st_size
        # The part size the API will plan (filegate.parts), so one read gives every digest.
        part_size = part_size_for(size) if 0 < size <= MAX_OBJECT_SIZE else 0
        return size, file_digests(path, part_size, self._config.chunk_bytes)

    def _multipart(
        self,
        path: Path,
        plan: dict[str, Any],
        checksums: dict[int, str],
        counter: _Counter,
        held: dict[int, str] | None = None,
    ) -> None:
        """Send every part not ``held`` (number: ETag) already, then complete with them all."""
        urls = self._part_urls(plan, checksums)
        numbers = list(range(1, int(plan["part_count"]) + 1))
        etags = dict(held or {})
        urls.skip(list(etags))
        try:
            missing = [n for n in numbers if n not in etags]
            sent = in_parallel(
                missing, lambda n: self._part(path, n, urls, counter), self._config.max_concurrency
            )
            etags.update(zip(missing, sent, strict=True))
            parts = [
                {"part_number": n, "etag": etags[n], "checksum_sha256": checksums[n]}
                for n in numbers
            ]
            urls.keep_alive()
            self._api_call("POST", plan["complete"]["path"].lstrip("/"), {"parts": parts})
        except KeyboardInterrupt:
            raise  # left open, its state kept: the same command resumes it
        except UploadClientError as exc:
            self._abort(path, plan)
            raise UploadClientError(
                f"{exc}; the multipart upload {plan['upload_id']} was aborted", status=exc.status
            ) from exc
        except BaseException:
            self._abort(path, plan)
            raise
        if self._resumer:
            self._resumer.forget(path)

    def _part_urls(self, plan: dict[str, Any], checksums: dict[int, str]) -> PartUrls:
        path = f"uploads/{plan['upload_id']}/parts"

        def ask(numbers: list[int]) -> dict[str, Any]:
            wanted = [{"part_number": n, "checksum_sha256": checksums[n]} for n in numbers]
            answer: dict[str, Any] = self._api_call("POST", path, {"parts": wanted})
            return answer

        return PartUrls(plan, ask, self._clock, self._config.refresh_margin_seconds)

    def _part(self, path: Path, number: int, urls: PartUrls, counter: _Counter) -> str:
        part = urls.for_sending(number)
        target = _Target(part["url"], part["headers"], lambda: urls.after_expired(number))
        what = f"part {number} of {path}"
        return self._put(
            path, target, (part["offset"], part["size"]), counter, urls.keep_alive, what
        )

    def _abort(self, path: Path, plan: dict[str, Any]) -> None:
        # If even the abort fails, the bucket's lifecycle rule removes the parts after 7 days.
        with contextlib.suppress(UploadClientError):
            self._api_call("POST", plan["abort"]["path"].lstrip("/"), {})
        if self._resumer:
            self._resumer.forget(path)

    def _put(
        self,
        path: Path,
        target: _Target,
        window: tuple[int, int],
        counter: _Counter,
        on_chunk: Callable[[], None] = lambda: None,
        what: str | None = None,
    ) -> str:
        """PUT [offset, offset + size) of the file to a presigned URL; return the ETag. Each
        attempt reads the bytes from the file again (after a BadDigest too)."""
        offset, size = window
        for attempt in self._attempts(what or f"upload of {path}"):
            sent = 0

            def on_read(count: int) -> None:
                nonlocal sent
                sent += count
                counter.add(count)
                on_chunk()

            body = _FileSlice(path, offset, size, self._config.chunk_bytes, on_read)
            try:
                response = self._http.request(
                    "PUT",
                    target.url,
                    body=body.chunks(),
                    headers=_with_length(target.headers, size),
                    timeout=self._config.timeout_seconds,
                    preload_content=True,
                )
            except urllib3.exceptions.HTTPError as exc:
                attempt.failed(str(exc))
                counter.add(-sent)
                continue
            finally:
                body.close()
            if response.status in _RETRYABLE_STATUSES or target.renewed(response):
                attempt.failed(f"HTTP {response.status}")
                counter.add(-sent)
                continue
            if response.status == 400 and _BAD_DIGEST in response.data:
                attempt.failed(
                    "S3 refused its bytes (BadDigest): they did not match the SHA-256 computed"
                    " when the file was read; is the file being written while it is uploaded?"
                )
                counter.add(-sent)
                continue
            if response.status >= 400:
                raise UploadClientError(
                    f"S3 refused the upload of {path.name}: HTTP {response.status}"
                    f" {response.data[:300].decode('utf-8', 'replace')}",
                    status=response.status,
                )
            return str(response.headers.get("ETag", "")).strip('"')
        raise AssertionError("unreachable: _attempts raises when they run out")

    def _api_call(self, method: str, path: str, document: Any = None) -> Any:
        body = None if document is None else json.dumps(document).encode()
        headers = {"x-api-key": self._key, "content-type": "application/json"}
        for attempt in self._attempts(f"{method} /{path}"):
            try:
                response = self._http.request(
                    method,
                    urljoin(self._api, path),
                    body=body,
                    headers=headers,
                    timeout=self._config.timeout_seconds,
                )
            except urllib3.exceptions.HTTPError as exc:
                attempt.failed(str(exc))
                continue
            if response.status in _RETRYABLE_STATUSES and not self._beyond_backoff(response):
                attempt.failed(f"HTTP {response.status}")
                continue
            return _answer(method, path, response)
        raise AssertionError("unreachable: _attempts raises when they run out")

    @staticmethod
    def _beyond_backoff(response: Any) -> bool:
        """A 429 whose Retry-After is longer than a retry is worth waiting: a partner quota
        that frees up later (pending uploads, the UTC day; docs/quotas.md), not the rate's
        one-second window. Fail at once with the API's message, which names the quota."""
        if response.status != 429:
            return False
        try:
            retry_after = float(response.headers.get("Retry-After") or 0)
        except ValueError:
            return False
        return retry_after > _LONGEST_RETRY_AFTER

    def _attempts(self, what: str) -> Iterator[_Attempt]:
        """Yield one attempt after another, sleeping with backoff between failed ones."""
        attempt = _Attempt()
        for number in range(self._config.max_attempts):
            if number:
                ceiling = min(
                    self._config.backoff_max_seconds,
                    self._config.backoff_base_seconds * 2 ** (number - 1),
                )
                self._sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not crypto
            attempt.failure = None
            yield attempt
            if attempt.failure is None:
                return
        raise UploadClientError(
            f"{what} failed {self._config.max_attempts} times; last error: {attempt.failure}"
        )


def in_parallel(items: list[int], work: Callable[[int], str], workers: int) -> list[str]:
    """``work(item)`` for each item on up to ``workers`` daemon threads; the results in order.

    After a failure no further item starts, and the first failure is raised once the items in
    flight are done. Daemon threads, unlike ThreadPoolExecutor's (joined at interpreter exit),
    let a Ctrl-C end the process at once: a part cut off mid-way is one S3 does not keep. After
    a KeyboardInterrupt here no further item starts either.
    """
    results: dict[int, str] = {}
    failures: list[BaseException] = []
    queue = iter(enumerate(items))
    lock = threading.Lock()
    stop = threading.Event()

    def run() -> None:
        while True:
            with lock:
                job = None if failures or stop.is_set() else next(queue, None)
            if job is None:
                return
            try:
                value = work(job[1])
            except BaseException as exc:  # handed to the caller's thread
                with lock:
                    failures.append(exc)
                return
            with lock:
                results[job[0]] = value

    threads = [threading.Thread(target=run, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        raise
    if failures:
        raise failures[0]
    return [results[index] for index in range(len(items))]


def _finished(path: Path, size: int, view: dict[str, Any]) -> UploadResult:
    """An upload completed by an earlier run, as the ledger reports it."""
    declared = view.get("declared", {})
    return UploadResult(
        path=path,
        upload_id=view["upload_id"],
        key=view["key"],
        size=size,
        sha256=declared.get("sha256", ""),
        method=declared.get("method", "MULTIPART"),
        status=view["status"],
        reason=view.get("reason"),
        resumed_bytes=size,
    )


@dataclass
class _Target:
    """Where a PUT goes, and (for a part) how to get its URL signed again once S3 says expired."""

    url: str
    headers: dict[str, str]
    sign_again: Callable[[], dict[str, Any]] | None = None

    def renewed(self, response: Any) -> bool:
        """True when S3 refused the URL as expired and a new one was fetched: try again."""
        if self.sign_again is None or response.status not in (400, 403):
            return False
        if not any(marker in response.data for marker in _EXPIRED_SIGNATURES):
            return False
        part = self.sign_again()
        self.url, self.headers = part["url"], part["headers"]
        return True


def _with_length(headers: dict[str, str], size: int) -> dict[str, str]:
    """The plan's headers with exactly one Content-Length (header names are case-blind)."""
    kept = {name: value for name, value in headers.items() if name.lower() != "content-length"}
    return {**kept, "Content-Length": str(size)}


@dataclass
class _Attempt:
    failure: str | None = None

    def failed(self, reason: str) -> None:
        self.failure = reason


def _answer(method: str, path: str, response: Any) -> Any:
    try:
        document = json.loads(response.data or b"null")
    except ValueError:
        document = None
    if response.status >= 400:
        error = (document or {}).get("error", {}) if isinstance(document, dict) else {}
        message = error.get("message") or response.data[:300].decode("utf-8", "replace")
        raise UploadClientError(
            f"{method} /{path} answered {response.status}: {message}", status=response.status
        )
    return document
