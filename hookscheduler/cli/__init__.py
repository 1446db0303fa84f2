"""The ``hookscheduler`` command line: a thin layer that parses, calls one library function, and formats.

Commands live in one module per concept (``migrate_cmd``, ``jobs``, ...) and register themselves on
:data:`cli`. Every error is one line on stderr with an exit status per DESIGN §6, never a bare traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .base import CliState, cli, run_cli

#: Command modules, imported for their side effect of registering on ``cli``.
COMMAND_MODULES = (
    "migrate_cmd",
    "jobs",
    "schedule_cmd",
    "jobs_run",
    "jobs_history",
    "scheduler_cmd",
    "queues_cmd",
    "doctor_cmd",
    "worker_cmd",
)

for _mod in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_mod}")


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    sys.exit(run_cli(argv))


__all__ = ["CliState", "cli", "click", "main"]
