"""`filegate dlq list|show|replay|purge`: the dead-letter queue, from the command line.

Each command finds the stack, builds ``ops.dlq.DeadLetters`` on its queue outputs and calls
one method. Purge asks for confirmation (``--yes`` skips it; without a terminal it refuses).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.progress import bars
from filegate.cli.render import OutputFormat, console, print_json, rows_table
from filegate.errors import QueueError
from filegate.ops import dlq
from filegate.ops.dlq import DeadLetter, DeadLetters

app = typer.Typer(help="The dead-letter queue: list, show, replay, purge.", no_args_is_help=True)

T = TypeVar("T")

MaxOption = Annotated[int, typer.Option("--max", min=1, help="At most this many messages")]


@app.command("list")
@stack_options
def list_messages(
    on: StackOptions,
    limit: MaxOption = dlq.DEFAULT_LIMIT,
) -> None:
    """Peek at the dead-letter queue: every message stays, visible again at once."""
    letters = _on_queues(on, lambda queues: queues.peek(limit))
    if on.output is OutputFormat.json:
        print_json([letter.summary() for letter in letters])
        return
    _print_letters(f"dead-letter queue: {len(letters)} message(s)", letters)


@app.command("show")
@stack_options
def show(
    on: StackOptions,
    message_id: Annotated[str, typer.Argument(help="The message id (see `filegate dlq list`)")],
) -> None:
    """One message whole: body (pretty-printed JSON when it is JSON) and attributes."""
    letter = _on_queues(on, lambda queues: queues.show(message_id))
    if on.output is OutputFormat.json:
        print_json(letter.whole())
        return
    console.print_json(data=letter.whole())


@app.command("replay")
@stack_options
def replay(
    on: StackOptions,
    limit: MaxOption = dlq.DEFAULT_LIMIT,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would move; move nothing")
    ] = False,
    message_ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="Only this message (repeat); unparseable ones too"),
    ] = None,
    include_unparseable: Annotated[
        bool,
        typer.Option(
            "--include-unparseable",
            help="Move messages that are no S3 notification too (they will fail again)",
        ),
    ] = False,
) -> None:
    """Move messages back to the ingest queue: receive, send, then delete."""
    only = tuple(message_ids or ())
    report = _on_queues(on, lambda queues: queues.replay(limit, dry_run, only, include_unparseable))
    if on.output is OutputFormat.json:
        print_json(report.as_dict())
        return
    verb = "would move" if dry_run else "moved"
    _print_letters(f"{verb} {len(report.moved)} message(s) to {report.destination}", report.moved)
    if report.left:
        _print_letters(f"left in {report.source}: {len(report.left)} message(s)", report.left)


@app.command("purge")
@stack_options
def purge(
    on: StackOptions,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete every message in the dead-letter queue (asks first)."""
    dead_letters = dlq.for_stack(on.resolve())
    if not yes:
        _confirm_purge(dead_letters.dead.url, dead_letters.dead.depth())
    report = dead_letters.purge()
    if on.output is OutputFormat.json:
        print_json(report.as_dict())
    else:
        console.print(f"purged {report.purged} message(s) from {report.queue}", highlight=False)


def _on_queues(on: StackOptions, work: Callable[[DeadLetters], T]) -> T:
    """Find the stack, then run one call on its queues with progress bars on stderr."""
    ref = on.resolve()
    with bars() as progress:
        return work(dlq.for_stack(ref, progress))


def _confirm_purge(url: str, depth: int) -> None:
    if not sys.stdin.isatty():
        raise QueueError(
            f"refusing to purge {url} without confirmation: no terminal to ask on;"
            " pass --yes to purge anyway"
        )
    if not typer.confirm(f"Delete all {depth} message(s) in {url}? This cannot be undone"):
        raise typer.Exit(1)


def _print_letters(title: str, letters: list[DeadLetter]) -> None:
    console.print(title, highlight=False)
    if letters:
        columns = ("message id", "sent", "receives", "keys", "events")
        console.print(rows_table("", columns, [_row(letter) for letter in letters]))


def _row(letter: DeadLetter) -> tuple[str, ...]:
    keys = ", ".join(letter.keys) or ("-" if letter.parseable else "unparseable")
    events = ", ".join(letter.event_names) or (letter.problem or "-")
    return (letter.message_id, letter.sent_at or "-", str(letter.receive_count), keys, events)
