"""Queues and workers: ``show-pending-jobs``, ``purge-jobs``, ``ready-for-migration``, ``workers list``,
``rq-jobs list|show|cancel|stop|delete``, ``trigger-scheduler-event``."""

from __future__ import annotations

import click

from ..broker.keys import site_prefix
from ..ops import manual, queues, rq_view
from ..ops.jobs import actor, check_event
from ..store.models import utcnow
from .base import CliState, cli, echo, fail, pass_state
from .common import ago, connect
from .output import format_option, humanize_seconds, local, table, to_json


@cli.command("show-pending-jobs")
@format_option
@pass_state
def show_pending_cmd(state: CliState, fmt: str) -> None:
    """Per queue: the site's queued, started, failed and scheduled jobs, and the totals."""
    ctx = state.one()
    counts = queues.pending_counts(connect(ctx), ctx.bench.bench_id, ctx.name, list(ctx.site.queues))
    if fmt == "json":
        echo(to_json(counts))
        return
    echo(f"-----Pending Jobs----- (site {ctx.name})")
    body = [[q, *(c[k] for k in queues.COUNTED)] for q, c in counts["queues"].items()]
    body.append(["total", *(counts["total"][k] for k in queues.COUNTED)])
    echo(table(body, ["queue", *queues.COUNTED]))


@cli.command("purge-jobs")
@click.option("--queue", metavar="Q", help="Only this queue (default: every queue).")
@click.option("--event", metavar="E", help="Only the queued scheduled runs of this event's jobs (e.g. daily).")
@pass_state
def purge_cmd(state: CliState, queue: str | None, event: str | None) -> None:
    """Delete the site's queued jobs; their scheduled runs are logged as skipped (purged)."""
    ctx = state.one()
    ctx.database()
    if queue is not None:  # `--queue ""` (an unset shell variable) must not mean "every queue"
        queues.check_queue(ctx.site, queue)
    if event is not None:
        check_event(event)
    result = queues.purge(ctx, connect(ctx), queue=queue, event=event, who=actor())
    per = ", ".join(f"{q}: {n}" for q, n in result.by_queue.items() if n)
    echo(f"Purged {result.purged} jobs" + (f" ({per})" if per else "")
         + (f", and dropped {result.outbox} unsent run(s) from the outbox" if result.outbox else ""))


@cli.command("ready-for-migration")
@pass_state
def ready_cmd(state: CliState) -> None:
    """Exit 0 when no job of the site is queued or running (in RQ or the outbox), else 1. Without --site (or
    with --site all): every site, ready only when each one is.

    A usage error exits 2, so that a wait loop can tell it from "not ready"."""
    waiting = 0
    for ctx in state.each():  # a migrate writes every site: every one must be idle
        r = queues.readiness(ctx, connect(ctx))
        if r.ready:
            echo(f"READY for migration: site {ctx.name} does not have any background jobs")
            continue
        waiting += 1
        echo(f"NOT READY for migration: site {ctx.name} has pending background jobs "
             f"({r.queued} queued, {r.started} running, {r.outbox} about to be sent)")
    if waiting:
        click.get_current_context().exit(1)


@cli.group("workers")
def workers() -> None:
    """RQ workers of the bench."""


@workers.command("list")
@format_option
@pass_state
def workers_list_cmd(state: CliState, fmt: str) -> None:
    """Workers listening on the bench's queues: state, queues, current job, counts, utilization."""
    ctx = state.one()
    now = utcnow()
    rows = rq_view.list_workers(connect(ctx), ctx.bench.bench_id, ctx.name, now)
    if fmt == "json":
        echo(to_json(rows))
        return
    tz = ctx.site.time_zone
    prefix = site_prefix(ctx.bench.bench_id, ctx.name)
    body = [[w["worker_name"], w["status"], w["queue_type"], w["pid"], _short_id(w["current_job_id"], prefix),
             w["successful_job_count"], w["failed_job_count"], f"{w['utilization_percent']:.1f}%",
             f"{local(w['last_heartbeat'], tz)} ({ago(w['last_heartbeat'], now)})"] for w in rows]
    echo(table(body, ["name", "status", "queues", "pid", "current job", "ok", "failed", "util", "last heartbeat"]))
    echo(f"{len(rows)} worker(s)")


def _short_id(job_id: str | None, prefix: str) -> str | None:
    return job_id[len(prefix):] if job_id and job_id.startswith(prefix) else job_id


@cli.group("rq-jobs")
def rq_jobs() -> None:
    """The site's RQ jobs (the RQ Job view): list, show, cancel, stop, delete."""


