"""The Prometheus collector: ledger counters from Redis (:mod:`.ledger_counts`) plus live gauges.

Every scrape folds the ledger rows that ended since the previous one into the Redis counters, then reads them
back; gauges (queue depth, workers, scheduler liveness, job switches) are read live through the same
operator library the CLI uses. A site whose database or Redis is down reports ``hookscheduler_site_up 0``
and the others are still collected.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import peewee as pw
import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..exceptions import HookSchedulerError
from ..ops import queues, rq_view
from ..ops import scheduler as scheduler_state
from ..store import job_reads
from ..store.models import utcnow
from ..timing.calendar import next_slot
from . import ledger_counts
from .bench import BenchSites

log = logging.getLogger(__name__)

P = "hookscheduler_"
SCHEDULER_STATUSES = (scheduler_state.ENABLED, scheduler_state.PAUSED, scheduler_state.DISABLED)


def _epoch(value: datetime | None) -> float:
    return value.replace(tzinfo=timezone.utc).timestamp() if value is not None else math.nan


class HookschedulerCollector(Collector):
    """Collects every site of ``sites`` on each scrape. ``grace`` / ``budget``: see
    :func:`.ledger_counts.update`; ``clock`` returns naive UTC (tests pass a fixed one)."""

    def __init__(self, sites: BenchSites, grace: float = 30.0, budget: float = 2.0,
                 clock: Any = utcnow) -> None:
        self.sites = sites
        self.grace = grace
        self.budget = budget
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # collected on demand: registering must not touch Redis or the databases

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        f = _Families()
        for name in self.sites.names:
            try:
                self._site(name, now, f)
                f.site_up.add_metric([name], 1)
            except (HookSchedulerError, pw.PeeweeException, redis.exceptions.RedisError) as exc:
                log.warning("metrics: site %s not collected: %s", name, exc)
                f.site_up.add_metric([name], 0)
        try:
            self._workers(now, f)
        except (HookSchedulerError, redis.exceptions.RedisError) as exc:
            log.warning("metrics: workers not collected: %s", exc)
        yield from f.all()

    def _site(self, name: str, now: datetime, f: _Families) -> None:
        conn = self.sites.redis(name)
        bench_id = self.sites.bench_id
        with self.sites.use(name) as ctx:
            ledger_counts.update(conn, bench_id, name, now, self.grace, self.budget)
            status, _reason = scheduler_state.scheduler_state(ctx)
            jobs = job_reads.schedules_shown()
            known = set(job_reads.names())
            calendar = ctx.calendar
            queue_names = list(ctx.site.queues)
            per_job = ctx.site.settings.metrics_job_histograms
            late = scheduler_state.overdue_after(ctx.site.tick_interval)
        stored = ledger_counts.read(conn, bench_id, name)
        ledger_counts.forget(conn, bench_id, name, stored, known)
        kept = {key: value for key, value in stored.items() if key[1] in known}
        _counters(kept, name, f, per_job, [job[0] for job in jobs])
        intervals: dict[tuple[str, str], float] = {}
        for job, frequency, cron, stopped, nxt in jobs:
            f.enabled.add_metric([name, job], 0 if stopped else 1)
            f.next_run.add_metric([name, job], _epoch(nxt))
            key = (frequency, cron or "")
            if key not in intervals:
                intervals[key] = _interval(frequency, cron or "", now, calendar)
            f.interval.add_metric([name, job], intervals[key])
        for st in SCHEDULER_STATUSES:
            f.sched_status.add_metric([name, st], 1 if st == status else 0)
        procs = [h for h in scheduler_state.heartbeats(conn, bench_id) if h.serves(name)]
        tick = scheduler_state.last_tick(conn, bench_id, name)
        by = scheduler_state.driver(bool(procs), tick, scheduler_state.last_tick_command(conn, bench_id, name),
                                    now, late)
        f.sched_up.add_metric([name], 1 if by in (scheduler_state.Driver.PROCESS, scheduler_state.Driver.TICK) else 0)
        beats = [h.at for h in procs if h.at is not None]
        if beats:
            f.heartbeat_age.add_metric([name], max(0.0, (now - max(beats)).total_seconds()))
        if tick is not None:
            f.last_tick.add_metric([name], _epoch(tick))
        counts = queues.pending_counts(conn, bench_id, name, queue_names)
        for queue, by_state in counts["queues"].items():
            for state in queues.COUNTED:
                f.queue.add_metric([name, queue, state], by_state[state])
        for queue, n in rq_view.workers_per_queue(conn, bench_id, queue_names).items():
            f.queue_workers.add_metric([name, queue], n)

    def _workers(self, now: datetime, f: _Families) -> None:
        names = self.sites.names
        rows = rq_view.list_workers(self.sites.redis(names[0]), self.sites.bench_id, names[0], now)
        busy = sum(1 for w in rows if str(w["status"]) == "busy")
        f.workers.add_metric(["busy"], busy)
        f.workers.add_metric(["idle"], len(rows) - busy)


def _interval(frequency: str, cron: str, now: datetime, calendar: Any) -> float:
    """The longest gap between the next eight fire times: how long a healthy job may go without running.
    Computed once per schedule and hour (a bench has a few hundred distinct schedules; croniter is slow)."""
    return _interval_from(frequency, cron, now.replace(minute=0, second=0, microsecond=0), calendar)


@functools.lru_cache(maxsize=4096)
def _interval_from(frequency: str, cron: str, now: datetime, calendar: Any) -> float:
    slots = [next_slot(frequency, cron, now, calendar)]
    for _ in range(8):
        slots.append(next_slot(frequency, cron, slots[-1], calendar, anchor=slots[0]))
    return max((b - a).total_seconds() for a, b in itertools.pairwise(slots))


class _Families:
    def __init__(self) -> None:
        s, sj = ["site"], ["site", "job_name"]
        self.runs = CounterMetricFamily(P + "job_runs", "Runs that ended, by status (complete, failed).",
                                        labels=[*sj, "status"])
        self.slots = CounterMetricFamily(P + "job_slots_not_run", "Slots missed or skipped, by reason.",
                                         labels=[*sj, "status", "reason"])
        self.off_time = CounterMetricFamily(P + "job_slots_off_time", "Slots not run on time: missed, or run "
                                            "late by a catch-up run.", labels=sj)
        self.last_ok = GaugeMetricFamily(P + "job_last_success_timestamp_seconds",
                                         "When the job's last successful run finished (Unix time).", labels=sj)
        self.last_status = GaugeMetricFamily(P + "job_last_run_status",
                                             "1 for the status of the job's latest ended run.",
                                             labels=[*sj, "status"])
        self.enabled = GaugeMetricFamily(P + "job_enabled", "1 unless the job is stopped.", labels=sj)
        self.next_run = GaugeMetricFamily(P + "job_next_run_timestamp_seconds", "The job's next slot (Unix time).",
                                          labels=sj)
        self.interval = GaugeMetricFamily(P + "job_schedule_interval_seconds",
                                          "Longest gap between the job's next fire times.", labels=sj)
        self.late: dict[str, tuple[list[float], float]] = {}
        self.dur: dict[str, tuple[list[float], float]] = {}
        self.lateness = HistogramMetricFamily(P + "job_lateness_seconds",
                                              "Enqueue time minus slot time of scheduled runs.", labels=sj)
        self.duration = HistogramMetricFamily(P + "job_duration_seconds", "Run durations.", labels=sj)
        self.site_lateness = HistogramMetricFamily(P + "site_lateness_seconds",
                                                   "Enqueue time minus slot time of the site's scheduled runs.",
                                                   labels=s)
        self.site_duration = HistogramMetricFamily(P + "site_duration_seconds", "Run durations of the site's jobs.",
                                                   labels=s)
        self.queue = GaugeMetricFamily(P + "queue_jobs", "The site's jobs per queue and state.",
                                       labels=[*s, "queue", "state"])
        self.workers = GaugeMetricFamily(P + "workers", "RQ workers of the bench, busy or idle.", labels=["state"])
        self.queue_workers = GaugeMetricFamily(P + "queue_workers", "Live RQ workers listening on the site's queue.",
                                               labels=[*s, "queue"])
        self.sched_up = GaugeMetricFamily(P + "scheduler_up", "1 while the site is scheduled: a schedule process "
                                          "serves it, or `hookscheduler tick` made its recent passes.",
                                          labels=s)
        self.sched_status = GaugeMetricFamily(P + "scheduler_status", "1 for the site's scheduler status.",
                                              labels=[*s, "status"])
        self.heartbeat_age = GaugeMetricFamily(P + "scheduler_heartbeat_age_seconds",
                                               "Age of the freshest scheduler heartbeat.", labels=s)
        self.last_tick = GaugeMetricFamily(P + "scheduler_last_tick_timestamp_seconds",
                                           "When the site's last scheduling pass completed (Unix time).", labels=s)
        self.site_up = GaugeMetricFamily(P + "site_up", "1 when the site's database and Redis answered.", labels=s)

    def all(self) -> list[Metric]:
        return [self.runs, self.slots, self.off_time, self.last_ok, self.last_status, self.enabled, self.next_run,
                self.interval, self.lateness, self.duration, self.site_lateness, self.site_duration, self.queue,
                self.queue_workers, self.workers,
                self.sched_up, self.sched_status,
                self.heartbeat_age, self.last_tick, self.site_up]


def _counters(series: dict[tuple[str, ...], str], site: str, f: _Families, per_job: bool = True,
              jobs: Sequence[str] = ()) -> None:
    """Adds one site's Redis-kept series to the families. The lateness and duration histograms are always
    summed into the site's own; per job only when ``per_job`` (``metrics_job_histograms``): they are 25 of the
    35 series a busy job costs, which at 10,000 jobs makes a scrape of hundreds of thousands of lines.

    The counters the alert rules read (runs by status, slots off time) are given at 0 for every job of ``jobs``
    that has none yet: ``increase()`` ignores a series' first sample, so a series born at 1 on a job's first
    failure would never fire an alert."""
    hist: dict[tuple[str, str], dict[str, float]] = {}
    for job in jobs:
        for st in ledger_counts.RUN_STATUSES:
            series.setdefault(("runs", job, st), "0")
        series.setdefault(("off_time", job), "0")
    for (kind, job, *rest), value in series.items():
        if kind == "runs":
            f.runs.add_metric([site, job, rest[0]], float(value))
        elif kind == "off_time":
            f.off_time.add_metric([site, job], float(value))
        elif kind == "slots":
            f.slots.add_metric([site, job, rest[0], rest[1]], float(value))
        elif kind == "last_ok":
            f.last_ok.add_metric([site, job], float(value))
        elif kind == "last_run":
            status = str(json.loads(value)[1])
            for st in ledger_counts.RUN_STATUSES:
                f.last_status.add_metric([site, job, st], 1 if st == status else 0)
        elif kind in ("late_b", "dur_b", "late_sum", "dur_sum"):
            hist.setdefault((kind[:3], job), {})[rest[0] if rest else "sum"] = float(value)
    totals: dict[str, dict[str, float]] = {"lat": {}, "dur": {}}
    for (kind, job), parts in hist.items():
        total = totals[kind]
        for part, amount in parts.items():
            total[part] = total.get(part, 0.0) + amount
        if per_job:
            family = f.lateness if kind == "lat" else f.duration
            family.add_metric([site, job], _cumulative(kind, parts), parts.get("sum", 0.0))
    for kind, total in totals.items():
        if total:
            family = f.site_lateness if kind == "lat" else f.site_duration
            family.add_metric([site], _cumulative(kind, total), total.get("sum", 0.0))


def _cumulative(kind: str, parts: dict[str, float]) -> list[tuple[str, float]]:
    """Prometheus buckets (cumulative, ending in ``+Inf``) from the stored non-cumulative counts."""
    bounds = ledger_counts.LATENESS_BUCKETS if kind == "lat" else ledger_counts.DURATION_BUCKETS
    running, buckets = 0.0, list[tuple[str, float]]()
    for bound in [*(repr(b) for b in bounds), "+Inf"]:
        running += parts.get(bound, 0.0)
        buckets.append((bound, running))
    return buckets


__all__ = ["HookschedulerCollector"]
