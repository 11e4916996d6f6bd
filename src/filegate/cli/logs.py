"""`filegate logs`: the function's log events, readable, optionally one key's and followed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat, console_err, print_json
from filegate.ops.logs import DEFAULT_SINCE, LogLine, LogReader, parse_duration


@stack_options
def logs_command(
    on: StackOptions,
    key: Annotated[
        str | None, typer.Option("--key", help="Only the invocations that handled this key")
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="How far back: 30s, 15m, 2h, 1d")
    ] = DEFAULT_SINCE,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C")
    ] = False,
    function: Annotated[
        str | None,
        typer.Option("--function", help="Another function's logs [default: the ingest function]"),
    ] = None,
) -> None:
    """Print the function's log events (time, request id, level, message, key)."""
    window = parse_duration(since)
    reader = LogReader(on.resolve(), function)
    if not follow:
        shown = reader.read(window, key)
        if on.output is OutputFormat.json:
            print_json([event for event, _ in shown])
        else:
            _print_lines(line for _, line in shown)
            if not shown:
                console_err.print(f"no events in {reader.group} in the last {since}")
        return
    try:
        for event, line in reader.follow(window, key):
            _print_one(event, line, on.output)
    except KeyboardInterrupt:
        return


def _print_lines(lines: Iterable[LogLine]) -> None:
    for line in lines:
        sys.stdout.write(line.readable() + "\n")


def _print_one(event: dict[str, Any], line: LogLine, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
    else:
        sys.stdout.write(line.readable() + "\n")
    sys.stdout.flush()
