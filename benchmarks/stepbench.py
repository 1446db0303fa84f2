"""hookscheduler's whole loop step (``Scheduler.cycle()``) on a site where nothing is due, and where its time goes.

The site is workload 1's (``tickbench``): N jobs with varied crons, every ``next_execution`` a day after the
measured window, so every step is idle. The loop runs in this process on a clock that advances ``advance``
seconds per step: at 60 s (the default ``scheduler_tick_interval``, how often an idle ``schedule`` process
wakes) every part of the step runs every time (config re-read, the pass's probe, the sweep every 30 s,
``earliest_next``, the last-tick key, the heartbeat every 5 s); at 1 s the sweep and the heartbeat are
amortised over 30 and 5 steps.

:func:`breakdown` times the parts with wrappers installed around the loop's collaborators (the names below are
where ``hookscheduler.schedule.loop`` looks them up), in a run of its own so the wrappers never touch the main figures.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee as pw

from hookscheduler.schedule import loop as loop_mod
from hookscheduler.schedule import step as step_mod
from hookscheduler.schedule.excursion import latest_step_key
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store._sql import SqlStore

from .common import BenchConfig
from .tickbench import NOW, BenchSite, analyze, make_site, populate

#: (label, owner, attribute): what :func:`breakdown` times. Owners are the loop and step modules (functions they
#: imported), the ``Scheduler`` class and the ``SiteStep`` class. "pass" is the probe (nothing is due); "sweep"
#: is the re-anchor check and the repair of rows without a slot (before the pass) plus the reconcile of active
#: runs (after).
PARTS: tuple[tuple[str, Any, str], ...] = (
    ("config re-read (refresh_sites)", Scheduler, "refresh_sites"),
    ("pass (probe only)", step_mod, "run_pass"),
    ("sweep before the pass", SiteStep, "_sweep_before_pass"),
    ("sweep: reconcile active runs", step_mod, "reconcile_active"),
    ("earliest_next", SqlStore, "earliest_next"),
    ("last-tick SET (queued)", SiteStep, "write_last_tick"),
    ("heartbeat (queued)", Scheduler, "_heartbeat"),
    ("Redis round trip: last ticks and heartbeat", Scheduler, "_flush"),
    ("redis_for (connection lookup)", loop_mod, "redis_for"),
)


def idle_site(cfg: BenchConfig, tag: str, kind: str, n: int) -> BenchSite:
    """A site with ``n`` jobs, none due for a day after :data:`NOW`."""
    site = make_site(cfg, tag, kind)
    populate(site, n, 0)
    site.db.execute_sql("UPDATE scheduled_job_type SET next_execution = " +  # type: ignore[no-untyped-call]
                        ("%s" if isinstance(site.db, pw.PostgresqlDatabase) else "?"),
                        [_db_dt(site.db, NOW + timedelta(days=1))])
    analyze(site.db)
    site.ctx.close()
    _age(site.path)
    return site


def _age(bench: Path) -> None:
    """The bench's config files as a long-running process sees them: written a minute ago. A file written
    within half a second is read again every cycle (the loop cannot trust its ``stat`` yet), which would make
    the first half second after set-up, all this workload measures, unlike any later minute."""
    past = time.time() - 60
    for path in [bench, *bench.rglob("*")]:
        os.utime(path, (past, past))


def _db_dt(db: pw.Database, value: datetime) -> Any:
    return value.isoformat(sep=" ") if isinstance(db, pw.SqliteDatabase) else value


class SteppedLoop:
    """A ``Scheduler`` over one bench, stepped by hand on a clock advancing ``advance`` seconds per step."""

    def __init__(self, site: BenchSite, advance: float):
        self.clock = [NOW]
        self.advance = timedelta(seconds=advance)
        self.site = site
        self.sched = Scheduler(bench=str(site.path), now_fn=lambda: self.clock[0])
        self._forget_latest_step()

    def step(self) -> None:
        self.sched.cycle()
        self.clock[0] += self.advance
        if self.clock[0] > NOW + timedelta(hours=20):  # stay inside the idle window
            self.clock[0] = NOW
            self._forget_latest_step()

    def _forget_latest_step(self) -> None:
        """The clock going back to the window's start is the harness's doing, not a clock excursion: forget
        the latest step (kept in Redis across runs of this site) so the loop does not recover from it."""
        self.site.conn.delete(latest_step_key(self.site.bench_id, self.site.ctx.name))

    def mean_ms(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - t0) * 1000.0 / steps

    def close(self) -> None:
        for state in self.sched.sites.values():
            state.ctx.close()


@contextmanager
def _timers(totals: dict[str, float]) -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = []

    def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + (time.perf_counter() - t0) * 1000.0
        return timed

    for label, owner, attr in PARTS:
        raw = inspect.getattr_static(owner, attr)
        saved.append((owner, attr, raw))
        timed = wrap(label, getattr(owner, attr))
        setattr(owner, attr, staticmethod(timed) if isinstance(raw, staticmethod) else timed)
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def breakdown(site: BenchSite, advance: float, steps: int) -> dict[str, float]:
    """Milliseconds per step of each part (:data:`PARTS`) and of the whole step, with timers installed."""
    totals: dict[str, float] = {}
    with _timers(totals):
        loop = SteppedLoop(site, advance)
        try:
            for _ in range(5):
                loop.step()
            totals.clear()
            whole = loop.mean_ms(steps)
        finally:
            loop.close()
    out = {label: ms / steps for label, ms in totals.items()}
    out["whole step (with timers)"] = whole
    return out
