"""Resuming `filegate upload`: the state of a multipart upload in flight, and what to do with it.

While a multipart upload is on its way the client keeps one small JSON file per source file,
per upload API and per partner (the file name is a SHA-256 of the three, so two stacks or two
partners never share one), in ``settings.upload_state_dir()``
(``$FILEGATE_STATE_DIR/uploads``, else ``$XDG_STATE_HOME/filegate/uploads``, else
``~/.local/state/filegate/uploads``). It holds the upload's plan (id, key, part size and count,
the API paths; never a URL or the API key) and the file's identity when it was declared:
absolute path, size, ``mtime_ns`` and whole-file SHA-256. It is written atomically (a temporary
file in the same directory, fsync, rename) before the first part is sent, and removed once the
upload is completed, or aborted.

Run again, the same command asks ``Resumer.decide``: the upload's status (``GET /uploads/{id}``)
and the parts S3 holds (``GET /uploads/{id}/parts``, ListParts: the server's truth, not the
state file's) decide. A PENDING upload of the same file (same size, ``mtime_ns`` and SHA-256,
and every held part's SHA-256, as S3 verified it, equal to the part's in the file just read)
continues without sending those parts again. A file that changed is never stitched: the old
upload is aborted (``POST /uploads/{id}/abort``) and the file starts over, and one line says so.
An upload that is no longer PENDING starts over too, unless it is ACCEPTED with this file's
SHA-256 (then it is reported, nothing sent). A state file that cannot be read or parsed is
reported in one line and the file starts over; one that cannot be written costs resumability,
never the upload. No AWS SDK here (the client's rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filegate.errors import UploadClientError

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# The API call the client makes: (method, path relative to the API, JSON body or None).
ApiCall = Callable[[str, str, Any], Any]
Notify = Callable[[str], None]
# The file's parts' SHA-256s (base64, by part number) at a given part size.
PartChecksums = Callable[[int], dict[int, str]]


@dataclass(frozen=True)
class FileIdentity:
    """What a file was when its upload was declared."""

    path: str  # absolute
    size: int
    mtime_ns: int
    sha256: str  # hex, the whole file's, as declared

    @classmethod
    def of(cls, path: Path, sha256: str) -> FileIdentity:
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha256)


@dataclass(frozen=True)
class ResumeState:
    """One state file: the API it talks to, the file, and the multipart plan."""

    api_url: str
    file: FileIdentity
    plan: dict[str, Any]

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

    def new_state(self, file: FileIdentity, plan: dict[str, Any]) -> ResumeState:
        return ResumeState(self._api_url, file, plan)


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
    return ResumeState(str(document["api_url"]), file, plan)


@dataclass(frozen=True)
class Continue:
    """Go on with this plan; ``held`` are the parts S3 holds (number: (etag, size))."""

    plan: dict[str, Any]
    held: dict[int, tuple[str, int]]

    @property
    def resumed_bytes(self) -> int:
        return sum(size for _, size in self.held.values())


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

    def decide(self, path: Path, file: FileIdentity, part_checksums: PartChecksums) -> Decision:
        state = self.store.load(path)
        if state is None:
            return None
        try:
            decision = self._judge(state, file, part_checksums)
        except UploadClientError as exc:
            self._notify(f"cannot resume upload {state.upload_id} of {path} ({exc}); starting over")
            decision = None
        if not isinstance(decision, Continue):
            self.store.remove(path)
        return decision

    def remember(self, file: FileIdentity, plan: dict[str, Any]) -> None:
        self.store.save(self.store.new_state(file, plan))

    def forget(self, path: Path) -> None:
        self.store.remove(path)

    def _judge(self, state: ResumeState, file: FileIdentity, checksums: PartChecksums) -> Decision:
        upload_id, was = state.upload_id, state.file
        try:
            view = self._api("GET", f"uploads/{upload_id}", None)
        except UploadClientError as exc:
            if exc.status != 404:
                raise
            self._notify(f"upload {upload_id} of {file.path} is unknown to this API; starting over")
            return None
        status = view.get("status")
        if status == "ACCEPTED" and view.get("declared", {}).get("sha256") == file.sha256:
            self._notify(f"upload {upload_id} of {file.path} was already ACCEPTED; nothing to send")
            return Finished(view)
        if status != "PENDING":
            self._notify(f"upload {upload_id} of {file.path} is {status}; starting over")
            return None
        if (was.size, was.mtime_ns, was.sha256) != (file.size, file.mtime_ns, file.sha256):
            self._changed(state, file, "its size, modification time or SHA-256 changed")
            return None
        held = self._held(state, checksums)
        if isinstance(held, str):
            self._changed(state, file, held)
            return None
        return Continue({**state.plan, "expires_at": None}, held)

    def _held(
        self, state: ResumeState, part_checksums: PartChecksums
    ) -> dict[int, tuple[str, int]] | str:
        """The parts S3 holds, each checked against the file's; or why they do not match."""
        listing = self._api("GET", f"uploads/{state.upload_id}/parts", None)
        part_size = listing.get("part_size")
        if not isinstance(part_size, int) or part_size != state.plan.get("part_size"):
            return "the upload's part size is not the one it began with"
        checksums = part_checksums(part_size)
        held: dict[int, tuple[str, int]] = {}
        for part in listing.get("parts", []):
            number = int(part["part_number"])
            if part.get("checksum_sha256") != checksums.get(number):
                return f"part {number} held in S3 no longer matches the file's bytes"
            held[number] = (str(part["etag"]).strip('"'), int(part["size"]))
        return held

    def _changed(self, state: ResumeState, file: FileIdentity, why: str) -> None:
        """Never stitched: abort the old upload and start over."""
        with contextlib.suppress(UploadClientError):
            self._api("POST", str(state.plan["abort"]["path"]).lstrip("/"), {})
        self._notify(
            f"{file.path} changed since upload {state.upload_id} began ({why}):"
            " aborted it, starting over"
        )
