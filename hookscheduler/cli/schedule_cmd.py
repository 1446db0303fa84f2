"""``hookscheduler schedule`` (the loop) and ``hookscheduler tick`` (one step per site, then exit): both run
:class:`hookscheduler.schedule.step.SiteStep`, so a cron-driven bench is scheduled exactly as a looping one."""

from __future__ import annotations

import logging

import click

from ..broker.connection import check_redis, redis_for
from ..exceptions import HookSchedulerError
from ..ops.scheduler import mark_tick_command
from ..schedule.loop import Scheduler
from ..schedule.step import SiteStep
from ..store.models import utcnow
from ..store.shared import describe_shared, shared_databases
from .base import CliState, cli, echo, pass_state, print_config_notes, stderr
from .output import format_option, to_json


@cli.command()
@click.option("--verbose", "-v", is_flag=True, help="Log every pass that fires or skips something.")
@pass_state
def schedule(state: CliState, verbose: bool) -> None:
    """Run the scheduler loop in the foreground (SIGTERM / Ctrl-C stop it cleanly).

    Several `schedule` processes may run at once (on several hosts): each slot still fires once."""
    logging.getLogger("hookscheduler").setLevel(logging.INFO if verbose else logging.WARNING)
    scheduler = Scheduler(bench=state.bench, site=state.site)
    scheduler.refresh_sites()  # fail fast, with exit 2, on a broken bench before looping
    print_config_notes([state.ctx.site for state in scheduler.sites.values()])
    stderr(f"hookscheduler: scheduling {', '.join(scheduler.sites)} (pid {scheduler.instance})")
    scheduler.run()


@cli.command()
@format_option
@pass_state
def tick(state: CliState, fmt: str) -> int:
    """One scheduling step per site (or --site), then exit: for system cron or a Kubernetes CronJob."""
    results, failed = [], 0
    contexts = state.each()
    print_config_notes([ctx.site for ctx in contexts])
    skipped: set[str] = set()
    for group in shared_databases([ctx.site for ctx in contexts]):  # as the loop does: the first site only
        failed += 1
        skipped.update(site.name for site in group[1:])
        stderr(f"Error: {describe_shared(group)}; stepping only site {group[0].name} until then")
    for ctx in contexts:
        if ctx.name in skipped:
            continue
        try:
            conn = redis_for(ctx.site)
            check_redis(conn, ctx.site.redis_url)  # unreachable or wrong password: the one-line reason and hint
            now = utcnow()
            result = SiteStep(ctx).run(conn, now, sweep=True)  # the loop's step, with its sweep
            if not result.send_error:  # the pass completed, as its last tick says: cron drives this site
                mark_tick_command(conn, ctx.bench.bench_id, ctx.name, now)
        except Exception as exc:  # one bad site does not stop the others; the exit status says so
            failed += 1
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            kind = "" if isinstance(exc, HookSchedulerError) else f"{type(exc).__name__}: "
            stderr(f"Error: site {ctx.name}: {kind}{first}")
            continue
        finally:
            ctx.close()
        results.append(result)
        if result.send_error:
            failed += 1
            stderr(f"Error: site {ctx.name}: runs claimed but not sent ({result.send_error}); "
                   "they stay in the outbox and are sent by the next step")
    if fmt == "json":
        echo(to_json([{"site": r.site, "now": r.now, "due": r.due, "fired": r.fired, "skipped": r.skipped,
                       "missed": r.missed, "resent": r.resent, "lost_claims": r.lost_claims,
                       "inactive": r.inactive} for r in results]))
    else:
        for r in results:
            echo(f"site {r.site}: {r.due} due, {r.fired} fired, {r.skipped} skipped, {r.missed} missed"
                 + (f", {r.resent} re-sent" if r.resent else "")
                 + (f" ({r.inactive})" if r.inactive else ""))
    return 1 if failed else 0
