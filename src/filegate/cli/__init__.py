"""The `filegate` command line: thin commands, one module per group.

Each command parses options, calls one library function, and renders the result. Known
failures (FilegateError) become one sentence on stderr and exit code 2; checks that ran and
failed exit 1.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from filegate.cli import (
    alarms,
    build,
    demo,
    deploy,
    dlq,
    intake,
    local,
    partner,
    receipt,
    reconcile,
    upload,
    uploads,
)
from filegate.cli import events as events_cli
from filegate.cli import evidence as evidence_cli
from filegate.cli import logs as logs_cli
from filegate.cli import verify as verify_cli
from filegate.cli.render import console_err
from filegate.errors import FilegateError

app = typer.Typer(
    name="filegate",
    help="Partner uploads to S3, recorded in a DynamoDB ledger: on AWS or on one machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(alarms.app, name="alarms")
app.add_typer(local.app, name="local")
app.add_typer(partner.app, name="partner")
app.add_typer(uploads.app, name="uploads")
app.add_typer(receipt.app, name="receipt")
app.command("demo")(demo.demo)
app.command("package")(build.build_package)
app.command("upload")(upload.upload)
app.command("verify")(verify_cli.verify_command)
app.command("logs")(logs_cli.logs_command)
app.command("evidence")(evidence_cli.evidence_command)
app.add_typer(dlq.app, name="dlq")
app.add_typer(events_cli.app, name="events")
app.command("reconcile")(reconcile.reconcile)
app.command("pause")(intake.pause)
app.command("resume")(intake.resume)
app.command("intake")(intake.status)
deploy.register(app)


def main() -> None:
    try:
        app()
    except FilegateError as exc:
        # escape: a message may hold brackets rich would take for markup ('filegate[local]').
        console_err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(2)
