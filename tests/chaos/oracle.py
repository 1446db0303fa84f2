"""The oracle: what should have happened, computed without the code under test, and the check.

Expected slots come straight from croniter (the named frequencies mapped to their cron strings as the README
documents them, evaluated in the site's zone) and, for ``all`` jobs, from the grid of ``scheduler_tick_interval``
through the job's first slot. The one number taken from hookscheduler is the per-site offset of the
``*_maintenance`` frequencies (``slots.maintenance_offset``), a hash with nothing to get wrong under faults.

What ran is what the tasks wrote to their own file (not the ledger). The ledger is read with plain SQL.

For every expected slot up to the moment the schedulers were stopped:

* exactly one ledger row covers it (a row covers the job's slots from ``first_slot`` to ``last_slot``);
  two rows = a duplicate decision, none = unexplained missing;
* a ``complete`` row has exactly one task record; ``failed`` / ``missed`` / ``skipped`` rows say why
  (a reason, or a traceback); a task record whose row is ``missed`` or ``skipped``, or that has no row,
  ran without the ledger knowing;
* no (job, slot) and no RQ job id was run twice by a task;
* ``skipped: job stopped`` / ``scheduler inactive`` only around a recorded stop / pause (give or take a tick
  and the largest backwards clock step), and no scheduled run decided while the job was stopped or the
  scheduler paused;
* no row is still ``queued`` / ``started`` once everything is over;
* I10: no scheduled run reached Redis before its slot (:func:`sent_early`, its exceptions the clock faults').

Lateness: ``max(created_at, enqueued_at) - scheduled_for`` of every single-slot scheduled run (when the pass
claimed it and when it reached Redis); "after recovery" takes the runs whose slot is at least one tick after the
end of a fault and at least one tick before the next fault began.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
from croniter import croniter

from hookscheduler.ops.retention import FREQUENT_KEEP
from hookscheduler.timing.cron import maintenance_offset
from hookscheduler.timing.frequencies import fires_within_hour

from . import bench as chaos_bench
from .harness import Fault, RunRecord

NAMED = {
    "Hourly": "0 * * * *", "Hourly Long": "0 * * * *", "Hourly Maintenance": "0 * * * *",
    "Daily": "0 0 * * *", "Daily Long": "0 0 * * *", "Daily Maintenance": "0 0 * * *",
    "Weekly": "0 0 * * 0", "Weekly Long": "0 0 * * 0",
    "Monthly": "0 0 1 * *", "Monthly Long": "0 0 1 * *",
    "Yearly": "0 0 1 1 *", "Annual": "0 0 1 1 *",
}
RUN_STATUSES = ("queued", "started", "complete", "failed")


@dataclass
class Job:
    id: int
    name: str
    frequency: str
    cron_format: str
    first_next: datetime  # next_execution right after migrate


@dataclass
class LogRow:
    id: int
    job_id: int
    job_name: str
    scheduled_for: datetime
    trigger: str
    status: str
    reason: str | None
    slots: int
    first_slot: datetime
    last_slot: datetime
    rq_job_id: str | None
    enqueued_at: datetime | None
    created_at: datetime
    traceback: str | None
    started_at: datetime | None = None


@dataclass
class Report:
    slots_checked: int = 0
    ran: int = 0
    failed: int = 0
    missed: int = 0
    skipped: int = 0
    coalesced: int = 0  # slots covered by a catch-up run of several slots
    thinned: int = 0  # runs of jobs firing more than hourly whose ledger row the daily maintenance job thinned
    ledger_rows: int = 0
    task_records: int = 0
    duplicates: int = 0
    excursions: int = 0  # clock excursions the schedulers found (distinct steps ahead, from their logs)
    excursion_kept: int = 0  # the most runs decided under a clock ahead that one recovery kept (run early, once)
    unexplained_missing: int = 0
    stuck: int = 0
    backlog: int = 0  # runs still waiting in their queue when the workers stopped (not over, not stuck)
    #: runs claimed for a slot after the run's end (only a clock ahead can decide one): not sent, as I10 wants
    held_for_later: int = 0
    anomalies: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    job_faults: dict[str, int] = field(default_factory=dict)
    crash_restarts: dict[str, int] = field(default_factory=dict)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)
    lateness_p50: float = 0.0
    lateness_p99: float = 0.0
    lateness_max: float = 0.0
    worst_after_recovery: float = 0.0
    worst_after: str = ""  # the fault after which it was measured
    tick: int = 0
    rate: float = 1.0
    sim_span: str = ""
    real_seconds: float = 0.0
    jobs: int = 0
    requeued: int = 0  # runs a dead worker had taken off the queue, put back
    refused_redeliveries: int = 0  # second deliveries of a started run, not run (runmark)
    outcome_unknown: int = 0
    deadlocks: int = 0  # PostgreSQL deadlocks between hookscheduler processes (the harness's LOCK TABLE aside)
    claimed_ahead: int = 0  # scheduled runs whose row was written before their slot (the loop's claim ahead)
    sent_early: int = 0  # scheduled runs that reached Redis before their slot (I10: must be 0)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.unexplained_missing or self.stuck or self.anomalies or self.sent_early)

    def text(self) -> str:
        lines = [
            f"chaos: {self.jobs} jobs, simulated {self.sim_span}, {self.real_seconds:.0f} s real",
            f"  slots checked: {self.slots_checked} (ran {self.ran}, failed {self.failed}, missed {self.missed}, "
            f"skipped {self.skipped}, coalesced into catch-up runs {self.coalesced}, rows thinned {self.thinned}); "
            f"ledger rows {self.ledger_rows}, task records {self.task_records}",
            f"  faults injected: {json.dumps(self.faults, sort_keys=True)}",
            f"  job faults: {json.dumps(self.job_faults, sort_keys=True)}; "
            f"processes restarted after exiting on their own: {json.dumps(self.crash_restarts, sort_keys=True)}",
            f"  skipped by reason: {json.dumps(self.skipped_reasons, sort_keys=True)}",
            f"  failed by reason: {json.dumps(self.failed_reasons, sort_keys=True)}",
            f"  recoveries: {self.requeued} orphaned run(s) re-queued, {self.refused_redeliveries} second "
            f"delivery(ies) refused, {self.outcome_unknown} run(s) lost by Redis with an unknown outcome (not sent "
            f"again), {self.excursions} clock excursion(s) recovered, keeping up to {self.excursion_kept} run(s) "
            "decided under the clock ahead (run early, once)",
            f"  PostgreSQL deadlocks between hookscheduler processes: {self.deadlocks}",
            f"  claimed ahead of their slot: {self.claimed_ahead} run(s); reached Redis before their slot: "
            f"{self.sent_early}",
            f"  duplicates: {self.duplicates}   unexplained missing: {self.unexplained_missing}   "
            f"stuck queued/started: {self.stuck} (still waiting in a queue: {self.backlog}; claimed under a clock "
            f"ahead for a slot after the end, held for it: {self.held_for_later})",
            f"  lateness (simulated s; tick {self.tick}): p50 {self.lateness_p50:.0f}, p99 {self.lateness_p99:.0f}, "
            f"max {self.lateness_max:.0f}; worst after recovery {self.worst_after_recovery:.0f} "
            f"({self.worst_after_recovery / self.rate:.2f} s real; after {self.worst_after or '-'})",
        ]
        lines += [f"  ANOMALY: {a}" for a in self.anomalies[:40]]
        if len(self.anomalies) > 40:
            lines.append(f"  ... and {len(self.anomalies) - 40} more anomalies")
        return "\n".join(lines)


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def query(record: RunRecord, sql: str) -> list[tuple[Any, ...]]:
    if record.db_url:
        conn = psycopg2.connect(record.db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()
    lite = sqlite3.connect(record.bench / "sites" / chaos_bench.SITE / "scheduler.sqlite3", timeout=30)
    try:
        return list(lite.execute(sql).fetchall())
    finally:
        lite.close()


def read_jobs(record: RunRecord, first_next: dict[str, datetime]) -> list[Job]:
    rows = query(record, "SELECT id, name, frequency, cron_format FROM scheduled_job_type WHERE removed = false")
    # not the built-in job: it writes no task record
    declared = {d.name for d in chaos_bench.declarations(record.config.light)}
    return [Job(r[0], r[1], r[2], r[3] or "", first_next[r[1]]) for r in rows if r[1] in declared]


def read_log(record: RunRecord) -> list[LogRow]:
    rows = query(record, "SELECT id, job_id, job_name, scheduled_for, \"trigger\", status, reason, slots, first_slot, "
                         "last_slot, rq_job_id, enqueued_at, created_at, traceback, started_at FROM scheduled_job_log")
    return [LogRow(r[0], r[1], r[2], _dt(r[3]), r[4], r[5], r[6], r[7], _dt(r[8]) or _dt(r[3]),  # type: ignore[arg-type]
                   _dt(r[9]) or _dt(r[3]), r[10], _dt(r[11]), _dt(r[12]), r[13], _dt(r[14]))  # type: ignore[arg-type]
            for r in rows]


def expected_slots(job: Job, after: datetime, until: datetime, tick: int, site: str) -> list[datetime]:
    """Slots in (after, until], naive UTC."""
    out: list[datetime] = []
    if job.frequency == "All":
        s = job.first_next
        while s <= until:
            if s > after:
                out.append(s)
            s += timedelta(seconds=tick)
        return out
    cron = NAMED.get(job.frequency) or job.cron_format
    offset = timedelta(minutes=maintenance_offset(site)) if "Maintenance" in job.frequency else timedelta(0)
    tz = ZoneInfo(chaos_bench.TIME_ZONE)
    start = (after - offset).replace(tzinfo=timezone.utc).astimezone(tz)
    it = croniter(cron, start)
    while True:
        nxt = it.get_next(datetime).astimezone(timezone.utc).replace(tzinfo=None) + offset
        if nxt > until:
            return out
        out.append(nxt)


def read_records(record: RunRecord) -> list[dict[str, Any]]:
    if not record.out_file.exists():
        return []
    return [json.loads(line) for line in record.out_file.read_text().splitlines() if line.strip()]


def check(record: RunRecord) -> Report:
    cfg = record.config
    rep = Report(tick=cfg.tick, rate=cfg.rate, real_seconds=record.real_seconds)
    jobs = read_jobs(record, record.first_next)
    rep.jobs = len(jobs)
    log = read_log(record)
    rep.ledger_rows = len(log)
    records = read_records(record)
    rep.task_records = sum(1 for r in records if r["kind"] == "ok")
    rep.faults = dict(Counter(f.kind for f in record.faults))
    rep.job_faults = {"raised": sum(1 for r in records if r["kind"] == "raised"),
                      "hung past timeout": sum(1 for r in records if r["kind"] == "hung")}
    rep.crash_restarts = dict(record.crash_restarts)
    rep.deadlocks = _deadlocks(record.out_file.parent / "pg" / "pg.log")
    rep.requeued = sum(1 for row in log if row.reason and row.reason.startswith("re-queued"))
    rep.outcome_unknown = sum(1 for row in log if row.reason and "outcome unknown" in row.reason)
    rep.refused_redeliveries = sum(p.read_text(errors="replace").count("started by an earlier delivery")
                                   for p in record.out_file.parent.glob("worker*.log"))
    until = record.stopped_at - timedelta(seconds=4 * cfg.tick)  # the last passes may be a little late
    rep.sim_span = f"{record.migrated_at:%Y-%m-%d %H:%M} .. {record.stopped_at:%Y-%m-%d %H:%M} UTC"
    fuzz = timedelta(seconds=cfg.tick + record.max_back_step + 60)
    # the largest clock excursion ahead (its detail is "<seconds>s"): how far past the end a slot can be claimed
    max_ahead = max((float(f.detail.rstrip("s")) for f in record.faults if f.kind == "clock_ahead"), default=0.0)

    by_job: dict[int, list[LogRow]] = defaultdict(list)
    for row in log:
        by_job[row.job_id].append(row)
    rep.excursions, rep.excursion_kept = _excursions(record.out_file.parent)
    runs_by_rq: dict[str, list[dict[str, Any]]] = defaultdict(list)
    runs_by_slot: Counter[tuple[str, str]] = Counter()
    for r in records:
        if r["kind"] != "ok":
            continue
        runs_by_rq[r["rq"]].append(r)
        runs_by_slot[(r["job"], r["slot"])] += 1
    row_by_rq = {row.rq_job_id: row for row in log if row.rq_job_id}

    # duplicates: a task ran twice for one run or one slot
    for rq, rs in runs_by_rq.items():
        if len(rs) > 1:
            rep.duplicates += len(rs) - 1
            rep.anomalies.append(f"run {rq} executed {len(rs)} times")
    doubled = {(rs[0]["job"], rs[0]["slot"]) for rs in runs_by_rq.values() if len(rs) > 1}
    for (job, slot), n in runs_by_slot.items():
        if n > 1 and (job, slot) not in doubled:
            rep.duplicates += n - 1
            rep.anomalies.append(f"{job} slot {slot} executed {n} times")
    # the daily maintenance job thins the successful runs of jobs that fire more than once an hour once they are
    # a day old (hookscheduler.ops.retention): such a run, and its slot, may have no ledger row any more
    frequent = {job.name for job in jobs if fires_within_hour(job.frequency, job.cron_format)}
    # a maintenance job still queued when the schedulers stopped runs while the workers drain, on a clock that
    # keeps going (at 6,000x a slow drain is hours of simulated time): it thins up to its own now
    thinned_before = (record.workers_stopped_at or record.stopped_at) - FREQUENT_KEEP

    def thinned(job_name: str, slot: datetime) -> bool:
        return job_name in frequent and slot < thinned_before and runs_by_slot[(job_name, slot.isoformat())] == 1

    # a task record must belong to a run row
    for rq, rs in runs_by_rq.items():
        row = row_by_rq.get(rq)
        if row is None and rs[0]["slot"] and thinned(rs[0]["job"], datetime.fromisoformat(rs[0]["slot"])):
            rep.thinned += 1
        elif row is None:
            rep.anomalies.append(f"run {rq} ({rs[0]['job']} {rs[0]['slot']}) executed with no ledger row")
        elif row.status not in RUN_STATUSES:
            rep.anomalies.append(f"run {rq} executed but its ledger row says {row.status}: {row.reason}")

    stops: dict[str | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    for t in record.toggles:
        stops[t.job if t.kind == "stop" else None].append((t.start, t.end))

    def near(windows: list[tuple[datetime, datetime]], at: datetime) -> bool:
        return any(a - fuzz - timedelta(hours=6) <= at <= b + fuzz for a, b in windows)

    def inside(windows: list[tuple[datetime, datetime]], at: datetime) -> bool:
        return any(a + fuzz <= at <= b - fuzz for a, b in windows)

    lateness: list[tuple[datetime, float, str]] = []
    for job in jobs:
        slots = expected_slots(job, record.migrated_at, until, cfg.tick, chaos_bench.SITE)
        rows = sorted(by_job.get(job.id, []), key=lambda r: r.first_slot)
        cover: dict[datetime, list[LogRow]] = defaultdict(list)
        slot_set = set(slots)
        all_slots = expected_slots(job, record.migrated_at, record.stopped_at + timedelta(days=1), cfg.tick,
                                   chaos_bench.SITE)
        for row in rows:
            span = [s for s in all_slots if row.first_slot <= s <= row.last_slot]
            if row.trigger in ("schedule", "catch-up") and len(span) != row.slots:
                rep.anomalies.append(f"{job.name}: row {row.id} says {row.slots} slot(s) "
                                     f"{row.first_slot}..{row.last_slot} but spans {len(span)} of the job's slots")
            for s in span:
                cover[s].append(row)
            if row.trigger not in ("schedule", "catch-up"):
                continue
            if row.status == "skipped" and row.reason:
                key = _reason_key(row.reason)
                rep.skipped_reasons[key] = rep.skipped_reasons.get(key, 0) + row.slots
                if key == "job stopped" and not near(stops[job.name], row.first_slot):
                    rep.anomalies.append(f"{job.name}: slots {row.first_slot}..{row.last_slot} skipped as stopped "
                                         f"outside any recorded stop")
                if key.startswith("scheduler inactive") and not near(stops[None], row.first_slot):
                    rep.anomalies.append(f"{job.name}: slots {row.first_slot}..{row.last_slot} skipped as paused "
                                         f"outside any recorded pause")
            if row.status in RUN_STATUSES and row.trigger == "schedule" and (
                    inside(stops[job.name], row.created_at) or inside(stops[None], row.created_at)):
                rep.anomalies.append(f"{job.name}: run {row.rq_job_id} decided at {row.created_at} while the "
                                     f"job was stopped or the scheduler paused")
            if row.status == "failed":
                key = _reason_key(row.reason or ("raised" if row.traceback else "?"))
                rep.failed_reasons[key] = rep.failed_reasons.get(key, 0) + 1
            if row.status in ("complete",) and row.rq_job_id and not runs_by_rq.get(row.rq_job_id):
                rep.unexplained_missing += 1
                rep.anomalies.append(f"{job.name}: row {row.id} ({row.scheduled_for}) says complete but never ran")
            if row.status == "failed" and not row.reason and not row.traceback:
                rep.unexplained_missing += 1
                rep.anomalies.append(f"{job.name}: row {row.id} failed without a reason or traceback")
            if row.status == "queued" and row.rq_job_id in record.waiting:
                rep.backlog += 1
            elif held_for_later(row, record.stopped_at, max_ahead):
                rep.held_for_later += 1
            elif row.status in ("queued", "started"):
                rep.stuck += 1
                rep.anomalies.append(f"{job.name}: row {row.id} ({row.scheduled_for}) still {row.status} at the end")
            if row.status in RUN_STATUSES and row.created_at < row.scheduled_for:
                rep.claimed_ahead += 1
            if row.status in RUN_STATUSES and sent_early(row, record.faults, cfg.rate):
                rep.sent_early += 1
                rep.anomalies.append(f"{job.name}: run {row.rq_job_id} of {row.scheduled_for} reached Redis at "
                                     f"{row.enqueued_at}, before its slot (I10)")
            if row.status in RUN_STATUSES and row.slots == 1 and row.trigger == "schedule":
                sent = max(row.created_at, row.enqueued_at or row.created_at)
                who = f"{job.name} row {row.id}: created {row.created_at:%m-%d %H:%M:%S}" + (
                    f", sent {row.enqueued_at:%m-%d %H:%M:%S}" if row.enqueued_at else "")
                lateness.append((row.scheduled_for, (sent - row.scheduled_for).total_seconds(), who))
        for s in slots:
            covering = cover.get(s, [])
            rep.slots_checked += 1
            if not covering and thinned(job.name, s):
                rep.ran += 1
                continue
            if not covering:
                rep.unexplained_missing += 1
                rep.anomalies.append(f"{job.name}: slot {s} has no ledger row")
                continue
            if len(covering) > 1:
                rep.duplicates += 1
                rep.anomalies.append(f"{job.name}: slot {s} decided {len(covering)} times "
                                     f"(rows {[r.id for r in covering]})")
            row = covering[0]
            if row.status in RUN_STATUSES:
                if row.slots > 1:
                    rep.coalesced += 1
                elif row.status == "failed":
                    rep.failed += 1
                else:
                    rep.ran += 1
            elif row.status == "missed":
                rep.missed += 1
            else:
                rep.skipped += 1
        del slot_set

    values = sorted(v for _, v, _ in lateness)
    if values:
        rep.lateness_p50 = values[len(values) // 2]
        rep.lateness_p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        rep.lateness_max = values[-1]
    faults = sorted(record.faults, key=lambda f: f.start)
    rep.worst_after_recovery, rep.worst_after = recovery_lateness(lateness, faults, cfg.tick, until)
    return rep


def held_for_later(row: LogRow, stopped_at: datetime, max_ahead: float) -> bool:
    """A run claimed for a slot after the run's end, and not sent: only a clock ahead (a fault of at most
    ``max_ahead`` seconds) lets a pass decide such a slot; with claim ahead, the loop holds the slot's runs, and
    once the clock is back I10 keeps them unsent until their slot comes. Waiting, not stuck."""
    return row.status == "queued" and row.enqueued_at is None \
        and stopped_at < row.scheduled_for <= stopped_at + timedelta(seconds=max_ahead)


def sent_early(row: LogRow, faults: list[Fault], rate: float) -> bool:
    """I10, nothing is sent before its slot: whether the run's ledger ``enqueued_at`` (the sender's clock when
    Redis accepted it) is before its slot, beyond what the clock faults explain. Not counted: a stamp a worker
    wrote as it started the run before the sender marked it sent (``enqueued_at = started_at``: the worker's
    clock, which the skew fault sets 10 minutes behind); a run stamped just after the clock was stepped back
    (sent at or after its slot, stamped on the clock stepped back), or during a clock excursion (runs decided
    under the clock ahead are sent early by design: docs/exactly-once.md)."""
    if row.enqueued_at is None or row.enqueued_at >= row.scheduled_for:
        return False
    if row.started_at is not None and row.enqueued_at == row.started_at:
        return False
    slack = timedelta(seconds=0.5 * rate)  # half a real second of the simulated clock: a send's round trip
    for f in faults:
        if f.kind == "clock_back" and f.end - slack <= row.enqueued_at <= f.start + slack \
                and row.scheduled_for <= f.start + slack:
            return False
        if f.kind == "clock_ahead" and f.start - slack <= row.enqueued_at <= f.end + slack:
            return False
    return True


def recovery_lateness(lateness: list[tuple[datetime, float, str]], faults: list[Fault], tick: int,
                      until: datetime) -> tuple[float, str]:
    """The worst lateness of a run whose slot came at least a tick after a fault ended and at least a tick
    before the next one began (a slot just before a fault is that fault's victim, not the previous one's)."""
    worst, where = 0.0, ""
    step = timedelta(seconds=tick)
    for i, f in enumerate(faults):
        lo = f.end + step
        hi = min([g.start for g in faults[i + 1:]] + [until]) - step
        after = [(v, s, row) for s, v, row in lateness if lo <= s < hi]
        if after and max(after)[0] > worst:
            worst, slot, row = max(after)
            where = f"{f.kind} {f.detail}".strip() + f" ended {f.end:%m-%d %H:%M}, slot {slot:%m-%d %H:%M}; {row}"
    return worst, where


def _excursions(folder: Path) -> tuple[int, int]:
    """Clock excursions the schedulers recovered (each scheduler may find the same one) and the most runs
    decided under a clock ahead one recovery kept, from the schedulers' log lines. Those runs need no rule of
    their own: their rows stand for their slots like any other."""
    found: set[str] = set()
    kept = 0
    for path in folder.glob("scheduler*.log"):
        for m in re.finditer(r"clock excursion: a step ran at (\S+),.*?(\d+) run\(s\) decided under the clock ahead",
                             path.read_text(errors="replace")):
            found.add(m.group(1))
            kept = max(kept, int(m.group(2)))
    return len(found), kept


def _deadlocks(pg_log: Path) -> int:
    """Deadlocks in the server log whose report does not involve the harness's own ``LOCK TABLE``."""
    if not pg_log.exists():
        return 0
    reports = pg_log.read_text(errors="replace").split("deadlock detected")[1:]
    return sum(1 for r in reports if "LOCK TABLE" not in r.split(" ERROR: ")[0][:4000])


def _reason_key(reason: str) -> str:
    """Group reasons without their per-row details (run ids, times, counts)."""
    text = re.sub(r"\d+", "N", reason.split(" (")[0].split(";")[0])
    for prefix in ("previous run", "abandoned", "timed out", "job stopped", "scheduler inactive",
                   "no scheduler pass ran", "completed"):
        if text.startswith(prefix):
            return prefix
    return text[:60]
