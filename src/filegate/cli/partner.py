"""`filegate partner add|list|disable|rotate-key`: manage who may upload.

Each command finds the stack (the running local stack unless --profile, --endpoint-url or
--target aws say otherwise), builds the partner registry on its PartnersTableName output and
calls one method. An API key is printed once, by `add` and `rotate-key`; only its hash is kept.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from filegate import stackref
from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, console_err, print_json, rows_table
from filegate.outputs import PARTNERS_TABLE_NAME, UPLOAD_API_URL
from filegate.uploads.partners import Partner, PartnerRegistry

app = typer.Typer(help="Partners: who may upload, where, and with which key.", no_args_is_help=True)

KEY_WARNING = (
    "[yellow]warning:[/yellow] this API key is shown once and is not stored (only its hash is):"
    " hand it to the partner now"
)

PartnerIdArgument = Annotated[str, typer.Argument(help="The partner's id (see `partner list`)")]


def _registry(ref: stackref.StackRef) -> PartnerRegistry:
    return PartnerRegistry(ref.output(PARTNERS_TABLE_NAME), ref.client("dynamodb"))


@app.command("add")
@stack_options
def add(
    on: StackOptions,
    name: Annotated[str, typer.Argument(help="The partner's name")],
    max_size: Annotated[
        int | None, typer.Option("--max-size", min=1, help="Largest upload, in bytes")
    ] = None,
    allow_type: Annotated[
        list[str] | None,
        typer.Option("--allow-type", help="A content type it may send (image/* works); repeat"),
    ] = None,
) -> None:
    """Create a partner and print its API key (once)."""
    ref = on.resolve()
    partner, api_key = _registry(ref).add(name, max_size, allow_type or ())
    document = {**partner.as_dict(), "api_key": api_key}
    if UPLOAD_API_URL in ref.outputs:
        document["api_url"] = ref.outputs[UPLOAD_API_URL]
    _show_key(document, on.output, f"partner {partner.partner_id}")


@app.command("list")
@stack_options
def list_partners(
    on: StackOptions,
) -> None:
    """Show every partner (never a key)."""
    partners = _registry(on.resolve()).list()
    if on.output is OutputFormat.json:
        print_json([p.as_dict() for p in partners])
        return
    columns = ("partner_id", "name", "status", "prefix", "max_size", "allowed_types", "created_at")
    console.print(rows_table("partners", columns, [_row(p) for p in partners]))


@app.command("disable")
@stack_options
def disable(
    on: StackOptions,
    partner_id: PartnerIdArgument,
) -> None:
    """Refuse the partner's key from the next request on."""
    partner = _registry(on.resolve()).disable(partner_id)
    if on.output is OutputFormat.json:
        print_json(partner.as_dict())
    else:
        console.print(f"partner {partner.partner_id} is {partner.status}")


@app.command("rotate-key")
@stack_options
def rotate_key(
    on: StackOptions,
    partner_id: PartnerIdArgument,
) -> None:
    """Replace the partner's key; the old one stops working at once."""
    registry = _registry(on.resolve())
    api_key = registry.rotate_key(partner_id)
    _show_key({"partner_id": partner_id, "api_key": api_key}, on.output, f"partner {partner_id}")


def _show_key(document: dict[str, Any], output: OutputFormat, title: str) -> None:
    if output is OutputFormat.json:
        print_json(document)
    else:
        rows = [(k, _cell(v)) for k, v in document.items()]
        console.print(rows_table(title, ("field", "value"), rows))
    console_err.print(KEY_WARNING)


def _row(partner: Partner) -> tuple[Any, ...]:
    values = partner.as_dict()
    return tuple(
        _cell(values[c])
        for c in (
            "partner_id",
            "name",
            "status",
            "prefix",
            "max_size",
            "allowed_types",
            "created_at",
        )
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value) or "any"
    return str(value)
