"""``hookscheduler worker``, ``worker-pool``, ``start`` and ``job-status``: running and watching background jobs."""

from __future__ import annotations

import click

from ..background.api import describe_job
from ..config import Site, load_bench, load_sites
from ..exceptions import BadInput, JobNotFound, SchemaError, shown
from ..ops import supervisor
from ..security.redact import register_secret
from ..security.secret_file import read_secret_file
from ..worker.process import STRATEGIES, start_worker, start_worker_pool
from .base import SITE_PROBLEMS, CliState, cli, echo, pass_state, print_config_notes, stderr
from .output import format_option, iso_utc, local, to_json

QUEUE_HELP = "Comma-separated queues, in priority order (default: short,default,long, then the custom queues)."


@cli.command()
@click.option("--queue", metavar="a,b", help=QUEUE_HELP)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="default", show_default=True,
              help="Dequeue order: queue priority, round robin, or random.")
@click.option("--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option("-u", "--rq-username", metavar="U", help="Redis ACL user (default: rq_username).")
@click.option("-p", "--rq-password", metavar="P",
              help="Redis ACL password (default: rq_password). Visible in `ps`: prefer $HOOKSCHEDULER_RQ_PASSWORD "
                   "or --rq-password-file.")
@click.option("--rq-password-file", metavar="PATH", type=click.Path(dir_okay=False),
              help="Read the Redis ACL password from the first line of this file (keep it mode 600).")
@pass_state
def worker(state: CliState, queue: str | None, burst: bool, strategy: str, quiet: bool, rq_username: str | None,
           rq_password: str | None, rq_password_file: str | None) -> None:
    """Run an RQ worker for every site of the bench (Ctrl-C: finish the current job and stop)."""
    bench = load_bench(state.bench)
    sites = load_sites(bench, state.site)
    print_config_notes(sites)
    require_current_schemas(sites)
    if rq_password_file is not None:
        if rq_password is not None:
            raise BadInput("give --rq-password or --rq-password-file, not both")
        rq_password = read_secret_file(rq_password_file, "--rq-password-file")
    elif rq_password is not None:
        register_secret(rq_password)
        stderr("Warning: --rq-password is visible to every user of this host in `ps`; use "
               "$HOOKSCHEDULER_RQ_PASSWORD or --rq-password-file instead")
    start_worker(queue=queue, quiet=quiet, rq_username=rq_username, rq_password=rq_password, burst=burst,
                 strategy=strategy, bench=state.bench, site=state.site)


def require_current_schemas(sites: list[Site]) -> None:
    """Refuse to start a worker for sites whose database's schema is not this hookscheduler's, as ``tick`` and
    ``schedule`` refuse them: a run writes its ledger rows, and under a newer schema (a newer hookscheduler
    migrated it) or an outdated one those writes may go wrong in ways no error reports. Checked once, at start
    (not per job). A SQLite file not made yet, or a database that cannot be reached now, does not stop the
    worker: it has nothing to write into until then, and each job opens the database itself."""
    from ..context import SiteContext
    from ..store.database import SCHEMA_VERSION, schema_mismatch, schema_version

    for site in sites:
        ctx = SiteContext(site)
        try:
            db = ctx.existing_database()
            version = schema_version(db) if db is not None else SCHEMA_VERSION
        except SITE_PROBLEMS:
            continue
        finally:
            ctx.close()
        if version != SCHEMA_VERSION:
            raise SchemaError(f"site {site.name}: {schema_mismatch(version)}; no worker started")


@cli.command("worker-pool")
@click.option("--queue", metavar="a,b", help=QUEUE_HELP)
@click.option("--num-workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="How many workers to run.")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--quiet", is_flag=True, help="Log warnings and errors only.")
@pass_state
def worker_pool(state: CliState, queue: str | None, num_workers: int, burst: bool, quiet: bool) -> None:
    """Run RQ's WorkerPool: N workers, respawned if one dies."""
    require_current_schemas(load_sites(load_bench(state.bench), state.site))
    start_worker_pool(queue=queue, num_workers=num_workers, quiet=quiet, burst=burst, bench=state.bench,
                      site=state.site)


@cli.command()
@click.option("--no-scheduler", is_flag=True, help="Workers only (the scheduler runs elsewhere).")
@pass_state
def start(state: CliState, no_scheduler: bool) -> int:
    """Development: the scheduler and workers for every queue (and a private redis-server if no Redis
    answers), with prefixed logs; Ctrl-C stops them all."""
    bench = load_bench(state.bench)
    sites = load_sites(bench, state.site)
    print_config_notes(sites)
    return supervisor.start(bench, sites, scheduler=not no_scheduler, site=state.site)


@cli.command("job-status")
@click.argument("job_id")
@format_option
@pass_state
def job_status(state: CliState, job_id: str, fmt: str) -> None:
    """Status of a background job or scheduled run: JOB_ID as enqueue returned it, or as the app chose it."""
    ctx = state.one()
    info = describe_job(job_id, ctx)
    if info is None:
        raise JobNotFound(f"job {shown(job_id)} not found on site {ctx.name}: never enqueued, or Redis dropped it "
                          "after rq_results_ttl / rq_job_failure_ttl (scheduled runs stay in `jobs history`)")
    if fmt == "json":
        echo(to_json(info))
        return
    tz = ctx.site.time_zone
    echo(f"{info['job_id']}: {info['status']}")
    if "queue" in info:
        echo(f"  {info['job_name'] or info['method']} ({info['method']}) on queue {info['queue']}")
        echo(f"  enqueued {local(info['enqueued_at'], tz)}, started {local(info['started_at'], tz)}, "
             f"ended {local(info['ended_at'], tz)}" + (f", worker {info['worker']}" if info["worker"] else ""))
        if info.get("error"):
            echo(f"  error: {info['error']}")
        if info.get("result") not in (None, "None"):
            echo(f"  result: {info['result']}")
    log = info.get("log")
    if log:
        echo(f"  log: {log['status']} ({log['trigger']} run of {log['job']} for {iso_utc(log['scheduled_for'])})"
             + (f": {log['reason']}" if log["reason"] else ""))
