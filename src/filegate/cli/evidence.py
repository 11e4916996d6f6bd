"""`filegate evidence`: verify the stack and write the evidence set and run record."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, console_err, print_json, rows_table
from filegate.ops.evidence import REPORT, EvidenceResult, ResultFiles, collect
from filegate.ops.verify import DEFAULT_TIMEOUT


@stack_options
def evidence_command(
    on: StackOptions,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the evidence into")],
    key: Annotated[
        str | None,
        typer.Option("--key", help="Collect this object's item and logs [default: a smoke upload]"),
    ] = None,
    unit_results: Annotated[
        Path | None, typer.Option("--unit-results", help="pytest console output of the unit tests")
    ] = None,
    unit_junit: Annotated[
        Path | None, typer.Option("--unit-junit", help="JUnit XML of the unit tests")
    ] = None,
    integration_results: Annotated[
        Path | None,
        typer.Option(
            "--integration-results", help="pytest console output of the integration tests"
        ),
    ] = None,
    integration_junit: Annotated[
        Path | None, typer.Option("--integration-junit", help="JUnit XML of the integration tests")
    ] = None,
    runner: Annotated[
        str | None, typer.Option("--runner", help="Who ran it [default: the login name]")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the item and logs")
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Write stack, function, table, bucket, queue, item and log evidence and run-report.md."""
    ref = on.resolve()
    tests = ResultFiles(unit_results, unit_junit, integration_results, integration_junit)
    invocation = shlex.join(["filegate", *sys.argv[1:]])
    with console_err.status("collecting evidence") as status:
        result = collect(
            ref,
            out,
            key,
            tests,
            timeout,
            progress=status.update,
            runner=runner,
            invocation=invocation,
        )
    _render(result, on.output)
    if not result.passed:
        raise typer.Exit(1)


def _render(result: EvidenceResult, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(result.as_dict())
        return
    rows = [(c.name, "PASS" if c.passed else "FAIL", c.detail) for c in result.verification.checks]
    rows += [(f"file {name}", "MISSING", error) for name, error in result.missing]
    verdict = "all checks passed" if result.passed else "NOT all checks passed"
    console.print(
        rows_table(f"evidence in {result.out_dir}: {verdict}", ("check", "result", "detail"), rows)
    )
    console.print(f"{len(result.files)} files written; the record is {result.out_dir / REPORT}")
