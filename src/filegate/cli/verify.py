"""`filegate verify`: the runbook's health checks as one pass/fail table (exit 0: all passed)."""

from __future__ import annotations

from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, console_err, print_json, rows_table
from filegate.ops.verify import DEFAULT_TIMEOUT, VerifyReport, verify

TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=1, help="Seconds to wait for the smoke object's item and logs"),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Check this object's item and logs instead of a smoke upload"),
]


@stack_options
def verify_command(
    on: StackOptions,
    key: KeyOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Check the stack, errors, a smoke upload to the ledger, the DLQ and the alarms."""
    ref = on.resolve()
    with console_err.status("verifying") as status:
        report = verify(ref, key=key, timeout=timeout, progress=status.update)
    render_report(report, on.output)
    if not report.passed:
        raise typer.Exit(1)


def render_report(report: VerifyReport, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(report.as_dict())
        return
    rows = [(c.name, "PASS" if c.passed else "FAIL", c.detail) for c in report.checks]
    verdict = "healthy" if report.passed else "NOT healthy"
    title = f"verify {report.stack_name}: {verdict}"
    console.print(rows_table(title, ("check", "result", "detail"), rows))
