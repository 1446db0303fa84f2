"""``hookscheduler jobs ...``: the Scheduled Job Type table and the operator's toggles."""

from __future__ import annotations

import click

from ..ops import jobs as jobs_lib
from ..ops.notes import automatic_end
from ..store.models import utcnow
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
    rows = jobs_lib.list_jobs(include_removed, now=utcnow())
    if fmt == "json":
        echo(to_json(rows))
        return
    tz = ctx.site.time_zone
    body = []
    for r in rows:
        sched = f"{r['frequency']} ({r['cron_format']})" if r["cron_format"] else r["frequency"]
        state_txt = jobs_lib.stop_state(r)
        if state_txt == "STOPPED" and r["stopped_until"]:
            state_txt += f" until {local(r['stopped_until'], tz)}"
        if state_txt.startswith("STOPPED") and r["stopped_note"]:
            state_txt += f": {r['stopped_note']}"
        if r["problem"]:
            state_txt = f"INVALID (skipped): {r['problem']}"
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
@click.option("--until", "until_text", metavar="T",
              help="Enable it again by itself at T: an ISO time (site zone unless it has an offset) or a duration "
                   "ahead (30m, 2h, 1d).")
@pass_state
def disable_cmd(state: CliState, name: str, note: str | None, until_text: str | None) -> None:
    """Stop NAME: its slots are logged as skipped until it is enabled again (or until T). Stopping a stopped
    job again keeps its first note and time unless --note is given; its end is the new --until, and without
    one the stop no longer ends by itself."""
    ctx = state.one()
    now = utcnow()
    until = automatic_end(until_text, ctx, now)
    db = ctx.database()
    before = jobs_lib.get_job(name)
    old_end = before.stopped_until if jobs_lib.stopped_now(before, now) else None
    row = jobs_lib.set_stopped(db, name, True, note, until=until, now=now)
    tz = ctx.site.time_zone
    end = f" until {local(row.stopped_until, tz)}" if row.stopped_until else ""
    echo(f"disabled {row.name} (site {ctx.name}) by {row.stopped_by}{end}"
         + (f": {row.stopped_note}" if row.stopped_note else ""))
    if old_end is not None and until is None:
        echo(f"its end ({local(old_end, tz)}) is removed: it stays stopped until "
             f"`hookscheduler jobs enable {row.name}`")
