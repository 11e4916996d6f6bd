"""The partner-side upload client: declare, hash ahead while sending, and read the verdict.

For each file: ``POST /uploads`` to declare it, then either one presigned PUT or the multipart
plan's parts in parallel, and with ``wait`` the ledger's verdict. A file that will likely go in one
PUT (up to ``hash_first_bytes``, the stack's default threshold) is hashed first: the PUT's URL binds
its SHA-256. A multipart upload is declared without it and its file hashed ahead of the senders
(``filegate.uploads.part_reader``): the reading thread hashes each part in order (its SHA-256, which
its URL binds, and the whole file's), keeping only the digests, and stays at most ``ahead_bytes``
ahead of the parts being sent; the parts' URLs are asked for in large pages as soon as they are
hashed (``part_urls``), and each sender reads its part from the file again when it sends it (usually
from the page cache: the lead is bounded); ``complete`` lists every part's ETag and SHA-256 and
gives the whole file's SHA-256 (docs/integrity.md). Memory is a read block per sender and a few
being hashed, whatever the size. Failed requests and parts are retried with exponential backoff and
jitter, except a 429 whose Retry-After is longer than 5 s (a partner quota, docs/quotas.md), which
fails at once with the API's message naming the quota. A part S3 refuses because its bytes do not
match its SHA-256 (BadDigest: damaged on the way, or the file changed between the part's hashing and
its sending) is read and sent again, up to ``max_attempts`` times; then the client gives up with an
error naming the file and the part, aborts the multipart upload and tells the API that S3 refused
the bytes (``POST /uploads/{id}/abort`` with ``s3_error``), which closes the upload REJECTED with
the reason; a single PUT refused so is closed the same way. A part whose URL is about to expire (or
that S3 refused as expired) is signed again through the API first (``part_urls``), which also keeps
the declaration alive while a large file is still on its way. Progress reaches a subscriber as
s3transfer's does: ``on_progress(bytes_transferred)`` (negative when a retried part starts over).
Given a ``ResumeStore`` (``filegate.uploads.resume``), a multipart upload's state is kept while it
is on its way (one run at a time per file: the store's lock), and the same file uploaded again sends
only the parts S3 does not hold yet (reading the others once, for the whole file's SHA-256). A
Ctrl-C (KeyboardInterrupt) or a network failure (no answer after the retries) leaves the multipart
upload open and its state in place, and the part senders are daemon threads that start no further
part, so the process exits at once. With ``keep_record`` a sent file's state stays, marked
completed, until ``forget``: a command of several files that is interrupted does not send the
finished ones again.
This module runs on partners' machines: it never imports the AWS SDK.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urljoin

import urllib3

from filegate.errors import BytesRefusedError, ConfigError, UploadClientError
from filegate.uploads.digests import file_sha256
from filegate.uploads.part_reader import FileChangedError, Part, PartReader
from filegate.uploads.part_urls import REFRESH_BATCH, Clock, PartUrls
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
_SIGNERS = 2  # threads asking for part URLs: two pages in flight hide the API's latency
# Sending starts once this much is hashed and its URLs asked for (8 parts of 8 MiB): enough
# for the senders' first parts; the later pages are larger (``_send_parts``).
_FIRST_PAGE_BYTES = 64 * MiB
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
    # How far hashing may run ahead of sending (filegate.uploads.part_reader): parts hashed and
    # not yet sent, whose bytes are not kept (read again, from the page cache, when sent). The
    # larger, the larger the pages of part URLs asked for (each request to the API costs).
    ahead_bytes: int = 512 * MiB
    # Files up to this size are hashed before they are declared: a single PUT's URL binds the
    # SHA-256, and the stack's default multipart threshold is 64 MiB. Above it the SHA-256
    # goes with the completion (the API asks for it up front if it plans a PUT all the same).
    hash_first_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        checks = {
            "max_concurrency": 1 <= self.max_concurrency <= 64,
            "max_attempts": 1 <= self.max_attempts <= 20,
            "backoff_base_seconds": self.backoff_base_seconds >= 0,
            "chunk_bytes": 64 * 1024 <= self.chunk_bytes <= 64 * MiB,
            "timeout_seconds": self.timeout_seconds > 0,
            "refresh_margin_seconds": self.refresh_margin_seconds >= 0,
            "ahead_bytes": 0 <= self.ahead_bytes <= 4096 * MiB,
            "hash_first_bytes": self.hash_first_bytes >= 0,
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
    total: int = 0

    def add(self, count: int) -> None:
        if count:
            with self.lock:
                self.total += count
                if self.subscriber is not None:
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
        keep_record: bool = False,
        sha256: str | None = None,
    ) -> UploadResult:
        """Declare and upload one file; the result's status is PENDING until the ledger speaks.

        ``keep_record``: once sent, keep the file's state (marked completed) until ``forget``,
        so that a run of several files that is interrupted does not send it again.
        ``sha256``: the file's SHA-256 (hex) as the partner's records give it, declared as it
        is; a file whose bytes are not those ends REJECTED with the reason (docs/integrity.md).
        """
        if not path.is_file():
            raise UploadClientError(f"{path} is not a readable file")
        counter = _Counter(subscriber)
        if self._resumer is None:
            return self._upload(path, content_type, counter, keep_record, sha256)
        with self._resumer.store.hold(path):
            return self._upload(path, content_type, counter, keep_record, sha256)

    def forget(self, paths: list[Path]) -> None:
        """The command has finished with these files: their kept states go."""
        if self._resumer:
            for path in paths:
                self._resumer.forget(path)

    def _upload(
        self,
        path: Path,
        content_type: str | None,
        counter: _Counter,
        keep_record: bool,
        sha256: str | None = None,
    ) -> UploadResult:
        identity = FileIdentity.of(path)
        size = identity.size
        decision = self._resumer.decide(path, identity) if self._resumer else None
        if isinstance(decision, Finished):
            result = _finished(path, size, decision.view)
            if self._resumer and keep_record:  # still one of this command's files
                plan = {"upload_id": result.upload_id, "key": result.key, "method": result.method}
                self._resumer.completed(replace(identity, sha256=result.sha256), plan)
            return result
        if isinstance(decision, Continue):
            try:
                return self._send(path, identity, decision.plan, counter, keep_record, decision)
            except FileChangedError as exc:
                assert self._resumer is not None  # a Continue comes from the resumer
                self._resumer.changed(decision.plan, path, str(exc))
                counter.add(-counter.total)
                return self._upload(path, content_type, counter, keep_record, sha256)
        plan = self._declare(path, size, content_type or guess_content_type(path), sha256)
        if plan["method"] == "MULTIPART" and self._resumer:
            self._resumer.remember(identity, plan)
        return self._send(path, identity, plan, counter, keep_record, None)

    def _declare(
        self, path: Path, size: int, content_type: str, sha256: str | None = None
    ) -> dict[str, Any]:
        """POST /uploads. The whole file's SHA-256 is given up front only where a single PUT
        is likely (its URL binds it): a multipart upload gives it at completion, so the file
        is read once, hashed while it is sent. If the API plans a PUT above our guess (a
        larger threshold), it asks for the SHA-256 (400, field sha256): hash, declare again.
        A ``sha256`` the partner gives is declared as it is, at any size."""
        declaration = {"filename": path.name, "size": size, "content_type": content_type}
        if sha256 is not None:
            declaration["sha256"] = sha256
        elif size <= self._config.hash_first_bytes:
            declaration["sha256"] = file_sha256(path, self._config.chunk_bytes)
        try:
            plan: dict[str, Any] = self._api_call("POST", "uploads", declaration)
        except UploadClientError as exc:
            if "sha256" in declaration or exc.status != 400 or exc.field != "sha256":
                raise
            declaration["sha256"] = file_sha256(path, self._config.chunk_bytes)
            plan = self._api_call("POST", "uploads", declaration)
        plan["declared_sha256"] = declaration.get("sha256", "")
        return plan

    def _send(
        self,
        path: Path,
        identity: FileIdentity,
        plan: dict[str, Any],
        counter: _Counter,
        keep_record: bool,
        resumed: Continue | None,
    ) -> UploadResult:
        size = identity.size
        if plan["method"] == "MULTIPART":
            sha256 = self._multipart(path, size, plan, counter, resumed)
        else:
            sha256 = plan["declared_sha256"]
            target = _Target(plan["url"], plan["headers"])
            try:
                self._put(path, target, (0, size), counter, declared=sha256)
            except BytesRefusedError as exc:
                closed = self._abort(path, plan, exc)
                raise UploadClientError(f"{exc}{closed}", status=exc.status) from exc
        if self._resumer and keep_record:
            self._resumer.completed(replace(identity, sha256=sha256), plan)
        elif self._resumer:
            self._resumer.forget(path)
        return UploadResult(
            path=path,
            upload_id=plan["upload_id"],
            key=plan["key"],
            size=size,
            sha256=sha256,
            method=plan["method"],
            status=plan.get("status") or "PENDING",
            resumed_bytes=resumed.resumed_bytes if resumed else 0,
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

    def _multipart(
        self,
        path: Path,
        size: int,
        plan: dict[str, Any],
        counter: _Counter,
        resumed: Continue | None,
    ) -> str:
        """Hash each part ahead (``part_reader``), send those S3 does not hold, complete with
        every part and the whole file's SHA-256; return that SHA-256."""
        held = resumed.held if resumed else {}
        counter.add(sum(part.size for part in held.values()))
        checksums = {number: part.checksum for number, part in held.items()}
        etags = {number: part.etag for number, part in held.items()}
        urls = self._part_urls(plan, checksums)
        urls.skip(list(etags))
        reader = PartReader(
            path,
            size,
            int(plan["part_size"]),
            self._config.max_concurrency,
            self._config.ahead_bytes,
            self._config.chunk_bytes,
            checksums,
        )
        try:
            self._send_parts(reader, urls, counter, checksums, etags)
            numbers = range(1, int(plan["part_count"]) + 1)
            parts = [
                {"part_number": n, "etag": etags[n], "checksum_sha256": checksums[n]}
                for n in numbers
            ]
            urls.keep_alive()
            complete = {"parts": parts, "sha256": reader.sha256}
            self._api_call("POST", plan["complete"]["path"].lstrip("/"), complete)
        except (KeyboardInterrupt, FileChangedError):
            raise  # left open, its state kept: the same command resumes it
        except UploadClientError as exc:
            if exc.unreachable and self._resumer:
                raise UploadClientError(
                    f"{exc}; the network failed: the multipart upload {plan['upload_id']} and"
                    " its state are kept, run the same command again to resume it (the parts"
                    " S3 holds are not sent again)",
                    status=exc.status,
                    unreachable=True,
                ) from exc
            closed = self._abort(path, plan, exc)
            raise UploadClientError(
                f"{exc}; the multipart upload {plan['upload_id']} was aborted{closed}",
                status=exc.status,
            ) from exc
        except BaseException:
            self._abort(path, plan)
            raise
        return reader.sha256

    def _send_parts(
        self,
        reader: PartReader,
        urls: PartUrls,
        counter: _Counter,
        checksums: dict[int, str],
        etags: dict[int, str],
    ) -> None:
        """This thread hashes the parts in order and hands them over (``_Pipeline``): their
        numbers, in large pages, to the signer threads, which ask for their URLs, and the parts
        to ``max_concurrency`` sender threads, which read and send them from the moment the
        first page is asked for. Hashing never waits for the API. After a failure no further
        part is hashed or started; the first failure is raised once the parts in flight are
        done (a Ctrl-C: at once)."""

        def send(part: Part) -> None:
            etags[part.number] = self._part(reader, part, urls, counter)

        senders = self._config.max_concurrency
        lines = _Pipeline(send, urls.sign, senders)
        # Pages of half the parts hashed ahead of those in flight: each request to the API costs
        # (measured: one a part held a 1 GiB upload to 0.73 of aws s3 cp, pages of 3 to 0.77),
        # and a page asked for while the other half is sent is signed before a sender needs it.
        # The first page is small, so that sending starts at once.
        page = min(max(1, (reader.slots - senders) // 2), REFRESH_BATCH)
        first = min(page, max(1, _FIRST_PAGE_BYTES // reader.part_size))
        try:
            try:
                for read, part in enumerate(reader.parts(lines.stop), start=1):
                    checksums[part.number] = part.checksum
                    urls.hashed(part.number)
                    lines.sign(urls.page_ahead(first if read <= first else page))
                    lines.send(part)
                    if read == first:
                        lines.start_sending()
                lines.sign(urls.page_ahead(1))
            finally:
                lines.close()
            lines.join()
        except BaseException:
            lines.stop.set()
            raise
        if lines.failures:
            raise lines.failures[0]

    def _part_urls(self, plan: dict[str, Any], checksums: dict[int, str]) -> PartUrls:
        path = f"uploads/{plan['upload_id']}/parts"

        def ask(numbers: list[int]) -> dict[str, Any]:
            wanted = [{"part_number": n, "checksum_sha256": checksums[n]} for n in numbers]
            answer: dict[str, Any] = self._api_call("POST", path, {"parts": wanted})
            return answer

        return PartUrls(plan, ask, self._clock, self._config.refresh_margin_seconds)

    def _part(self, reader: PartReader, part: Part, urls: PartUrls, counter: _Counter) -> str:
        signed = urls.for_sending(part.number)
        number = part.number
        target = _Target(signed["url"], signed["headers"], lambda: urls.after_expired(number))
        what = f"part {number} of {reader.path}"
        return self._put(
            reader.path, target, (part.offset, part.size), counter, urls.keep_alive, what, number
        )

    def _abort(self, path: Path, plan: dict[str, Any], cause: BaseException | None = None) -> str:
        """Give the upload up through the API: REJECTED when ``cause`` is S3's refusal of the
        bytes, ABORTED otherwise. What the ledger now says, for the error message."""
        refusal: dict[str, Any] = {}
        if isinstance(cause, BytesRefusedError):
            refusal["s3_error"] = "BadDigest"
            if cause.part_number is not None:
                refusal["part_number"] = cause.part_number
        said = ""
        # If even the abort fails, the bucket's lifecycle rule removes the parts after 7 days.
        with contextlib.suppress(UploadClientError):
            view = self._api_call("POST", f"uploads/{plan['upload_id']}/abort", refusal)
            said = f"; the upload {plan['upload_id']} is {view['status']}: {view.get('reason')}"
        if self._resumer:
            self._resumer.forget(path)
        return said if refusal else ""

    def _put(
        self,
        path: Path,
        target: _Target,
        window: tuple[int, int],
        counter: _Counter,
        on_chunk: Callable[[], None] = lambda: None,
        what: str | None = None,
        part_number: int | None = None,
        declared: str | None = None,
    ) -> str:
        """PUT [offset, offset + size) of the file to a presigned URL; return the ETag. Each
        attempt reads the window from the file (after a BadDigest too: damaged on the way);
        ``BytesRefusedError`` when S3 refused the bytes as BadDigest on the last one. With
        the whole file's ``declared`` SHA-256 (a single PUT), a BadDigest hashes the file
        again: if that is not the declared one, no attempt can succeed, and none is made."""
        offset, size = window
        damaged = "they did not match the SHA-256 computed when the file was hashed; is the"
        damaged += " file being written while it is uploaded?"
        what = what or f"upload of {path}"
        for attempt in self._attempts(what, part_number):
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
                attempt.failed(str(exc), unreachable=True)
                counter.add(-sent)
                continue
            finally:
                body.close()
            if response.status in _RETRYABLE_STATUSES or target.renewed(response):
                attempt.failed(f"HTTP {response.status}")
                counter.add(-sent)
                continue
            if response.status == 400 and _BAD_DIGEST in response.data:
                counter.add(-sent)
                now = file_sha256(path, self._config.chunk_bytes) if declared else None
                if now is not None and now != declared:
                    raise BytesRefusedError(
                        f"{what}: S3 refused its bytes (BadDigest): the file's SHA-256 is {now},"
                        f" not the declared {declared}",
                        part_number,
                    )
                attempt.failed(f"S3 refused its bytes (BadDigest): {damaged}", refused=True)
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
                attempt.failed(str(exc), unreachable=True)
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

    def _attempts(self, what: str, part_number: int | None = None) -> Iterator[_Attempt]:
        """Yield one attempt after another, sleeping with backoff between failed ones; when
        they run out, ``BytesRefusedError`` (of ``part_number``) if S3 refused the bytes on
        the last one."""
        attempt = _Attempt()
        for number in range(self._config.max_attempts):
            if number:
                ceiling = min(
                    self._config.backoff_max_seconds,
                    self._config.backoff_base_seconds * 2 ** (number - 1),
                )
                self._sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not crypto
            attempt.failure, attempt.unreachable, attempt.refused = None, False, False
            yield attempt
            if attempt.failure is None:
                return
        message = f"{what} failed {self._config.max_attempts} times; last error: {attempt.failure}"
        if attempt.refused:
            raise BytesRefusedError(message, part_number)
        raise UploadClientError(message, unreachable=attempt.unreachable)


def _daemon(target: Callable[[], None]) -> threading.Thread:
    """Daemon threads, unlike ThreadPoolExecutor's (joined at interpreter exit), let a Ctrl-C
    end the process at once: a part cut off mid-way is one S3 does not keep."""
    return threading.Thread(target=target, daemon=True)


class _Pipeline:
    """The threads of one multipart transfer: signers asking for pages of part URLs, senders
    sending parts; the first failure of either, kept for the reading thread, stops both."""

    def __init__(
        self, send: Callable[[Part], None], sign: Callable[[list[int]], None], senders: int
    ) -> None:
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self._send, self._sign = send, sign
        self._parts: queue.Queue[Part | None] = queue.Queue()
        self._pages: queue.Queue[list[int] | None] = queue.Queue()
        self._signers = [_daemon(self._signing) for _ in range(_SIGNERS)]
        self._senders = [_daemon(self._sending) for _ in range(senders)]
        for thread in self._signers:
            thread.start()

    def sign(self, numbers: list[int]) -> None:
        if numbers:
            self._pages.put(numbers)

    def send(self, part: Part) -> None:
        self._parts.put(part)

    def start_sending(self) -> None:
        for thread in self._senders:
            if thread.ident is None:
                thread.start()

    def close(self) -> None:
        """No more parts or pages: each thread ends once the queued ones are done."""
        self.start_sending()
        for _ in self._signers:
            self._pages.put(None)
        for _ in self._senders:
            self._parts.put(None)

    def join(self) -> None:
        for thread in self._signers + self._senders:
            thread.join()

    def _fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.stop.set()

    def _sending(self) -> None:
        while (part := self._parts.get()) is not None:
            try:
                if not self.stop.is_set():
                    self._send(part)
            except BaseException as exc:  # handed to the reading thread
                self._fail(exc)
            finally:
                part.release()

    def _signing(self) -> None:
        last = False
        while not last and (numbers := self._pages.get()) is not None:
            # The pages that queued up while the API answered go in one request: the slower
            # the API, the larger the pages.
            while not last and len(numbers) < REFRESH_BATCH and not self._pages.empty():
                more = self._pages.get()
                last = more is None  # this thread's end: no further page after it
                numbers += more or []
            try:
                self._sign(numbers)
            except BaseException as exc:  # handed to the reading thread
                self._fail(exc)


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
    unreachable: bool = False  # no answer at all: the network, not the request
    refused: bool = False  # S3 refused the bytes sent (BadDigest)

    def failed(self, reason: str, unreachable: bool = False, refused: bool = False) -> None:
        self.failure, self.unreachable, self.refused = reason, unreachable, refused


def _answer(method: str, path: str, response: Any) -> Any:
    try:
        document = json.loads(response.data or b"null")
    except ValueError:
        document = None
    if response.status >= 400:
        error = (document or {}).get("error", {}) if isinstance(document, dict) else {}
        message = error.get("message") or response.data[:300].decode("utf-8", "replace")
        raise UploadClientError(
            f"{method} /{path} answered {response.status}: {message}",
            status=response.status,
            field=error.get("field") if isinstance(error, dict) else None,
        )
    return document
