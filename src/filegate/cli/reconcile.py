"""`filegate reconcile [--prefix P] [--repair]`: the bucket against the ledger.

Exit 0 when no gap remains, 1 while any does (missing, gone or differing keys), 2 on a known
failure (for example `--repair` while intake is paused).
"""

from __future__ import annotations

from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.progress import bars
from filegate.cli.render import OutputFormat, console, print_json, rows_table
from filegate.ops import reconcile as ops
from filegate.ops.reconcile import GAPS, ReconcileReport


@stack_options
def reconcile(
    on: StackOptions,
    prefix: Annotated[str, typer.Option("--prefix", help="Only keys starting with this")] = "",
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Re-drive each gap's current state through the ingest queue (S3 untouched)",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0, help="Seconds to wait for the ledger after repairing"),
    ] = ops.DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Compare the bucket with the ledger; exit 1 while gaps remain."""
    ref = on.resolve()
    with bars() as progress:
        report = ops.reconcile(ref, prefix, repair, timeout, progress)
    if on.output is OutputFormat.json:
        print_json(report.as_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


def _print(report: ReconcileReport) -> None:
    if report.repairs:
        repaired = [
            (
                r.key,
                r.event_name or "-",
                r.version_id or "-",
                "yes" if r.recorded else "no",
                r.problem or "-",
            )
            for r in report.repairs
        ]
        columns = ("key", "event sent", "version", "recorded", "problem")
        console.print(rows_table("re-driven through the ingest queue", columns, repaired))
    final = report.final
    console.print(
        f"s3://{final.bucket}/{final.prefix} against ledger {final.table}: {final.objects}"
        f" object(s), {final.items} ledger item(s), {len(final.gaps)} gap(s)",
        highlight=False,
    )
    if final.gaps:
        rows = [(f.verdict.value, f.key, f.detail) for f in final.gaps]
        console.print(rows_table("", ("gap", "key", "detail"), rows))
    counts = ", ".join(f"{len(final.of(v))} {v.value}" for v in GAPS)
    declared = len(final.of(ops.Verdict.DECLARED))
    console.print(f"{counts}; {declared} declared upload(s) not arrived yet (not gaps)")
