"""`filegate uploads expire`: nothing orphaned. Declared uploads that never arrived become
EXPIRED and their S3 multipart uploads are aborted; multipart uploads no live declaration
names are aborted too (the rules: ``filegate.uploads.expiry``).

Exit 0 when the sweep ran (whatever it found), 2 when it could not (a clear error, no
traceback: a bad ``--older-than``, a stack or bucket it cannot reach, a permission missing).
"""

from __future__ import annotations

from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.progress import bars
from filegate.cli.render import OutputFormat, console, print_json, rows_table
from filegate.ops import expire as ops
from filegate.ops.logs import parse_duration
from filegate.uploads.expiry import SweepReport

app = typer.Typer(help="Declared partner uploads in the ledger.", no_args_is_help=True)


@app.command("expire")
@stack_options
def expire(
    on: StackOptions,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help=(
                "Abort a multipart upload no declaration names once it is this old:"
                " 30m, 12h, 7d (declared uploads go by their own expiry)"
            ),
        ),
    ] = "24h",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what would be expired or aborted; change nothing"),
    ] = False,
) -> None:
    """Expire declared uploads past their expiry and abort orphaned multipart uploads."""
    threshold = parse_duration(older_than, "--older-than")
    ref = on.resolve()
    with bars() as progress:
        report = ops.expire(ref, threshold, dry_run, progress)
    if on.output is OutputFormat.json:
        print_json(report.as_dict())
    else:
        _print(report)


def _print(report: SweepReport) -> None:
    columns = ("kind", "key", "upload id", "multipart upload id", "since", "action", "s3", "ledger")
    rows = [
        (
            s.kind.value,
            s.key,
            s.upload_id or "-",
            s.multipart_upload_id or "-",
            s.since,
            s.action.value,
            s.s3,
            s.status,
        )
        for s in report.swept
    ]
    verb = "would close" if report.dry_run else "closed"
    title = f"s3://{report.bucket} and ledger {report.table}: {verb} {len(rows)} upload(s)"
    console.print(rows_table(title, columns, rows))
    console.print(
        f"{report.kept} multipart upload(s) left open: a PENDING declaration names them, or"
        f" they are younger than {report.older_than_seconds} s",
        highlight=False,
    )
