"""`filegate partner add|update|usage|list|disable|rotate-key|webhook`: manage who may upload.

Each command finds the stack (the running local stack unless --profile, --endpoint-url or
--target aws say otherwise), builds the partner registry on its PartnersTableName output and
calls one method. An API key is printed once, by `add` and `rotate-key`; only its hash is kept.
`add` and `update` take the partner's quotas (docs/quotas.md); `usage` shows its use of them.
`webhook set|show|remove|redrive` manage the partner's signed webhook (``ops.webhooks``,
docs/webhooks.md); `set` prints its signing secret once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from filegate import stackref
from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console, console_err, print_json, rows_table
from filegate.ops.webhooks import PartnerWebhooks
from filegate.outputs import PARTNERS_TABLE_NAME, UPLOAD_API_URL
from filegate.publish.bus import RetryPolicy
from filegate.quotas import DAILY_BYTES, DAILY_UPLOADS, MAX_PENDING, RATE, Quotas
from filegate.uploads.partners import Partner, PartnerRegistry

app = typer.Typer(help="Partners: who may upload, where, and with which key.", no_args_is_help=True)
webhook_app = typer.Typer(
    help="A partner's signed webhook: its verdict events POSTed to its URL.", no_args_is_help=True
)
app.add_typer(webhook_app, name="webhook")

WEBHOOK_WARNING = (
    "[yellow]warning:[/yellow] this webhook secret is shown once: hand it to the partner now;"
    " it verifies each webhook's signature (docs/webhooks.md)"
)
KEY_WARNING = (
    "[yellow]warning:[/yellow] this API key is shown once and is not stored (only its hash is):"
    " hand it to the partner now"
)

PartnerIdArgument = Annotated[str, typer.Argument(help="The partner's id (see `partner list`)")]
_DEFAULTS = Quotas()
DailyUploads = Annotated[
    int | None,
    typer.Option(
        "--daily-uploads",
        min=1,
        help=f"Uploads it may declare per UTC day [default: {_DEFAULTS.daily_uploads:,}]",
    ),
]
DailyBytes = Annotated[
    int | None,
    typer.Option(
        "--daily-bytes",
        min=1,
        help=f"Bytes (declared sizes) per UTC day [default: {_DEFAULTS.daily_bytes:,} = 10 TiB]",
    ),
]
MaxPending = Annotated[
    int | None,
    typer.Option(
        "--max-pending",
        min=1,
        help=f"Uploads declared and not yet ended, at once [default: {_DEFAULTS.max_pending}]",
    ),
]
Rate = Annotated[
    int | None,
    typer.Option(
        "--rate", min=1, help=f"Requests per second to the upload API [default: {_DEFAULTS.rate}]"
    ),
]


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
    daily_uploads: DailyUploads = None,
    daily_bytes: DailyBytes = None,
    max_pending: MaxPending = None,
    rate: Rate = None,
) -> None:
    """Create a partner and print its API key (once)."""
    ref = on.resolve()
    limits = _limits(daily_uploads, daily_bytes, max_pending, rate)
    partner, api_key = _registry(ref).add(name, max_size, allow_type or (), limits)
    document = {**partner.as_dict(), "api_key": api_key}
    if UPLOAD_API_URL in ref.outputs:
        document["api_url"] = ref.outputs[UPLOAD_API_URL]
    _show_key(document, on.output, f"partner {partner.partner_id}")


@app.command("update")
@stack_options
def update(
    on: StackOptions,
    partner_id: PartnerIdArgument,
    daily_uploads: DailyUploads = None,
    daily_bytes: DailyBytes = None,
    max_pending: MaxPending = None,
    rate: Rate = None,
) -> None:
    """Change the partner's quotas (those given); they apply from its next request."""
    limits = _limits(daily_uploads, daily_bytes, max_pending, rate)
    partner = _registry(on.resolve()).update(partner_id, limits)
    if on.output is OutputFormat.json:
        print_json(partner.as_dict())
        return
    rows = [(name, f"{value:,}") for name, value in partner.quotas.as_dict().items()]
    console.print(rows_table(f"partner {partner.partner_id} quotas", ("quota", "limit"), rows))


