"""`filegate upload FILE...`: partner uploads through the upload API, with progress bars.

A multipart upload interrupted (Ctrl-C: exit 130; a network failure: exit 2; its state kept in
both cases) resumes when the same command runs again: filegate.uploads.resume keeps its state
in ``settings.upload_state_dir()``. Files this command already sent keep theirs until it has
finished, so that the rerun of an interrupted command reports them instead of sending them
again. Another run on the same file holds its lock: exit 2, saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from filegate.cli.render import OutputFormat, console, console_err, print_json, rows_table
from filegate.errors import ConfigError
from filegate.settings import LocalSettings, upload_api_url, upload_state_dir
from filegate.uploads.client import UploadClient, UploadResult
from filegate.uploads.resume import ResumeStore

ENV_API_KEY = "FILEGATE_API_KEY"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class _Bars:
    """A progress subscriber feeding one file's bar and the overall bar."""

    def __init__(self, progress: Progress, task: TaskID, overall: TaskID) -> None:
        self._progress, self._task, self._overall = progress, task, overall

    def on_progress(self, bytes_transferred: int) -> None:
        for task in (self._task, self._overall):
            if bytes_transferred >= 0:
                self._progress.advance(task, bytes_transferred)
                continue
            # Bytes to send again (a retried part) are taken back, and the bar's speed starts
            # over: its samples would otherwise show a negative rate.
            (current,) = [t for t in self._progress.tasks if t.id == task]
            self._progress.reset(task, completed=int(current.completed) + bytes_transferred)


def _api_url(explicit: str | None) -> str:
    url = upload_api_url(explicit)
    if url:
        return url
    from filegate.local.state import read_state  # the local twin's modules, only when asked

    state = read_state(LocalSettings.resolve())
    if state is not None and state.env().get("upload_api_url"):
        return str(state.env()["upload_api_url"])
    raise ConfigError(
        "no upload API to talk to: pass --api URL (or set FILEGATE_API_URL), or start the"
        " local stack with `filegate local up --detach`"
    )


def upload(
    files: Annotated[list[Path], typer.Argument(help="Files to upload")],
    api: Annotated[
        str | None,
        typer.Option(
            "--api", help="Upload API URL [default: the local stack's, or $FILEGATE_API_URL]"
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar=ENV_API_KEY, help="Partner API key [$FILEGATE_API_KEY]"),
    ] = None,
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Content type [default: guessed]")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait for the ledger's verdict; exit 1 unless every file is ACCEPTED"
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Parallel parts per file")
    ] = 4,
    output: Annotated[OutputFormat, typer.Option("--output", help="table or json")] = (
        OutputFormat.table
    ),
    sha256: Annotated[
        str | None,
        typer.Option(
            "--sha256",
            help="The file's SHA-256 (hex) as your records give it, declared as it is: a file"
            " whose bytes differ ends REJECTED, naming both (one FILE only)",
        ),
    ] = None,
) -> None:
    """Upload files: hash, declare, upload (multipart when large), and report the verdict."""
    from filegate.uploads.client import TransferConfig

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"not a readable file: {', '.join(missing)}")
    if sha256 is not None:
        sha256 = _declared_sha256(sha256, files)
    url = _api_url(api)
    store = ResumeStore(upload_state_dir(), url, api_key or "", _say)
    config = TransferConfig(max_concurrency=concurrency)
    client = UploadClient(url, api_key or "", config, resume=store)
    try:
        results = _upload_all(client, files, content_type, sha256)
    except KeyboardInterrupt:
        console_err.print(
            "interrupted: run the same command again to resume; the parts already sent are"
            f" not sent again (state in {store.directory})",
            highlight=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if wait:
        with console_err.status("waiting for the ledger's verdict"):
            results = [client.wait(result) for result in results]
    client.forget(files)  # the command is done with them: their kept states go
    _render(results, output)
    if wait and not all(result.accepted for result in results):
        raise typer.Exit(1)


def _say(line: str) -> None:
    console_err.print(escape(line), highlight=False)


def _declared_sha256(value: str, files: list[Path]) -> str:
    if len(files) != 1:
        raise ConfigError(
            f"--sha256 is one file's SHA-256, and {len(files)} files were given: upload that"
            " file on its own"
        )
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ConfigError(f"--sha256 {value!r} is not a SHA-256: give 64 hexadecimal characters")
    return value.lower()


def _upload_all(
    client: UploadClient, files: list[Path], content_type: str | None, sha256: str | None
) -> list[UploadResult]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    total = sum(f.stat().st_size for f in files)
    results = []
    with Progress(*columns, console=console_err, transient=False) as progress:
        overall = progress.add_task("all files", total=total)
        for path in files:
            task = progress.add_task(path.name, total=path.stat().st_size)
            bars = _Bars(progress, task, overall)
            results.append(client.upload(path, content_type, bars, True, sha256))
    return results


def _render(results: list[UploadResult], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(
            [
                {
                    "file": str(r.path),
                    "upload_id": r.upload_id,
                    "key": r.key,
                    "size": r.size,
                    "sha256": r.sha256,
                    "method": r.method,
                    "status": r.status,
                    "reason": r.reason,
                    "resumed_bytes": r.resumed_bytes,
                }
                for r in results
            ]
        )
        return
    rows = [(r.path.name, r.upload_id, r.size, r.method, r.status, r.reason or "") for r in results]
    console.print(
        rows_table("uploads", ("file", "upload id", "size", "method", "status", "reason"), rows)
    )
