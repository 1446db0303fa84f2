"""``doctor``: every reason scheduled jobs might not be running, checked at once."""

from __future__ import annotations

import click

from ..ops.doctor import diagnose
from .base import CliState, cli, echo, pass_state
from .output import format_option, to_json


@cli.command("doctor")
@format_option
@pass_state
def doctor_cmd(state: CliState, fmt: str) -> None:
    """Check Redis, the database and its schema, the scheduler (state, process, last tick), overdue jobs,
    failed runs, and the workers and depth of every queue. Exit 1 when a problem is found.
    Without --site: every site."""
    report = diagnose(state.each())
    if fmt == "json":
        echo(to_json(report.as_dict()))
    else:
        site = None
        for c in report.checks:
            if c.site != site:
                site = c.site
                echo(f"-----Site {site}-----")
            mark = {True: "ok  ", False: "FAIL", None: "SKIP"}[c.ok]
            echo(f"  {mark}  {c.name:<18} {c.detail}")
            if c.hint:
                echo(f"        hint: {c.hint}")
        n, skipped = len(report.problems), len(report.skipped)
        echo((f"{n} problem(s) found" if n else "No problems found")
             + (f"; {skipped} check(s) could not run" if skipped else ""))
    if not report.ok:
        click.get_current_context().exit(1)
