"""``hookscheduler jobs ...``: the Scheduled Job Type table and the operator's toggles."""

from __future__ import annotations

import click

from ..ops import jobs as jobs_lib
from .base import CliState, cli, echo, pass_state
from .output import format_option, local, one_line_text, table, to_json


@cli.group()
def jobs() -> None:
    """Scheduled jobs: list, toggle, run, inspect."""


@jobs.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Include jobs removed from hooks.")
@format_option
@pass_state
def list_cmd(state: CliState, include_removed: bool, fmt: str) -> None:
    """The Scheduled Job Type table, with the last and next run."""
    ctx = state.one()
    ctx.database()
    rows = jobs_lib.list_jobs(include_removed)
    if fmt == "json":
        echo(to_json(rows))
        return
    tz = ctx.site.time_zone
    body = []
    for r in rows:
        sched = f"{r['frequency']} ({r['cron_format']})" if r["cron_format"] else r["frequency"]
        state_txt = "removed" if r["removed"] else ("STOPPED" if r["stopped"] else "active")
        if r["stopped"] and r["stopped_note"]:
            state_txt += f": {r['stopped_note']}"
        body.append([r["name"], sched, r["queue"], state_txt, local(r["last_execution"], tz),
                     r["last_status"], local(r["next_execution"], tz)])
    echo(table(body, ["name", "schedule", "queue", "state", "last run", "status", "next run"]))
    echo(f"{len(rows)} job(s), site {ctx.name}, times in {tz.key}")


@jobs.command("enable")
@click.argument("name")
@pass_state
def enable_cmd(state: CliState, name: str) -> None:
    """Let NAME fire again from its next slot (no burst for the slots it skipped)."""
    ctx = state.one()
    row = jobs_lib.set_stopped(ctx.database(), name, False)
    echo(f"enabled {row.name} (site {ctx.name}); next run {local(row.next_execution, ctx.site.time_zone)}")


@jobs.command("disable")
@click.argument("name")
@click.option("--note", callback=one_line_text, help="Why it is stopped (shown in jobs list).")
@pass_state
def disable_cmd(state: CliState, name: str, note: str | None) -> None:
    """Stop NAME: its slots are logged as skipped until it is enabled again."""
    ctx = state.one()
    row = jobs_lib.set_stopped(ctx.database(), name, True, note)
    echo(f"disabled {row.name} (site {ctx.name}) by {row.stopped_by}" + (f": {note}" if note else ""))
