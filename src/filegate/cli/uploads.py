"""`filegate uploads expire`: turn declared uploads that never arrived into EXPIRED."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, print_json, rows_table
from filegate.ledger import Ledger
from filegate.outputs import TABLE_NAME

app = typer.Typer(help="Declared partner uploads in the ledger.", no_args_is_help=True)


@app.command("expire")
@stack_options
def expire(
    on: StackOptions,
) -> None:
    """Mark every PENDING upload past its expiry EXPIRED (a GET of one does it too)."""
    ref = on.resolve()
    expired = Ledger(ref.output(TABLE_NAME), ref.client("dynamodb")).expire_overdue(
        datetime.now(UTC)
    )
    rows = [(r.upload_id, r.partner_id, r.key, r.expires_at) for r in expired]
    if on.output is OutputFormat.json:
        print_json(
            [
                dict(zip(("upload_id", "partner_id", "key", "expires_at"), row, strict=True))
                for row in rows
            ]
        )
    else:
        console.print(
            rows_table(f"expired: {len(rows)}", ("upload id", "partner", "key", "expired at"), rows)
        )