@app.command("usage")
@stack_options
def usage(
    on: StackOptions,
    partner_id: PartnerIdArgument,
) -> None:
    """Show the partner's use of each quota: today's (UTC) uploads and bytes, pending
    uploads, and requests in the current second."""
    uses = _registry(on.resolve()).usage(partner_id)
    if on.output is OutputFormat.json:
        print_json({"partner_id": partner_id, "quotas": [use.as_dict() for use in uses]})
        return
    columns = ("quota", "limit", "used", "left", "resets in")
    rows = []
    for use in uses:
        values = use.as_dict()
        resets = "-" if use.resets_in_seconds is None else f"{use.resets_in_seconds} s"
        rows.append((use.quota, f"{use.limit:,}", f"{use.used:,}", f"{values['left']:,}", resets))
    console.print(rows_table(f"partner {partner_id} usage", columns, rows))


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


def _limits(
    daily_uploads: int | None, daily_bytes: int | None, max_pending: int | None, rate: int | None
) -> dict[str, int]:
    """The quotas given on the command line, by name."""
    given = {DAILY_UPLOADS: daily_uploads, DAILY_BYTES: daily_bytes}
    given |= {MAX_PENDING: max_pending, RATE: rate}
    return {name: value for name, value in given.items() if value is not None}


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
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in value.items()
        )
    return str(value)


_RETRY = RetryPolicy()


@webhook_app.command("set")
@stack_options
def webhook_set(
    on: StackOptions,
    partner_id: PartnerIdArgument,
    url: Annotated[str, typer.Argument(help="The partner's https:// endpoint")],
    retries: Annotated[
        int,
        typer.Option("--retries", min=0, max=185, help="Retry attempts before the DLQ"),
    ] = _RETRY.attempts,
    max_age: Annotated[
        int,
        typer.Option("--max-age", min=60, max=86400, help="Seconds an event is retried for"),
    ] = _RETRY.max_age_seconds,
) -> None:
    """Send the partner's verdict events, signed, to URL; a new secret each time (shown once)."""
    done = PartnerWebhooks(on.resolve()).set(partner_id, url, RetryPolicy(retries, max_age))
    if on.output is OutputFormat.json:
        print_json(done.document())
    else:
        rows = [(k, _cell(v)) for k, v in done.document().items()]
        console.print(rows_table(f"partner {partner_id} webhook", ("field", "value"), rows))
    console_err.print(WEBHOOK_WARNING)


@webhook_app.command("show")
@stack_options
def webhook_show(on: StackOptions, partner_id: PartnerIdArgument) -> None:
    """Show the partner's webhook: URL, rule, retries, dead-letter queue (never the secret)."""
    document = PartnerWebhooks(on.resolve()).show(partner_id)
    if on.output is OutputFormat.json:
        print_json(document)
        return
    rows = [(k, _cell(v)) for k, v in document.items()]
    console.print(rows_table(f"partner {partner_id} webhook", ("field", "value"), rows))


@webhook_app.command("redrive")
@stack_options
def webhook_redrive(
    on: StackOptions,
    limit: Annotated[int, typer.Option("--max", min=1, help="At most this many webhooks")] = 100,
) -> None:
    """Put the webhooks of the webhook dead-letter queue back on the bus (once the partner's
    endpoint works again); exit 1 when any is left there."""
    results = PartnerWebhooks(on.resolve()).redrive(limit)
    if on.output is OutputFormat.json:
        print_json(results)
    else:
        for result in results:
            state = "redriven" if result["redriven"] else "left: not a webhook event"
            console.print(f"{result['message_id']}  {result.get('partner_id', '-')}  {state}")
        if not results:
            console_err.print("the webhook dead-letter queue is empty")
    if any(not result["redriven"] for result in results):
        raise typer.Exit(1)


@webhook_app.command("remove")
@stack_options
def webhook_remove(on: StackOptions, partner_id: PartnerIdArgument) -> None:
    """Stop the partner's webhook: delete its rule, destination, connection and secret."""
    removed = PartnerWebhooks(on.resolve()).remove(partner_id)
    if on.output is OutputFormat.json:
        print_json({"partner_id": partner_id, "removed": removed})
    else:
        console.print(f"partner {partner_id}: webhook {'removed' if removed else 'not set'}")
