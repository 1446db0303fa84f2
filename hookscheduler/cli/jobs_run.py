"""``jobs run | skip-next | next``: act on one job's schedule now."""

from __future__ import annotations

import click

from ..ops import jobs as jobs_lib
from ..ops import manual
from ..store.models import utcnow
from .base import CliState, echo, fail, pass_state
from .common import connect, local_iso
from .jobs import jobs
from .output import format_option, iso_utc, local, table, to_json


@jobs.command("run")
@click.argument("name")
@click.option("--force", is_flag=True, help="Run even while a previous run is queued or running, or the job is "
                                            "stopped.")
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
    """Skip NAME's next slot (logged as skipped); the slot after it fires as usual."""
    ctx = state.one()
    result = jobs_lib.skip_next(ctx.database(), name, ctx.calendar)
    tz = ctx.site.time_zone
    echo(f"skipped {result.job_name}'s run at {local(result.skipped_slot, tz)} (site {ctx.name}); "
         f"next run {local(result.next_execution, tz)}")


@jobs.command("next")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many fire times.")
@format_option
@pass_state
def next_cmd(state: CliState, name: str, count: int, fmt: str) -> None:
    """The next fire times of NAME, in the site's zone and in UTC (DST-correct)."""
    ctx = state.one()
    ctx.database()
    row = jobs_lib.get_job(name)
    tz = ctx.site.time_zone
    slots = jobs_lib.upcoming_slots(row, ctx.calendar, count, utcnow())
    if fmt == "json":
        echo(to_json([{"utc": iso_utc(s), "local": local_iso(s, tz)} for s in slots]))
        return
    echo(table([[local(s, tz), local_iso(s, tz), iso_utc(s)] for s in slots], ["local", "local (ISO)", "utc"]))
    sched = f"{row.frequency} ({row.cron_format})" if row.cron_format else row.frequency
    echo(f"{row.name}: {sched}, times in {tz.key}")
    if row.removed:
        echo("note: the job was removed from hooks; it does not fire")
    elif row.stopped:
        echo(f"note: the job is stopped; these slots are skipped until `hookscheduler jobs enable {row.name}`")
