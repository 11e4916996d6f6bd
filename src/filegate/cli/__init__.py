"""The `filegate` command line: thin commands, one module per group.

Each command parses options, calls one library function, and renders the result. Known
failures (FilegateError) become one sentence on stderr and exit code 2; checks that ran and
failed exit 1.

A command's module is imported when the command runs (``filegate.cli.lazy``): `filegate
upload` imports neither boto3 nor the operations nor the local twin. ``COMMANDS`` names them
all, in the order `filegate --help` lists them.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from filegate.cli.lazy import LazyGroup
from filegate.cli.render import console_err
from filegate.errors import FilegateError

COMMANDS = {
    "demo": "filegate.cli.demo:demo",
    "package": "filegate.cli.build:build_package",
    "upload": "filegate.cli.upload:upload",
    "verify": "filegate.cli.verify:verify_command",
    "logs": "filegate.cli.logs:logs_command",
    "evidence": "filegate.cli.evidence:evidence_command",
    "reconcile": "filegate.cli.reconcile:reconcile",
    "pause": "filegate.cli.intake:pause",
    "resume": "filegate.cli.intake:resume",
    "intake": "filegate.cli.intake:status",
    "deploy": "filegate.cli.deploy:deploy",
    "releases": "filegate.cli.deploy:releases",
    "rollback": "filegate.cli.deploy:rollback",
    "alarms": "filegate.cli.alarms:app",
    "local": "filegate.cli.local:app",
    "partner": "filegate.cli.partner:app",
    "uploads": "filegate.cli.uploads:app",
    "receipt": "filegate.cli.receipt:app",
    "dlq": "filegate.cli.dlq:app",
    "events": "filegate.cli.events:app",
}


class Commands(LazyGroup):
    """The top-level group: the commands of ``COMMANDS``, each imported when it runs."""

    lazy = COMMANDS


app = typer.Typer(
    name="filegate",
    help="Partner uploads to S3, recorded in a DynamoDB ledger: on AWS or on one machine.",
    cls=Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _filegate() -> None:
    # Makes typer build a group although no command is registered here (Commands holds them).
    pass


def main() -> None:
    try:
        app()
    except FilegateError as exc:
        # escape: a message may hold brackets rich would take for markup ('filegate[local]').
        console_err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(2)
