"""`filegate events tail`: the verdict events the stack's bus received, readable or as JSON."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console_err, print_json
from filegate.ops.events import EventTail, PublishedEvent, Redrive
from filegate.ops.logs import DEFAULT_SINCE, parse_duration

app = typer.Typer(help="The verdict events on the stack's EventBridge bus.", no_args_is_help=True)


@app.command("tail")
@stack_options
def tail(
    on: StackOptions,
    since: Annotated[
        str, typer.Option("--since", help="How far back: 30s, 15m, 2h, 1d")
    ] = DEFAULT_SINCE,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C")
    ] = False,
) -> None:
    """Print the events published to the bus (time, detail-type, key, event_id)."""
    window = parse_duration(since)
    events = EventTail(on.resolve())
    if not follow:
        shown = events.read(window)
        if on.output is OutputFormat.json:
            print_json([event.document for event in shown])
            return
        for event in shown:
            sys.stdout.write(event.readable() + "\n")
        if not shown:
            console_err.print(f"no events published ({events.group}) in the last {since}")
        return
    try:
        for event in events.follow(window):
            _print_one(event, on.output)
    except KeyboardInterrupt:
        return


@app.command("redrive")
@stack_options
def redrive(
    on: StackOptions,
    limit: Annotated[int, typer.Option("--max", min=1, help="At most this many batches")] = 100,
) -> None:
    """Publish again the ledger changes whose batches reached the publisher's dead-letter queue
    (after fixing why they failed); exit 1 when any is left there."""
    results = Redrive(on.resolve()).run(limit)
    if on.output is OutputFormat.json:
        print_json([result.summary() for result in results])
    else:
        for result in results:
            state = "published" if result.published else f"left: {result.problem}"
            sys.stdout.write(
                f"{result.first}..{result.last}  {result.records} record(s)  {state}\n"
            )
        if not results:
            console_err.print("the events dead-letter queue is empty")
    if any(not result.published for result in results):
        raise typer.Exit(1)


def _print_one(event: PublishedEvent, output: OutputFormat) -> None:
    text = json.dumps(event.document) if output is OutputFormat.json else event.readable()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
