"""``jobs run | skip-next | next``: act on one job's schedule now."""

from __future__ import annotations

import click

from ..ops import jobs as jobs_lib
from ..ops import manual
from ..ops import scheduler as sched
from ..schedule.claim import grace_seconds
from ..schedule.decide import Forecast
from ..store.models import utcnow
from .base import CliState, echo, fail, pass_state
from .common import connect, local_iso
from .jobs import jobs
from .output import format_option, iso_utc, local, table, to_json


@jobs.command("run")
@click.argument("name")
@click.option("--force", is_flag=True, help="Run even while a previous run is queued or running, the job is "
                                            "stopped, or the site is in maintenance mode.")
@pass_state
def run_cmd(state: CliState, name: str, force: bool) -> None:
    """Enqueue NAME now (trigger `manual`, logged in the job's history).

    Like a scheduled slot, a manual run is skipped (and logged as skipped) while the job's previous run is
    still queued or running, unless --force.
    """
    ctx = state.one()
    ctx.database()
    conn = connect(ctx)
    outcome = manual.run_job(ctx, conn, name, force=force)
    if outcome.status != "queued":
        fail(f"{name}: not enqueued: {outcome.reason}")
    echo(f"queued {outcome.job_name} (site {ctx.name}) on queue {outcome.queue} as RQ job {outcome.rq_job_id}")


@jobs.command("skip-next")
@click.argument("name")
@pass_state
def skip_next_cmd(state: CliState, name: str) -> None:
    """Skip NAME's next slot (logged as skipped); the slot after it fires as usual. When NAME is overdue, skip
    the catch-up the next pass would run: every slot due by now, logged as one skipped row."""
    ctx = state.one()
    result = jobs_lib.skip_next(ctx.database(), name, ctx.calendar)
    tz = ctx.site.time_zone
    echo(f"{result.describe(lambda t: local(t, tz))} (site {ctx.name}); next run {local(result.next_execution, tz)}")


@jobs.command("next")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many fire times.")
@format_option
@pass_state
def next_cmd(state: CliState, name: str, count: int, fmt: str) -> None:
    """What will really happen to NAME next, in the site's zone and in UTC (DST-correct): after downtime or a
    pause the one catch-up its policy runs first, then its next slots (skipped ones marked)."""
    ctx = state.one()
    ctx.database()
    row = jobs_lib.get_job(name)
    tz = ctx.site.time_zone
    now = utcnow()
    inactive, resume_at = sched.activity(ctx, now)
    plan = jobs_lib.next_runs(row, ctx.calendar, count, grace=grace_seconds(ctx), inactive=inactive,
                              resume_at=resume_at, now=now)
    if fmt == "json":
        echo(to_json([{"utc": iso_utc(f.at) if f.at else None, "local": local_iso(f.at, tz), "kind": f.kind,
                       "slot": iso_utc(f.slot), "slots": f.slots, "note": f.note} for f in plan]))
        return

    def when(f: Forecast) -> str:
        return "on resume" if f.at is None else "next pass" if f.at == now else local(f.at, tz)

    echo(table([[when(f), f.kind, local(f.slot, tz) + (f" (+{f.slots - 1} earlier)" if f.slots > 1 else ""),
                 f.note or ""] for f in plan], ["when", "what", "slot", "note"]))
    sched_txt = f"{row.frequency} ({row.cron_format})" if row.cron_format else row.frequency
    echo(f"{row.name}: {sched_txt}, catchup={row.catchup}, times in {tz.key}")
    if row.removed:
        echo("note: the job was removed from hooks; it does not fire")
