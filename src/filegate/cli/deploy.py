"""`filegate deploy`, `filegate releases`, `filegate rollback`: ship code, list and move `live`.

Each command finds the stack (the running local stack unless --profile, --endpoint-url or
--target aws say otherwise), calls one function in ``filegate.ops.deploy`` or
``filegate.ops.releases`` and renders the result; progress goes to stderr. ``deploy`` shows
the account preflight as a table; a dry run whose preflight failed exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import (
    OutputFormat,
    console,
    console_err,
    key_value_table,
    print_json,
    rows_table,
)
from filegate.errors import ConfigError
from filegate.ops import releases as releases_ops
from filegate.ops.deploy import DeployOptions, DeployResult, ResourceChange, StackEvent
from filegate.ops.deploy import deploy as run_deploy


class _ProgressObserver:
    """Steps and stack events on stderr, with a bar over the resources being changed."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("stack", total=None, visible=False)

    def step(self, message: str) -> None:
        self._progress.console.print(f"• {message}", highlight=False)

    def executing(self, changes: list[ResourceChange]) -> None:
        self._progress.update(self._task, total=len(changes), visible=True)

    def event(self, event: StackEvent) -> None:
        reason = f"  {event.reason}" if event.reason else ""
        colour = "red" if event.failed or "ROLLBACK" in event.status else "green"
        self._progress.console.print(
            f"  {event.timestamp}  [{colour}]{event.status:<28}[/{colour}]"
            f" {event.logical_id} ({event.resource_type}){reason}",
            highlight=False,
        )
        if event.resource_type != "AWS::CloudFormation::Stack" and event.status.endswith(
            "_COMPLETE"
        ):
            self._progress.advance(self._task)


def _parameters(values: list[str] | None) -> dict[str, str]:
    parsed = {}
    for value in values or []:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise ConfigError(f"--parameter {value!r} is not KEY=VALUE")
        parsed[name] = setting
    return parsed


@stack_options
def deploy(
    on: StackOptions,
    package: Annotated[
        Path | None,
        typer.Option("--package", help="A zip from `filegate package` (default: build one)"),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", help="KEY=VALUE for a template parameter; repeat"),
    ] = None,
    artifact_bucket: Annotated[
        str | None,
        typer.Option(
            "--artifact-bucket",
            help="Bucket for the zip [default: the stack's; on AWS"
            " filegate-artifacts-<account>-<region>]",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the preflight and the change set, change nothing"),
    ] = False,
) -> None:
    """Upload the Lambda package and create or update the stack through a change set."""
    location = on.locate()
    options = DeployOptions(package, _parameters(parameter), artifact_bucket, dry_run)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console_err, transient=True) as progress:
        result = run_deploy(location, options, _ProgressObserver(progress))
    if on.output is OutputFormat.json:
        print_json(result.as_dict())
    else:
        _show_deploy(result)
    console_err.print(_closing_line(result), highlight=False)
    if result.outcome == "preflight-failed":
        raise typer.Exit(1)


def _closing_line(result: DeployResult) -> str:
    if result.outcome == "dry-run" and result.replaced_failed_create:
        return (
            f"dry run: stack {result.stack_name} is ROLLBACK_COMPLETE (its first create failed);"
            " a deploy deletes it and creates it again. Nothing changed"
        )
    messages = {
        "no-changes": f"no changes: stack {result.stack_name} already runs this code and template",
        "dry-run": "dry run: change set deleted, nothing changed",
        "deployed": f"deployed: stack {result.stack_name} is {result.stack_status}",
        "preflight-failed": (
            f"preflight failed: stack {result.stack_name} would fail to deploy; do what the"
            " table says, then deploy again. Nothing changed"
        ),
    }
    return messages[result.outcome]


def _show_deploy(result: DeployResult) -> None:
    if result.preflight:
        rows = [
            ("PASS" if c.passed else "FAIL", c.name, c.detail, c.remedy) for c in result.preflight
        ]
        title = f"preflight for {result.stack_name}"
        console.print(rows_table(title, ("result", "check", "found", "what to do"), rows))
    if result.changes:
        rows = [(c.action, c.logical_id, c.resource_type, c.replacement) for c in result.changes]
        title = f"change set for {result.stack_name} ({result.change_set_type})"
        console.print(rows_table(title, ("action", "resource", "type", "replacement"), rows))
    if result.outputs:
        summary = {"live version": result.live_version or "-", **result.outputs}
        console.print(key_value_table(f"stack {result.stack_name}", summary))


@stack_options
def releases(
    on: StackOptions,
) -> None:
    """List the ingestion function's published versions and which one is live."""
    ref = on.resolve()
    found = releases_ops.list_releases(ref)
    if on.output is OutputFormat.json:
        print_json(found.as_dict())
        return
    rows = [
        ("*" if r.live else "", r.version, r.code_sha256, r.last_modified, r.description)
        for r in reversed(found.versions)
    ]
    title = f"releases of {found.function_name} (alias {found.alias} -> {found.live_version})"
    columns = ("live", "version", "code sha256", "published", "description")
    console.print(rows_table(title, columns, rows))


@stack_options
def rollback(
    on: StackOptions,
    to: Annotated[
        str | None, typer.Option("--to", help="The version to make live (default: the previous)")
    ] = None,
) -> None:
    """Move the `live` alias back to the previous version (or --to VERSION)."""
    ref = on.resolve()
    done = releases_ops.rollback(ref, to)
    if on.output is OutputFormat.json:
        print_json(done.as_dict())
    elif done.changed:
        console.print(
            f"{done.function_name}: {done.alias} moved from version {done.from_version}"
            f" to {done.to_version}",
            highlight=False,
        )
    else:
        console.print(f"{done.function_name}: version {done.to_version} is already live")
