"""The top-level group's subcommands, each imported when it is first looked up.

A command's module imports its library (boto3 through ``filegate.aws``, ``filegate.ops``, the
local twin's modules, rich tables), and typer builds each command's parameters: doing it for
every command cost `filegate upload` about 0.3 s of start it did not use
(docs/benchmarks-uploads.md, "The CLI's start"). ``LazyGroup`` knows only names and where each
command lives; running `filegate upload` imports and builds the upload command alone, `filegate
--help` imports them all (it shows their help). This is click's "Lazily Loading Subcommands"
(https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands), done
through the commands mapping typer's group reads, so that lookup, listing, help and "Did you
mean" suggestions see every name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperGroup


class LazyCommands(MutableMapping[str, Any]):
    """Names in order; each command built by ``load`` on its first lookup, then kept.

    Values are typer's vendored click commands (``typer._click.Command``), hence ``Any``.
    """

    def __init__(self, names: Iterable[str], load: Callable[[str], Any]) -> None:
        self._commands: dict[str, Any] = dict.fromkeys(names)
        self._load = load

    def __getitem__(self, name: str) -> Any:
        command = self._commands[name]  # KeyError: no such command
        if command is None:
            try:
                command = self._commands[name] = self._load(name)
            except KeyError as exc:  # a fault in the command's module, not "no such command"
                raise RuntimeError(f"cannot load the command {name!r}: {exc!r}") from exc
        return command

    def __setitem__(self, name: str, command: Any) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


class LazyGroup(TyperGroup):
    """A typer group whose subcommands are named in ``lazy``: name -> "module:attribute".

    The attribute is a command function or a ``typer.Typer`` (a group); the order of ``lazy``
    is the order of `--help`. Subclass and set ``lazy``.
    """

    lazy: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        eager = self.commands
        self.commands = LazyCommands([*self.lazy, *eager], self._load)
        self.commands.update(eager)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # names only: typer's own reads every value

    def _load(self, name: str) -> Any:
        module_name, _, attribute = self.lazy[name].partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        # Registered on a Typer of our settings, as `app.command` / `app.add_typer` on the
        # top-level app would: the same click command as an app built all at once.
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode, add_completion=False)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        return typer.main.get_group(holder).commands[name]
