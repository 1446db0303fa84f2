"""The scheduler loop (``hookscheduler schedule``): passes over every site, sleeping until the next slot.

Design points, each for a complaint users have about other schedulers:

* it sleeps until the earliest ``next_execution`` of any site (capped by ``scheduler_tick_interval``, which
  bounds how long a direct SQL edit waits), so a slot is enqueued within milliseconds of its time, not at the
  next 60- or 240-second tick. It wakes :data:`LEAD` seconds early to do what the pass needs but the slot
  need not wait for (re-reading the config files, the periodic sweep that must precede a pass), then waits
  for the slot itself, so that only the pass stands between the slot and the enqueue;
* one bad site never stops the others; a Redis or database outage is logged once (and its recovery once),
  retried with exponential back-off, and the slots that came due meanwhile fire once when the service is back
  (the tick's catch-up policy and outbox take care of "once");
* several ``schedule`` processes may run against the same sites: the tick's compare-and-set makes that safe,
  and on PostgreSQL they share the due rows between them; there is no leader election to get wrong;
* each process announces itself with a heartbeat key in Redis (with a TTL), and records each site's last
  completed pass, for ``scheduler status`` and ``doctor``;
* SIGTERM / SIGINT finish the current pass and exit cleanly.

The clock and the sleep are parameters, so tests drive the loop step by step at chosen instants.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis

from .config import load_bench, load_sites
from .context import SiteContext
from .exceptions import HookSchedulerError
from .models import utcnow
from .naming import heartbeat_key, last_tick_key
from .notify import WakeListener
from .reanchor import reanchor_if_clock_changed
from .redis_conn import redis_for
from .tick import PassResult, earliest_next, reconcile_active, reschedule_orphans, run_pass

log = logging.getLogger("hookscheduler.loop")

RECONCILE_EVERY = 30.0  # seconds between sweeps over active runs that are not due
HEARTBEAT_EVERY = 5.0
MIN_SLEEP = 0.01
LEAD = 0.1  # seconds before a slot at which the loop wakes to prepare its pass
SPIN = 0.003  # seconds before a slot from which the loop stays awake instead of sleeping
FRESH = 1.0  # a preparation this recent (seconds) still counts for the step that follows it
MAX_BACKOFF = 60.0

#: Errors a site can recover from by waiting: services down, connections dropped, schema not migrated yet.
TRANSIENT = (pw.OperationalError, pw.InterfaceError, redis.exceptions.RedisError, HookSchedulerError, OSError)


@dataclass
class SiteRunner:
    """Loop state for one site: its context, its back-off and the last error we reported."""

    ctx: SiteContext
    retry_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    last_tick_written: datetime | None = None
    last_reconcile: datetime | None = None
    next_due: datetime | None = None
    pre_swept: bool = False  # the pre-pass half of the sweep ran in :meth:`Scheduler.prepare`


@dataclass
class Scheduler:
    """Drives :func:`hookscheduler.tick.run_pass` for every site of a bench."""

    bench: str | None = None
    site: str | None = None
    now_fn: Callable[[], datetime] = utcnow
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    runners: dict[str, SiteRunner] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake_event: threading.Event = field(default_factory=threading.Event)
    last_heartbeat: datetime | None = None
    results: list[PassResult] = field(default_factory=list)
    keep_results: bool = False
    steps: int = 0
    prepared_at: float | None = None  # time.monotonic() of the last :meth:`prepare`

    def refresh_sites(self) -> None:
        """Re-read the bench's sites and their config every step: a pause, a new site or a changed tick
        interval takes effect at once, without a restart."""
        sites = load_sites(load_bench(self.bench), self.site)
        seen = set()
        for site in sites:
            seen.add(site.name)
            runner = self.runners.get(site.name)
            if runner is None:
                self.runners[site.name] = SiteRunner(SiteContext(site))
            else:
                if runner.ctx.site.db_url != site.db_url:
                    runner.ctx.close()
                runner.ctx.site = site
        for name in [n for n in self.runners if n not in seen]:
            self.runners.pop(name).ctx.close()

    def step(self) -> float:
        """One round over all sites; returns how long to sleep before the next one (seconds)."""
        prepared, self.prepared_at = self.prepared_at, None
        if prepared is None or time.monotonic() - prepared > FRESH:
            self._refresh()
        now = self.now_fn()
        for runner in list(self.runners.values()):
            if runner.retry_at is not None and now < runner.retry_at:
                continue
            self._run_site(runner, now)
        self._heartbeat(now)
        return self._sleep_for(self.now_fn())

    def _refresh(self) -> None:
        try:
            self.refresh_sites()
        except HookSchedulerError as exc:  # a broken config file: keep the previous settings, say so once
            self._report(None, f"cannot read the bench config: {exc}")

    def prepare(self) -> None:
        """Just before a slot: the work of the next step that does not depend on the slot's instant, done
        ahead so the slot waits only for its pass. A failure here is left for the step to meet and report."""
        self._refresh()
        now = self.now_fn()
        for runner in self.runners.values():
            if runner.retry_at is not None and now < runner.retry_at:
                continue
            if self._sweep_due(runner, now, ahead=FRESH) and not runner.pre_swept:
                try:
                    self._pre_sweep(runner.ctx, now)
                    runner.pre_swept = True
                except Exception:  # the step retries the sweep and reports what fails
                    log.debug("site %s: the sweep before the pass failed; the step will retry it", runner.ctx.name)
        self.prepared_at = time.monotonic()

    @staticmethod
    def _sweep_due(runner: SiteRunner, now: datetime, ahead: float = 0.0) -> bool:
        if runner.last_reconcile is None:
            return True
        return (now - runner.last_reconcile).total_seconds() + ahead >= RECONCILE_EVERY

    @staticmethod
    def _pre_sweep(ctx: SiteContext, now: datetime) -> None:
        """Before the pass: a changed time zone must not fire one slot at the old time."""
        reanchor_if_clock_changed(ctx, now)
        reschedule_orphans(ctx, now)

    def _run_site(self, runner: SiteRunner, now: datetime) -> None:
        ctx = runner.ctx
        try:
            conn = redis_for(ctx.site)
            sweep = runner.pre_swept or self._sweep_due(runner, now)
            if sweep and not runner.pre_swept:
                self._pre_sweep(ctx, now)
            result = run_pass(ctx, conn, now)
            if result.send_error:
                raise redis.exceptions.ConnectionError(result.send_error)
            if sweep:
                reconcile_active(ctx, conn, now)
                runner.last_reconcile, runner.pre_swept = now, False
            runner.next_due = earliest_next(ctx)
            self._write_last_tick(runner, conn, now)
            if self.keep_results:
                self.results.append(result)
            if result.fired or result.skipped or result.missed:
                log.info("site %s: %d fired, %d skipped, %d missed", ctx.name, result.fired, result.skipped,
                         result.missed)
        except TRANSIENT as exc:
            self._fail(runner, now, exc)
            return
        except Exception as exc:  # a bug must not kill the loop for every site; log it loudly, back off
            log.exception("site %s: unexpected error in the scheduling pass", ctx.name)
            self._fail(runner, now, exc)
            return
        if runner.failures:
            log.warning("site %s: recovered after %d failed attempt(s)", ctx.name, runner.failures)
        runner.failures, runner.retry_at, runner.last_error = 0, None, None

    def _fail(self, runner: SiteRunner, now: datetime, exc: BaseException) -> None:
        runner.failures += 1
        runner.pre_swept = False
        delay = min(MAX_BACKOFF, 0.5 * 2 ** min(runner.failures - 1, 10))
        runner.retry_at = now + timedelta(seconds=delay)
        runner.ctx.close()  # reconnect next time: the connection may be broken
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if message != runner.last_error:
            self._report(runner.ctx.name, f"{message}; retrying with back-off (next in {delay:.1f}s)")
            runner.last_error = message

    def _report(self, site: str | None, message: str) -> None:
        from .db import redact

        log.error("%s%s", f"site {site}: " if site else "", redact(message))

    def _write_last_tick(self, runner: SiteRunner, conn: redis.Redis, now: datetime) -> None:
        if runner.last_tick_written and (now - runner.last_tick_written).total_seconds() < 1:
            return
        conn.set(last_tick_key(runner.ctx.bench.bench_id, runner.ctx.name), now.isoformat(), ex=7 * 86400)
        runner.last_tick_written = now

    def _heartbeat(self, now: datetime) -> None:
        if self.last_heartbeat and (now - self.last_heartbeat).total_seconds() < HEARTBEAT_EVERY:
            return
        for runner in self.runners.values():
            ctx = runner.ctx
            value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": now.isoformat(),
                                "sites": sorted(self.runners)})
            ttl = max(3 * ctx.site.tick_interval, 30)
            try:
                redis_for(ctx.site).set(heartbeat_key(ctx.bench.bench_id, self.instance), value, ex=ttl)
            except redis.exceptions.RedisError:
                pass  # the site's pass reports Redis problems; a heartbeat is best effort
            break  # the heartbeat is per bench: every site of a bench shares its Redis
        self.last_heartbeat = now

    def _earliest(self) -> datetime | None:
        """The earliest due slot of any site that is not backing off (None: none known)."""
        dues = [r.next_due for r in self.runners.values() if r.retry_at is None and r.next_due is not None]
        return min(dues) if dues else None

    def _sleep_for(self, now: datetime) -> float:
        """Until the earliest due slot of any site, at most one tick interval, sooner for a retry."""
        waits = []
        for runner in self.runners.values():
            cap = float(runner.ctx.site.tick_interval)
            if runner.retry_at is not None:
                waits.append((runner.retry_at - now).total_seconds())
            elif runner.next_due is not None:
                waits.append(min(cap, (runner.next_due - now).total_seconds()))
            else:
                waits.append(cap)
        return max(MIN_SLEEP, min(waits) if waits else 1.0)

    def stop(self, *_: Any) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _listen_for_changes(self) -> None:
        for runner in self.runners.values():
            ctx = runner.ctx
            WakeListener(redis_for(ctx.site), ctx.bench.bench_id, self.wake_event, self.stop_event).start()
            return

    def run(self, max_steps: int | None = None) -> None:
        """Loop until SIGTERM/SIGINT (or ``max_steps``); the sleep wakes at once on a stop signal."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info("scheduler %s started", self.instance)
        try:
            while not self.stop_event.is_set():
                self.wake_event.clear()
                wait = self.step()
                if self.steps == 0:
                    self._listen_for_changes()
                self.steps += 1
                if max_steps is not None and self.steps >= max_steps:
                    break
                self._sleep(wait)
        finally:
            self._clear_heartbeat()
            for runner in self.runners.values():
                runner.ctx.close()
            log.info("scheduler %s stopped", self.instance)

    def _sleep(self, wait: float) -> None:
        """Sleep ``wait`` seconds; when a slot ends the sleep, wake :data:`LEAD` early, :meth:`prepare`, and
        wait for the slot itself. A stop signal or an announced change ends any of these waits at once."""
        due = self._earliest()
        until = (due - self.now_fn()).total_seconds() if due is not None else None
        if due is None or until is None or until <= 0 or abs(until - wait) > LEAD:
            self.wake_event.wait(wait)  # not a slot (the tick-interval cap, a retry, a late row): as asked
            return
        if wait > LEAD:
            if self.wake_event.wait(wait - LEAD):
                return
            self.prepare()
        # Event.wait may return a hair before the slot on the wall clock; a pass a hair early finds
        # nothing due and would cost a whole MIN_SLEEP more, so wait until the clock has passed the slot.
        for _ in range(100):
            remaining = (due - self.now_fn()).total_seconds()
            if remaining <= 0:
                return
            if remaining > SPIN:
                if self.wake_event.wait(remaining - SPIN):
                    return
                continue
            self._spin_until(due)
            return

    def _spin_until(self, due: datetime) -> None:
        """The last :data:`SPIN` seconds before a slot, awake: on a busy host a sleeping process is scheduled
        back onto a CPU milliseconds after its timer fires, and those milliseconds would be the slot's delay.
        Bounded in real time whatever the clock says (a test's clock may stand still)."""
        give_up = time.monotonic() + 2 * SPIN
        while self.now_fn() < due and not self.wake_event.is_set() and time.monotonic() < give_up:
            pass

    def _clear_heartbeat(self) -> None:
        for runner in self.runners.values():
            try:
                redis_for(runner.ctx.site).delete(heartbeat_key(runner.ctx.bench.bench_id, self.instance))
            except redis.exceptions.RedisError:
                pass
            break
