"""`filegate package`: build the Lambda deployment zip (for deploying with the AWS CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from filegate import package
from filegate.cli.render import OutputFormat, console, key_value_table, print_json


def build_package(
    out: Annotated[Path, typer.Option("--out", help="Where to write the zip")] = Path(
        "build/lambda.zip"
    ),
    output: Annotated[OutputFormat, typer.Option("--output", help="table or json")] = (
        OutputFormat.table
    ),
) -> None:
    """Build the ingestion Lambda's zip, the same bytes the local stack deploys; it ships the
    runtime's bytecode when an interpreter of the template's Runtime version is found."""
    built = package.build(out)
    document = {
        "path": str(built.path),
        "size": built.size,
        "sha256": built.sha256_hex,
        "handler": package.HANDLER,
        "bytecode": built.bytecode or "none (source only)",
    }
    if output is OutputFormat.json:
        print_json(document)
    else:
        console.print(key_value_table("Lambda package", document))
