"""The ``hookscheduler`` command line: a thin layer that parses, calls one library function, and formats.

Commands live in one module per concept (``migrate_cmd``, ``jobs``, ...) and register themselves on
:data:`cli` when imported. The root group imports a command's modules only when that command is used
(:mod:`.lazy`, table :data:`.base.COMMANDS`), so that a command pays only for its own imports. Every error is
one line on stderr with the exit status of :class:`~hookscheduler.exceptions.HookSchedulerError`, never a
bare traceback.
"""

from __future__ import annotations

import sys
from typing import Any

from .._nogc import imports_without_gc

with imports_without_gc():
    from .._peewee import import_deferred

    import_deferred()  # before anything imports peewee: psycopg2 only once a PostgreSQL site is opened

    import click

    from .base import CliState, cli, run_cli


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


__all__ = ["CliState", "cli", "click", "main", "run_cli"]
