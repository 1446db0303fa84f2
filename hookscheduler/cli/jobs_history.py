"""``jobs history | missed | explain``: what ran, what did not, and why."""

from __future__ import annotations

from typing import Any

import click

from ..broker.connection import redis_for
from ..exceptions import ServiceUnavailable
from ..ops import explain as explain_lib
from ..ops import history as history_lib
from ..store.models import LOG_STATUSES, utcnow
from .base import CliState, echo, pass_state, stderr
from .common import ago, moment, when
from .jobs import jobs
from .output import (
    format_option,
    header_line,
    humanize_seconds,
    json_array_chunks,
    local,
    table,
    table_cells,
    table_line,
    to_json,
)


def _reason(row: dict[str, Any]) -> str:
    return str(row["error"] or row["reason"] or "")


#: Lines printed per write.
PAGE = 1000
#: Joins a kept row's cells: a control character, which table_cells never leaves in a cell (it escapes them).
_SEP = "\x1f"


@jobs.command("history")
@click.argument("name", required=False)
@click.option("--status", type=click.Choice(LOG_STATUSES), help="Only rows with this status.")
@click.option("--since", metavar="T", help="Only slots at or after T: ISO date/time (site zone) or 2h, 3d, 1w.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@format_option
@pass_state
def history_cmd(state: CliState, name: str | None, status: str | None, since: str | None, limit: int,
                fmt: str) -> None:
    """The run history (Scheduled Job Log), newest slot first: of NAME, or of every job.

    The rows are read a page at a time and never all held: JSON is written as it is read, text keeps only
    the cells it prints."""
    ctx = state.one()
    ctx.database()
    after = moment(ctx, since, "--since")
    rows = history_lib.iter_history(name, status, after, limit)
    if fmt == "json":
        for chunk in json_array_chunks(rows):
            click.echo(chunk, nl=False)  # redacted by json_array_chunks
        click.echo()
        return
    tz = ctx.site.time_zone
    head = ([] if name else ["job"]) + ["slot", "trigger", "status", "slots", "queued", "started", "finished",
                                         "duration", "reason / error"]

    def cells(row: dict[str, Any]) -> list[str]:
        return table_cells(([] if name else [row["job_name"]])
                           + [local(row["scheduled_for"], tz), row["trigger"], row["status"], row["slots"],
                              when(row["enqueued_at"], row["scheduled_for"], tz),
                              when(row["started_at"], row["scheduled_for"], tz),
                              when(row["finished_at"], row["scheduled_for"], tz),
                              humanize_seconds(row["duration"]), _reason(row)])

    # Each row is kept as one string of its cells (about 200 bytes), not as the row read: 100,000 rows with
    # their tracebacks would hold hundreds of MB. The widths are known once the last row is read.
    kept: list[str] = []
    widths = [len(h) for h in head]
    for row in rows:
        shown = cells(row)
        widths = [max(w, len(c)) for w, c in zip(widths, shown, strict=True)]
        kept.append(_SEP.join(shown))
    echo(header_line(head, widths))
    for i in range(0, len(kept), PAGE):
        echo("\n".join(table_line(line.split(_SEP), widths) for line in kept[i:i + PAGE]))
    echo(f"{len(kept)} row(s){' (limit reached: --limit N for more)' if len(kept) == limit else ''}, "
         f"site {ctx.name}, times in {tz.key}")


@jobs.command("missed")
@click.argument("name", required=False)
@click.option("--since", metavar="T", help="Only slots at or after T: ISO date/time (site zone) or 2h, 3d, 1w.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Rows listed (the newest); the per-job counts always cover the whole window.")
@format_option
@pass_state
def missed_cmd(state: CliState, name: str | None, since: str | None, limit: int, fmt: str) -> None:
    """Missed and skipped slots with their reasons, and the catch-up runs missed slots were folded into,
    grouped per job: each job's counts over the whole window, and the newest --limit rows."""
    ctx = state.one()
    ctx.database()
    report = history_lib.missed(moment(ctx, since, "--since"), name, limit)
    if fmt == "json":
        echo(to_json([g.as_dict() for g in report.groups]))
        if report.truncated:
            stderr(_truncation(report))
        return
    tz = ctx.site.time_zone
    if not report.groups:
        echo(f"no missed or skipped slots{' since ' + since if since else ''} (site {ctx.name})")
        return
    if report.truncated:
        echo(_truncation(report))
    for g in report.groups:
        echo(f"{g.job_name}: {g.missed_slots} missed, {g.skipped_slots} skipped, {g.caught_up_slots} run late "
             f"in {g.caught_up_runs} catch-up run(s)")
        if g.truncated:
            echo(f"  (the newest {len(g.entries)} of its {g.rows} rows listed)")
        if not g.entries:
            continue
        body = []
        for e in g.entries:
            first, last = e["first_slot"] or e["scheduled_for"], e["last_slot"] or e["scheduled_for"]
            span = local(first, tz) if first == last else f"{local(first, tz)} .. {when(last, first, tz)}"
            body.append([span, e["status"], e["slots"], e["outcome"], e["reason"] or ""])
        echo("  " + table(body, ["slot(s)", "status", "slots", "outcome", "reason"]).replace("\n", "\n  "))
    if report.truncated:
        echo(_truncation(report))
    echo(f"times in {tz.key}")


def _truncation(report: history_lib.MissedReport) -> str:
    return (f"showing the newest {report.shown} of {report.total} rows (the counts cover them all); "
            "narrow --since, name a job or raise --limit")


@jobs.command("explain")
@click.argument("name")
@click.option("--at", "at", metavar="T", help="The moment to explain (default now): ISO date/time in the site's "
                                              "zone, 2h (ago) or +2h (ahead).")
@format_option
@pass_state
def explain_cmd(state: CliState, name: str, at: str | None, fmt: str) -> None:
    """Why NAME did or did not run at T: its slots around T, the ledger rows, the stop flag, the scheduler
    state and the overlap state."""
    ctx = state.one()
    ctx.database()
    now = utcnow()
    try:
        conn = redis_for(ctx.site)
    except ServiceUnavailable:
        conn = None
    result = explain_lib.explain(ctx, conn, name, moment(ctx, at, "--at", now), now)
    if fmt == "json":
        echo(to_json(result.as_dict()))
        return
    _print_explanation(result, ctx.name, ctx.site.time_zone)


def _print_explanation(x: explain_lib.Explanation, site: str, tz: Any) -> None:
    j = x.job
    echo(f"{j['name']} at {local(x.at, tz)} (site {site})")
    echo(f"  verdict:   {x.verdict}")
    sched = f"{j['frequency']} ({j['cron_format']})" if j["cron_format"] else j["frequency"]
    echo(f"  job:       {sched}, queue {j['queue']}, overlap={j['overlap']}, catchup={j['catchup']}; "
         f"created {local(j['created_at'], tz)}")
    if j["removed"]:
        echo(f"  removed:   from hooks at {local(j['removed_at'], tz)}")
    if j["stopped"]:
        until = j.get("stopped_until")
        end = (f", until {local(until, tz)}" + (" (over: it runs again)" if until <= x.now else "")) if until else ""
        echo(f"  stopped:   since {local(j['stopped_at'], tz)} by {j['stopped_by'] or '?'}{end}"
             + (f": {j['stopped_note']}" if j["stopped_note"] else ""))
    else:
        echo("  stopped:   no" + (f" (re-enabled {local(j['stopped_at'], tz)} by {j['stopped_by']})"
                                  if j["stopped_at"] else ""))
    echo(f"  schedule:  next run {local(j['next_execution'], tz)}, last run {local(j['last_execution'], tz)}")
    s = x.scheduler
    alive = {True: "a `schedule` process is alive", False: "NO `schedule` process is running",
             None: f"liveness unknown ({s['redis_error'] or 'Redis not checked'})"}[s["scheduler_alive"]]
    echo(f"  scheduler: {s['status']}{' (' + s['reason'] + ')' if s['reason'] else ''}; {alive}; "
         f"last tick {ago(s['last_tick'], x.now) if s['last_tick'] else 'unknown'}")
    if x.active:
        runs = "; ".join(f"{a['rq_job_id']} {a['status']} since {local(a['started_at'] or a['enqueued_at'], tz)}"
                         for a in x.active)
        echo(f"  overlap:   {len(x.active)} run(s) still active: {runs}")
    else:
        echo("  overlap:   no run of the job is queued or running")
    echo("  slots around that moment:")
    body = [[("-> " if t["slot"] == x.slot else "   ") + local(t["slot"], tz), t["status"], t["trigger"] or "",
             t["reason"] or ""] for t in x.timeline]
    echo("    " + table(body, ["slot", "status", "trigger", "reason"]).replace("\n", "\n    "))
    if x.rows:
        echo("  ledger rows in that window:")
        rows = [[r["id"], local(r["scheduled_for"], tz), r["trigger"], r["status"], r["slots"], r["rq_job_id"],
                 _reason(r)] for r in x.rows]
        echo("    " + table(rows, ["id", "slot", "trigger", "status", "slots", "rq job", "reason / error"])
             .replace("\n", "\n    "))
