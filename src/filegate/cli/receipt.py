"""`filegate receipt verify|get|public-key`: signed upload receipts (docs/receipts.md).

``verify`` checks a receipt file offline (``receipt_check``): against ``--public-key``, or
else against the stack's receipt key, whose public key is read once through KMS
(``ops.receipts``, with the usual stack options). Exit 0 valid, 1 invalid (any changed byte
of the payload or the signature, or another key), 2 when the file or the key cannot be read.
``get`` and ``public-key`` ask the upload API as a partner does (``--api``, ``--api-key``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, console_err, key_value_table, print_json
from filegate.cli.upload import ENV_API_KEY, _api_url
from filegate.ops.receipts import stack_public_key
from filegate.receipts import parse_receipt
from filegate.uploads.client import UploadClient

if TYPE_CHECKING:
    from filegate.receipt_check import FileCheck

app = typer.Typer(help="Signed receipts of accepted uploads.", no_args_is_help=True)

ApiOption = Annotated[
    str | None,
    typer.Option("--api", help="Upload API URL [default: the local stack's, or $FILEGATE_API_URL]"),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar=ENV_API_KEY, help="Partner API key [$FILEGATE_API_KEY]"),
]
OutputOption = Annotated[OutputFormat, typer.Option("--output", help="table or json")]


@app.command("verify")
@stack_options
def verify(
    on: StackOptions,
    file: Annotated[Path, typer.Argument(help="The receipt (JSON, as the API answered it)")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The receipt key's public key (PEM or DER) [default: the stack's, from KMS]",
        ),
    ] = None,
) -> None:
    """Check a receipt's signature offline: exit 0 valid, 1 invalid, 2 unreadable."""
    # deferred: cryptography costs every other command 14 ms at start (python -X importtime)
    from filegate.receipt_check import check_file, load_public_key, read_public_key

    if public_key is not None:
        result = check_file(file, read_public_key(public_key))
    else:
        fetched = stack_public_key(on.resolve())
        key = load_public_key(fetched.der, f"KMS key {fetched.key_id}")
        result = check_file(file, key, fetched.key_id)
    _render(result, on.output)
    if not result.verdict.valid:
        raise typer.Exit(1)


@app.command("get")
def get(
    upload_id: Annotated[str, typer.Argument(help="The upload's id (up-...)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the receipt to this file [default: stdout]")
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Fetch an ACCEPTED upload's signed receipt from the upload API, as it came."""
    receipt = UploadClient(_api_url(api), api_key or "").receipt(upload_id)
    parse_receipt(json.dumps(receipt))  # what the API answered is a receipt, or exit 2
    _write(json.dumps(receipt, indent=2) + "\n", out)


@app.command("public-key")
def public_key_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the PEM to this file [default: stdout]")
    ] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The receipt key's public key (PEM) and ARN, from the upload API."""
    answer = UploadClient(_api_url(api), api_key or "").receipt_public_key()
    if output is OutputFormat.json:
        print_json(answer)
        return
    _write(str(answer["public_key_pem"]), out)
    console_err.print(f"key {answer['key_id']} ({answer['signing_algorithm']})")


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console_err.print(f"written to {out}")


def _render(result: FileCheck, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(result.as_dict())
        return
    values: dict[str, Any] = {
        "result": "VALID" if result.verdict.valid else f"INVALID: {result.verdict.reason}",
        "key": result.key_id,
    }
    statement = result.statement or {}
    for name in ("upload_id", "partner_id", "key", "arrived_at", "verdict_at"):
        if name in statement:
            values[name.replace("_", " ") if name != "key" else "object key"] = statement[name]
    console.print(key_value_table(f"receipt {result.file}", values))
