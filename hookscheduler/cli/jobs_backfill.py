"""``jobs backfill``: run a job for past slots no run served, exactly once per slot."""

from __future__ import annotations

import click

from ..ops import backfill as backfill_lib
from ..store.models import utcnow
from .base import CliState, echo, pass_state
from .common import connect, moment
from .jobs import jobs
from .output import format_option, local, to_json


@jobs.command("backfill")
@click.argument("name")
@click.option("--from", "start", required=True, metavar="T",
              help="First moment of the range: ISO (site-local unless it has an offset) or relative (3d, 12h).")
@click.option("--to", "end", required=True, metavar="T", help="Last moment of the range (not after now).")
@click.option("--policy", type=click.Choice([str(p) for p in backfill_lib.POLICIES]), default="once", show_default=True,
              help="once: one run covers every slot; all: one run per slot.")
@click.option("--yes", is_flag=True, help=f"Confirm more than {backfill_lib.BACKFILL_CAP} slots.")
@click.option("--force", is_flag=True, help="Backfill a stopped job too, or while the site is in maintenance mode.")
@click.option("--dry-run", is_flag=True, help="Show the slots that would run; record and send nothing.")
@format_option
@pass_state
def backfill_cmd(state: CliState, name: str, start: str, end: str, policy: str, yes: bool, force: bool,
                 dry_run: bool, fmt: str) -> None:
    """Run NAME for its past slots in --from..--to that no run served (trigger `backfill`).

    Each slot runs at most once, however often the command is repeated and while the scheduler runs: slots
    a run already served are left out, and slots from the job's next slot on are the scheduler's (its
    catch-up policy serves them). More than the cap of slots needs --yes.
    """
    ctx = state.one()
    now = utcnow()
    first = moment(ctx, start, "--from", now)
    last = moment(ctx, end, "--to", now)
    assert first is not None and last is not None  # both options are required
    conn = None if dry_run else connect(ctx)
    result = backfill_lib.backfill(ctx, conn, name, first, last, policy=policy, confirmed=yes, force=force,
                                   dry_run=dry_run, now=now)
    if fmt == "json":
        echo(to_json(result.as_dict()))
        return
    tz = ctx.site.time_zone
    echo(f"{result.job_name}: {result.in_range} slot(s) in range, {result.already_ran} already ran, "
         f"{result.left_to_scheduler} left to the scheduler, {len(result.eligible)} to backfill")
    if result.before_horizon and result.horizon is not None:
        echo(f"left out {result.before_horizon} slot(s) up to {local(result.horizon.through, tz)}: "
             f"{result.horizon.why}, so whether they ran is no longer known (`jobs run` runs one by hand)")
    if dry_run:
        for slot in result.eligible:
            echo(f"would run {local(slot, tz)}")
        return
    for run in result.runs:
        covers = f" covering {run.slots} slots from {local(run.first_slot, tz)}" if run.slots > 1 else ""
        echo(f"queued {result.job_name} for {local(run.scheduled_for, tz)}{covers} on queue {result.queue} "
             f"as RQ job {run.rq_job_id}")
