"""A ``click`` group that imports a command's module only when that command is used.

Importing every command module up front costs every command the imports of all of them: redis-py and RQ for
``migrate``, which needs neither (a few tenths of a second of the half second a deploy's ``migrate`` may
take). The root group instead knows each command by name, the modules that define it, and the first
paragraph of its help (what ``hookscheduler --help`` lists), and imports the modules on first use. A test
checks the table against the commands themselves, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from gettext import gettext as _
from typing import Any, NamedTuple

import click

from .._nogc import imports_without_gc


class LazyCommand(NamedTuple):
    """Where a root command is defined, and what the root ``--help`` lists for it without importing it."""

    #: the ``hookscheduler.cli`` modules that register it (a group's subcommands may span several)
    modules: tuple[str, ...]
    #: the first paragraph of the command's help (``click`` shortens it to the terminal's width)
    help: str


class LazyGroup(click.Group):
    """A group whose commands register themselves on it when their module is imported, on first use."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its modules imported first; an unknown name imports them all (an error path), so that
        ``click``'s "Did you mean" suggestions see every command, as they did when all were imported."""
        if cmd_name not in self.commands:
            spec = self.lazy_commands.get(cmd_name)
            self.load(spec.modules if spec is not None else self.all_modules())
        return self.commands.get(cmd_name)

    def all_modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for spec in self.lazy_commands.values() for m in spec.modules))

    def load(self, modules: tuple[str, ...]) -> None:
        with imports_without_gc():
            for module in modules:
                importlib.import_module(f"{__package__}.{module}")

    def listed(self, cmd_name: str) -> click.Command | None:
        """What ``--help`` lists for a command: the command when it is loaded, else a stand-in with its help."""
        cmd = self.commands.get(cmd_name)
        if cmd is None and cmd_name in self.lazy_commands:
            cmd = click.Command(cmd_name, help=self.lazy_commands[cmd_name].help)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``click.Group.format_commands`` with :meth:`listed` in place of :meth:`get_command`: help imports
        nothing."""
        commands = [(name, cmd) for name in self.list_commands(ctx)
                    if (cmd := self.listed(name)) is not None and not cmd.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in commands]
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)
