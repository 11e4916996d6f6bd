"""@stack_options: one declaration of the AWS-CLI-style options for every ops command."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.testing import CliRunner

from filegate.cli.options import StackOptions, stack_options
from filegate.cli.render import OutputFormat

seen: list[tuple[StackOptions, int]] = []


def probe(
    on: StackOptions,
    count: Annotated[int, typer.Option("--count", min=1, help="A command's own option")] = 1,
) -> None:
    seen.append((on, count))


app = typer.Typer()
app.command("probe")(stack_options(probe))


def run(*args: str) -> tuple[int, str]:
    seen.clear()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


def test_defaults_name_the_local_stack_as_a_table() -> None:
    code, _ = run()
    assert code == 0
    assert seen == [(StackOptions(OutputFormat.table, None, None, None, None, "local"), 1)]


def test_every_shared_option_reaches_the_command_beside_its_own() -> None:
    code, _ = run(
        *("--count", "3", "--output", "json", "--profile", "prod", "--region", "eu-west-1"),
        *("--endpoint-url", "http://127.0.0.1:9", "--stack", "s", "--target", "aws"),
    )
    assert code == 0
    assert seen == [
        (StackOptions(OutputFormat.json, "prod", "eu-west-1", "http://127.0.0.1:9", "s", "aws"), 3)
    ]


def test_help_lists_the_commands_own_options_then_the_shared_ones_in_order() -> None:
    code, text = run("--help")
    assert code == 0
    positions = [
        text.index(flag)
        for flag in (
            "--count",
            "--output",
            "--profile",
            "--region",
            "--endpoint-url",
            "--stack",
            "--target",
        )
    ]
    assert positions == sorted(positions)


def test_bad_input_is_refused_before_the_command_runs() -> None:
    code, text = run("--output", "yaml")
    assert code == 2
    assert "--output" in text
    assert seen == []
    code, _ = run("--count", "0")
    assert code == 2
    assert seen == []
