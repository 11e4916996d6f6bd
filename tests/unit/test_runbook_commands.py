"""The runbook's filegate commands exist, with the options it gives them.

docs/runbook.md is what an operator follows under pressure: a renamed command or option must
fail here, not during an incident. (Each procedure is also run end to end by the e2e tests
the runbook names.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from filegate.cli import app

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


def _commands() -> list[str]:
    lines = []
    for block in _BLOCK.findall(RUNBOOK.read_text("utf-8")):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("filegate "):
                lines.append(command)
    return lines


def _split(command: str) -> tuple[list[str], list[str]]:
    """(the command words, the --options) of one runbook line."""
    words = command.replace("[", " ").replace("]", " ").split()[1:]
    path = []
    for word in words:
        if word.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    options = [w.split("=", 1)[0] for w in words if w.startswith("--")]
    return path, options


@pytest.mark.parametrize("command", _commands())
def test_runbook_command_exists_with_its_options(command: str) -> None:
    path, options = _split(command)
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"{command!r}: {result.output}"
    for option in options:
        assert option in result.output, f"{command!r}: no {option} in `filegate {' '.join(path)}`"


def test_the_runbook_has_commands() -> None:
    assert len(_commands()) >= 15
