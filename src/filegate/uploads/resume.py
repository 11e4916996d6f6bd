"""Resuming `filegate upload`: the state of an upload in flight, its lock, and what to do with it.

While a multipart upload is on its way the client keeps one small JSON file per source file,
per upload API and per partner (the file name is a SHA-256 of the three, so two stacks or two
partners never share one), in ``settings.upload_state_dir()``
(``$FILEGATE_STATE_DIR/uploads``, else ``$XDG_STATE_HOME/filegate/uploads``, else
``~/.local/state/filegate/uploads``). It holds the upload's plan (id, key, part size and count,
the API paths; never a URL or the API key) and the file's identity when it was declared:
absolute path, size and ``mtime_ns`` (and, once known, the whole-file SHA-256). It is written
atomically (a temporary file in the same directory, fsync, rename) before the first part is
sent, and removed once the upload is completed, or aborted. A run of several files
(``filegate upload A B C``) keeps each finished file's state, marked ``completed``, until the
whole command has finished: a run interrupted after A was sent reports A again, without
sending it, when the same command runs again. A network failure (no answer after the retries)
keeps the upload open and its state, as Ctrl-C does, so that the same command resumes it.

One run at a time per state: ``ResumeStore.hold`` takes an exclusive lock (``flock``, released
by the kernel if the process dies) on ``<state>.lock`` for the whole upload of the file; a
second run on the same file, API and partner is refused at once (``UploadBusyError``, naming
the holder's pid) instead of both writing the state and sending the same parts.

Run again, the same command asks ``Resumer.decide``: the upload's status (``GET /uploads/{id}``)
and the parts S3 holds (``GET /uploads/{id}/parts``, ListParts: the server's truth, not the
state file's) decide. A PENDING upload of the same file (same size and ``mtime_ns``) continues
without sending those parts again; the client reads them once more, to rebuild the whole
file's SHA-256, and each must still be the part S3 verified (``part_reader``), or the file
changed. A file that changed is never stitched: the old upload is aborted
(``POST /uploads/{id}/abort``) and the file starts over, and one line says so. An upload that
is no longer PENDING starts over too, unless it is ACCEPTED (then it is reported, nothing
sent). A state file that cannot be read or parsed is reported in one line and the file starts
over; one that cannot be written costs resumability, never the upload. If the API cannot be
reached to decide, the state is kept and the error raised. No AWS SDK here (the client's rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filegate.errors import UploadBusyError, UploadClientError

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# The API call the client makes: (method, path relative to the API, JSON body or None).
ApiCall = Callable[[str, str, Any], Any]
Notify = Callable[[str], None]
# Attempts at a lock whose file another run removed between our open and our lock.
_LOCK_ATTEMPTS = 5


@dataclass(frozen=True)
class FileIdentity:
    """What a file was when its upload was declared."""

    path: str  # absolute
    size: int
    mtime_ns: int
    sha256: str = ""  # hex, the whole file's, once known ("" before its parts are read)

    @classmethod
    def of(cls, path: Path, sha256: str = "") -> FileIdentity:
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha256)


@dataclass(frozen=True)
class ResumeState:
    """One state file: the API it talks to, the file, and the multipart plan."""

    api_url: str
    file: FileIdentity
    plan: dict[str, Any]
    completed: bool = False  # sent and completed; kept until the whole command has finished

    @property
    def upload_id(self) -> str:
        return str(self.plan["upload_id"])


class ResumeStore:
    """The state files of one upload API and one partner (API key) in one directory."""

    def __init__(
        self, directory: Path, api_url: str, api_key: str, notify: Notify = logger.warning
    ) -> None:
        self.directory = directory
        self._api_url = api_url
        self._partner = hashlib.sha256(api_key.encode()).hexdigest()
        self.notify = notify

    def path_for(self, file: Path) -> Path:
        name = "\n".join((self._api_url, self._partner, str(file.resolve())))
        return self.directory / f"{hashlib.sha256(name.encode()).hexdigest()[:40]}.json"

    def load(self, file: Path) -> ResumeState | None:
        """The file's state, or None (none, or unreadable: said in one line, then ignored)."""
        where = self.path_for(file)
        try:
            text = where.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.notify(f"cannot read the resume state {where} ({exc}); {file} starts over")
            return None
        try:
            return _parse(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            self.notify(f"the resume state {where} is not valid ({exc}); {file} starts over")
            return None

    def save(self, state: ResumeState) -> None:
        """Write the state atomically; a failure costs resumability only (said in one line)."""
        where = self.path_for(Path(state.file.path))
        document = {"version": STATE_VERSION, **asdict(state)}
        try:
            write_atomically(where, json.dumps(document, indent=2, sort_keys=True))
        except OSError as exc:
            self.notify(f"cannot write the resume state {where} ({exc}); uploading without it")

    def remove(self, file: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(file).unlink()

    def new_state(
        self, file: FileIdentity, plan: dict[str, Any], completed: bool = False
    ) -> ResumeState:
        return ResumeState(self._api_url, file, plan, completed)

    @contextlib.contextmanager
    def hold(self, file: Path) -> Iterator[None]:
        """The file's state for this run alone, until the block ends (``UploadBusyError`` at
        once if another run holds it). A lock that cannot be taken at all (no locking on this
        platform, a read-only directory) costs that protection, never the upload."""
        where = self.path_for(file).with_suffix(".lock")
        if sys.platform == "win32":
            yield
            return
        handle = self._locked(where, file)
        try:
            yield
        finally:
            if handle is not None:
                with contextlib.suppress(OSError):
                    where.unlink()  # while still locked: a waiting run sees it gone, retries
                os.close(handle)

    def _locked(self, where: Path, file: Path) -> int | None:
        for _ in range(_LOCK_ATTEMPTS):
            try:
                where.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                self.notify(f"cannot lock the resume state {where} ({exc}); going on without")
                return None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(handle, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(handle)
                raise UploadBusyError(
                    f"another filegate upload (pid {holder}) is uploading {file} to this API as"
                    " this partner; let it finish (or stop it), then run this command again"
                    f" to resume (lock {where})"
                ) from None
            if _same_file(handle, where):
                os.ftruncate(handle, 0)
                os.write(handle, f"{os.getpid()}\n".encode("ascii"))
                return handle
            os.close(handle)  # removed by the run that held it, between our open and lock
        return None


def _same_file(handle: int, where: Path) -> bool:
    try:
        return os.fstat(handle).st_ino == where.stat().st_ino
    except OSError:
        return False


def write_atomically(where: Path, text: str) -> None:
    """Write ``text`` to ``where`` so a reader sees the old file or the new one, never a part:
    a temporary file in the same directory, flushed to disk, renamed over the target."""
    where.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=where.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, where)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _parse(document: Any) -> ResumeState:
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} state document")
    file = FileIdentity(**document["file"])
    plan = document["plan"]
    if not isinstance(plan, dict) or not isinstance(plan.get("upload_id"), str):
        raise ValueError("no upload id in its plan")
    return ResumeState(str(document["api_url"]), file, plan, document.get("completed") is True)


@dataclass(frozen=True)
class HeldPart:
    """A part S3 holds: its ETag, size and the SHA-256 (base64) S3 verified."""

    etag: str
    size: int
    checksum: str


@dataclass(frozen=True)
class Continue:
    """Go on with this plan; ``held`` are the parts S3 holds, by part number."""

    plan: dict[str, Any]
    held: dict[int, HeldPart]

    @property
    def resumed_bytes(self) -> int:
        return sum(part.size for part in self.held.values())


@dataclass(frozen=True)
class Finished:
    """The upload was completed before (its ledger view): nothing to send."""

    view: dict[str, Any]


Decision = Continue | Finished | None  # None: declare the file afresh


class Resumer:
    """Decides, from the state file and the API's answers, whether a file resumes."""

    def __init__(self, store: ResumeStore, api: ApiCall) -> None:
        self.store = store
        self._api = api
        self._notify = store.notify

    def decide(self, path: Path, file: FileIdentity) -> Decision:
        state = self.store.load(path)
        if state is None:
            return None
        try:
            decision = self._judge(state, file)
        except UploadClientError as exc:
            if exc.unreachable:
                raise  # the network, not the upload: keep the state for the next run
            self._notify(f"cannot resume upload {state.upload_id} of {path} ({exc}); starting over")
            decision = None
        if not isinstance(decision, Continue):
            self.store.remove(path)
        return decision

    def remember(self, file: FileIdentity, plan: dict[str, Any]) -> None:
        self.store.save(self.store.new_state(file, _without_urls(plan)))

    def completed(self, file: FileIdentity, plan: dict[str, Any]) -> None:
        """Sent and completed: kept (marked so) until ``forget``, so that a rerun of an
        interrupted command reports the file instead of sending it again."""
        self.store.save(self.store.new_state(file, _without_urls(plan), completed=True))

    def forget(self, path: Path) -> None:
        self.store.remove(path)

    def _judge(self, state: ResumeState, file: FileIdentity) -> Decision:
        view = self._view(state, file)
        if view is None:
            return None
        upload_id, was, status = state.upload_id, state.file, view.get("status")
        unchanged = (was.size, was.mtime_ns) == (file.size, file.mtime_ns)
        sent = state.completed and status != "ABORTED"
        if unchanged and (status == "ACCEPTED" or sent):
            self._notify(f"upload {upload_id} of {file.path} was sent before ({status}): not again")
            return Finished(view)
        if state.completed or status != "PENDING":
            self._notify(
                f"{file.path} changed since upload {upload_id} sent it; sending it again"
                if sent
                else f"upload {upload_id} of {file.path} is {status}; starting over"
            )
            return None
        held = self._held(state) if unchanged else "its size or modification time changed"
        if isinstance(held, str):
            self._changed(state, file, held)
            return None
        return Continue({**state.plan, "expires_at": None}, held)

    def _view(self, state: ResumeState, file: FileIdentity) -> dict[str, Any] | None:
        """The upload as the API reports it; None if the API does not know it (said so)."""
        try:
            view: dict[str, Any] = self._api("GET", f"uploads/{state.upload_id}", None)
        except UploadClientError as exc:
            if exc.status != 404:
                raise
            self._notify(
                f"upload {state.upload_id} of {file.path} is unknown to this API; starting over"
            )
            return None
        return view

    def _held(self, state: ResumeState) -> dict[int, HeldPart] | str:
        """The parts S3 holds, with the checksums S3 verified; or why they cannot be used."""
        listing = self._api("GET", f"uploads/{state.upload_id}/parts", None)
        part_size = listing.get("part_size")
        if not isinstance(part_size, int) or part_size != state.plan.get("part_size"):
            return "the upload's part size is not the one it began with"
        return {
            int(part["part_number"]): HeldPart(
                str(part["etag"]).strip('"'), int(part["size"]), str(part["checksum_sha256"])
            )
            for part in listing.get("parts", [])
        }

    def changed(self, state_plan: dict[str, Any], path: Path, why: str) -> None:
        """The file changed under a resumed upload (found while its held parts were read)."""
        file = FileIdentity.of(path)
        self._changed(ResumeState("", file, state_plan), file, why)
        self.store.remove(path)

    def _changed(self, state: ResumeState, file: FileIdentity, why: str) -> None:
        """Never stitched: abort the old upload and start over."""
        with contextlib.suppress(UploadClientError):
            self._api("POST", str(state.plan["abort"]["path"]).lstrip("/"), {})
        self._notify(
            f"{file.path} changed since upload {state.upload_id} began ({why}):"
            " aborted it, starting over"
        )


def _without_urls(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan as kept on disk: never a URL or its signed headers."""
    return {name: value for name, value in plan.items() if name not in ("url", "headers")}