@rq_jobs.command("list")
@click.option("--queue", metavar="Q", help="Only this queue.")
@click.option("--status", type=click.Choice(rq_view.JOB_STATUSES), help="Only this RQ status.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@format_option
@pass_state
def rq_list_cmd(state: CliState, queue: str | None, status: str | None, limit: int, fmt: str) -> None:
    """The site's jobs in RQ, by status (queued, started, ... canceled)."""
    ctx = state.one()
    qs = [queues.check_queue(ctx.site, queue)] if queue is not None else list(ctx.site.queues)
    rows = rq_view.list_jobs(connect(ctx), ctx.bench.bench_id, ctx.name, qs, status, limit)
    if fmt == "json":
        echo(to_json(rows))
        return
    tz = ctx.site.time_zone
    prefix = site_prefix(ctx.bench.bench_id, ctx.name)
    body = [[_short_id(r["job_id"], prefix), r["job_name"], r["queue"], r["status"], local(r["creation"], tz),
             local(r["started_at"], tz), humanize_seconds(r["time_taken"])] for r in rows]
    echo(table(body, ["job id", "job name", "queue", "status", "created", "started", "time taken"]))
    echo(f"{len(rows)} job(s); ids without the site prefix {prefix}")


@rq_jobs.command("show")
@click.argument("job_id")
@format_option
@pass_state
def rq_show_cmd(state: CliState, job_id: str, fmt: str) -> None:
    """One job in detail, with its arguments and error."""
    ctx = state.one()
    view = rq_view.show(connect(ctx), ctx.bench.bench_id, ctx.name, job_id)
    if fmt == "json":
        echo(to_json(view))
        return
    tz = ctx.site.time_zone
    for key, value in view.items():
        if key == "exc_info":
            continue
        shown = local(value, tz) if key in ("creation", "enqueued_at", "started_at", "ended_at") else value
        echo(f"{key:>13}: {'-' if shown is None else shown}")
    if view.get("exc_info"):
        echo("     exc_info:")
        echo("\n".join("  " + line for line in str(view["exc_info"]).rstrip().splitlines()))


def _action(state: CliState, job_id: str, fn: rq_view.Action, verb: str) -> None:
    ctx = state.one()
    conn = connect(ctx)
    ctx.database()
    done = fn(ctx, conn, job_id, actor(), None)
    echo(f"{verb} RQ job {done} (site {ctx.name})")


@rq_jobs.command("cancel")
@click.argument("job_id")
@pass_state
def rq_cancel_cmd(state: CliState, job_id: str) -> None:
    """Cancel a queued job (it will not run)."""
    _action(state, job_id, rq_view.cancel, "canceled")


@rq_jobs.command("stop")
@click.argument("job_id")
@pass_state
def rq_stop_cmd(state: CliState, job_id: str) -> None:
    """Stop a running job (its worker kills the work horse)."""
    _action(state, job_id, rq_view.stop, "stop sent to")


@rq_jobs.command("delete")
@click.argument("job_id")
@pass_state
def rq_delete_cmd(state: CliState, job_id: str) -> None:
    """Delete a job from RQ (queue, registries and data)."""
    _action(state, job_id, rq_view.delete, "deleted")


@cli.command("trigger-scheduler-event")
@click.argument("target", metavar="EVENT|METHOD")
@click.option("--force", is_flag=True, help="Include stopped jobs, and run even while a previous run is active or "
                                            "the site is in maintenance mode.")
@format_option
@pass_state
def trigger_cmd(state: CliState, target: str, force: bool, fmt: str) -> None:
    """Enqueue now (trigger `event`) every job of EVENT (e.g. `daily`: every Daily, Daily Long and Daily
    Maintenance job), or the job a name or METHOD designates. Stopped jobs are left out unless --force."""
    ctx = state.one()
    ctx.database()
    kind, outcomes = manual.trigger_event(ctx, connect(ctx), target, force=force)
    if fmt == "json":
        echo(to_json({"target": target, "kind": kind, "outcomes": [o.as_dict() for o in outcomes]}))
    else:
        if not outcomes:
            echo(f"event {target} has no jobs on site {ctx.name}")
        for o in outcomes:
            tail = f" as RQ job {o.rq_job_id} on queue {o.queue}" if o.status == "queued" else f": {o.reason}"
            echo(f"{o.status} {o.job_name}{tail}")
    if kind != "event" and any(o.status != "queued" for o in outcomes):
        fail(f"{target}: not enqueued (see above)")
