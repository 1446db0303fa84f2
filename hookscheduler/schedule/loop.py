"""The scheduler loop (``hookscheduler schedule``): cycles of one step per site (:mod:`.step`), sleeping until
the next slot.

Design points, each for a complaint users have about other schedulers:

* it sleeps until the earliest ``next_execution`` of any site (capped by ``scheduler_tick_interval``, which
  bounds how long a direct SQL edit waits), so a slot is sent within milliseconds of its time, not at the
  next 60- or 240-second tick. It claims a slot ahead of its time (:mod:`.ahead`: the pass runs as of the
  slot a moment before it, commits, and holds the runs) and releases the held runs first thing in the cycle
  at the slot, so that only one round trip to Redis stands between the slot and its send, not the claim's
  commit; nothing is sent before its slot, by anyone (I10). For a slot it did not claim ahead it wakes
  :data:`LEAD` seconds early to work ahead (re-read the config files, run the first half of a due sweep),
  then waits for the slot itself, so that only the pass stands between the slot and its send;
* one bad site never stops the others; a Redis or database outage is logged once (and its recovery once),
  retried with exponential back-off, and the slots that came due meanwhile fire once when the service is back
  (the pass's catch-up policy and outbox take care of "once");
* several ``schedule`` processes may run against the same sites: the claim's compare-and-set makes that safe,
  and on PostgreSQL they share the due rows between them; there is no leader election to get wrong;
* each process announces itself with a heartbeat key in Redis (with a TTL), written by its cycles (before any
  sleep that would leave it stale: at most a tick interval plus a cycle old); each step writes its site's last
  tick, for ``scheduler status`` and ``doctor``;
* SIGTERM / SIGINT finish the current cycle and exit cleanly; runs held for a slot still to come are sent at
  that slot first (at most the claim-ahead window away, :meth:`Scheduler.drain`).

The clock and the sleep are parameters, so tests drive the loop cycle by cycle at chosen instants.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee as pw
import redis

from ..broker.batch import SetBatch
from ..broker.connection import redis_for
from ..broker.keys import heartbeat_key, last_tick_key
from ..config import Site, load_bench, load_sites
from ..context import SiteContext
from ..exceptions import HookSchedulerError
from ..store import store_for
from ..store.models import utcnow
from ..store.shared import describe_shared, shared_databases
from ..timing.clock import SIM, real_seconds
from . import ahead, send
from ._watch import Fingerprint, config_fingerprint
from .claim import PassResult
from .gate import ChangeGate
from .outbox import observe_epoch, record_sent, send_many
from .step import SiteStep
from .wake import WakeListener

log = logging.getLogger(__name__)

#: The shortest gap (seconds) between two heartbeats while cycles are frequent; a cycle followed by a longer
#: sleep writes it whatever its age (:meth:`Scheduler._heartbeat`).
HEARTBEAT_EVERY = 5.0
MIN_SLEEP = 0.01
LEAD = 0.1  # seconds before a slot at which the loop wakes to work ahead of its pass
SPIN = 0.003  # seconds before a slot from which the loop stays awake instead of sleeping
FRESH = 1.0  # work ahead this recent (seconds) still counts for the cycle that follows it
#: The longest wait between two attempts at a failing site: a service that comes back is used within this
#: many seconds (plus one attempt), and an attempt at a service that refuses connections costs little.
MAX_BACKOFF = 4.0
FD_RESERVE = 128  # descriptors kept free for everything but the sites' databases
#: The most sites whose runs one round trip to Redis sends (:meth:`Scheduler._send_pending`): a slot shared by
#: many sites costs one round trip per batch, not per site. Batches grow 1, 2, 4, ... up to this (and up to
#: ``scheduler_db_connections``, so a batch's sites are still connected when their runs are marked sent).
SEND_BATCH = 32
#: Real seconds a stopping loop spends marking sent the runs it released while their site held no connection
#: (:meth:`Scheduler._mark_all_owed`); past it they stay in their outboxes.
MARK_ON_STOP = 2.0
#: Real seconds a stop signal gives the loop to end (its cycle, the drain, the heartbeat removed), on top of the
#: claim-ahead window, before it exits outright (:meth:`Scheduler._on_signal`); within a supervisor's usual stop
#: timeout (systemd's 90 s).
STOP_GRACE = 30.0

#: Errors a site can recover from by waiting: services down, connections dropped, schema not migrated yet.
TRANSIENT = (pw.OperationalError, pw.InterfaceError, redis.exceptions.RedisError, HookSchedulerError, OSError)


def open_sites_cap() -> int:
    """How many sites' databases the loop keeps open between cycles: a SQLite site holds three descriptors
    (the file, its WAL and its shared memory), a PostgreSQL site one socket; the rest of the process (Redis,
    logs, the interpreter) keeps a reserve. With 1,000 sites under the common 1,024 limit, the sites past the
    cap are reopened each cycle (a fraction of a millisecond for SQLite) instead of failing with EMFILE."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(8, (soft - FD_RESERVE) // 3)


def _reconnects(ctx: SiteContext) -> bool:
    """Whether using ``ctx``'s database now means a new PostgreSQL connection (a new backend: tens of ms on a
    loaded host, its statements planned again). The runs a release sends for such a site are marked sent at its
    next visit instead (:meth:`Scheduler._mark_owed`), so a site past the connection budget costs one connection
    per slot (its claim ahead), not two."""
    return not ctx.is_open and ctx.site.on_postgres


@dataclass
class SiteLoopState:
    """Loop state for one site: its step (:class:`.step.SiteStep`), its back-off, the last error reported."""

    step: SiteStep
    retry_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    next_due: datetime | None = None
    stepped_at: datetime | None = None  # the ``now`` of its last completed step
    inactive: bool = False  # its last pass found the site paused, disabled or in maintenance: not claimed ahead
    #: runs released at their slot while the site held no connection, to be marked sent at its next visit
    #: (:meth:`Scheduler._mark_owed`), with the site's config when they were claimed
    unmarked: list[tuple[Site, send.Sent]] = field(default_factory=list)

    @property
    def ctx(self) -> SiteContext:
        return self.step.ctx

    def wants_step(self, now: datetime) -> bool:
        """Whether a cycle at ``now`` must step this site: a slot of it has come, its tick interval has passed
        since its last step (the bound on how long a direct SQL edit waits), its active runs are due a sweep,
        or it was never stepped (or the clock went back). A cycle woken for one site's slot then costs what
        the due sites cost, not a probe of every site of the bench."""
        if self.stepped_at is None or now < self.stepped_at:
            return True
        if self.next_due is not None and self.next_due <= now:
            return True
        if (now - self.stepped_at).total_seconds() >= self.ctx.site.tick_interval:
            return True
        return self.step.active and self.step.sweep_due(now)

    def claim_serves(self, now: datetime) -> bool:
        """Whether a claim ahead at ``now`` serves what a step at ``now`` is wanted for: no slot of the site is
        due, and it was stepped before (the clock did not go back); its tick interval has passed, or a sweep is
        due. The claim ahead of the next slot, in the same cycle, counts as the site's step
        (:meth:`Scheduler._step_ahead`, :meth:`.step.SiteStep.claim_ahead`): one connection rather than two."""
        return self.stepped_at is not None and now >= self.stepped_at and self.next_due is not None \
            and self.next_due > now


def next_due_after(ctx: SiteContext, now: datetime) -> datetime | None:
    """The site's next wake-up after a pass at ``now`` that moved slots: its jobs' earliest next slot or, if
    sooner, :data:`.ahead.OWED_GRACE` after the earliest slot of a run claimed ahead and not yet sent (I10: owed
    at that slot). That run may be another process's, claimed between this pass's probe and its selection of due
    rows, and that process may be killed before the slot: then this one must wake shortly after the slot to send
    it, not at its next tick interval. An
    unsent run whose slot has come (this pass's own, about to be sent with other sites') is no reason to wake."""
    probe = store_for(ctx.database()).probe()
    owed = probe.outbox_from
    return ahead.owed_wake(owed if owed is not None and owed > now else None, probe.earliest)


@dataclass
class _Pending:
    """Runs a site's pass committed, to be sent with other sites' (:meth:`Scheduler._send_pending`): in this
    cycle, or, claimed ahead, in the first cycle at or after their ``slot`` (:meth:`Scheduler._release`)."""

    state: SiteLoopState
    conn: redis.Redis
    result: PassResult
    runs: list[send.Run]
    slot: datetime | None = None
    #: held runs: the site's config when they were claimed. Its database holds them, and they are marked sent
    #: there even if the site has since left the bench or its ``db_url`` changed (:meth:`Scheduler._claimed_in`)
    site: Site | None = None


@dataclass
class Scheduler:
    """Runs a step (:class:`.step.SiteStep`) for every site of a bench, cycle after cycle."""

    bench: str | None = None
    site: str | None = None
    now_fn: Callable[[], datetime] = utcnow
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    sites: dict[str, SiteLoopState] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake_event: threading.Event = field(default_factory=threading.Event)
    last_heartbeat: datetime | None = None
    results: list[PassResult] = field(default_factory=list)
    keep_results: bool = False
    cycles: int = 0
    worked_ahead_at: float | None = None  # time.monotonic() of the last :meth:`work_ahead`
    bench_path: Path | None = None  # the bench's folder, once read
    max_open: int | None = None  # sites whose database stays open between cycles (None: from the fd limit)
    offset: float = field(default_factory=random.random)  # where in the sites each cycle starts (:meth:`_in_turn`)
    config_seen: Fingerprint | None = None  # the config files' fingerprint when they were last read
    #: sites whose database is open, least recently used first (:meth:`_used`)
    open_lru: OrderedDict[str, SiteLoopState] = field(default_factory=OrderedDict)
    open_pg: OrderedDict[str, SiteLoopState] = field(default_factory=OrderedDict)  # those holding a connection
    #: runs claimed ahead of their slot, committed and held until it (:meth:`_claim_ahead`, :meth:`_release`)
    held: list[_Pending] = field(default_factory=list)
    claim_cost: float = ahead.FIRST_COST  # the running cost of one site's pass (real seconds), for the window
    claim_wake: datetime | None = None  # when the next slot comes within its claim-ahead window
    #: armed by a stop signal (:meth:`_on_signal`): exits the process if the stop overruns :data:`STOP_GRACE`
    watchdog: threading.Timer | None = None
    exit_fn: Callable[[int], None] = os._exit
    waking_to_claim: bool = False  # the sleep :meth:`_sleep_for` asked for ends at ``claim_wake``
    gate: ChangeGate = field(default_factory=ChangeGate)  # idle PostgreSQL sites skip their probe (:mod:`.gate`)
    fd_cap: int | None = None  # :func:`open_sites_cap`, read once per cycle (:meth:`_begin_cycle`)
    watched: list[str] = field(default_factory=list)  # every site of the last read, served or not
    shared_logged: set[tuple[str, ...]] = field(default_factory=set)  # sites sharing a database, once logged

    def refresh_sites(self) -> None:
        """Re-read the bench's sites and their config when a file may have changed (checked every cycle, from
        the files' ``stat``: :mod:`._watch`): a pause, a new site or a changed tick interval takes effect at
        once, without a restart."""
        if self.bench_path is not None:
            seen_files = config_fingerprint(self.bench_path, self.watched or self.sites)
            if seen_files is not None and seen_files == self.config_seen:
                return
        else:
            seen_files = None
        bench = load_bench(self.bench)
        loaded = load_sites(bench, self.site)
        self.watched = [s.name for s in loaded]  # a site left out below is watched too: its db_url may change
        sites = self._own_databases(loaded)
        if self.bench_path != bench.path:  # the first read: fingerprint it now (before the next read)
            self.bench_path = bench.path
            seen_files = config_fingerprint(bench.path, self.watched)
        self.config_seen = seen_files
        seen = set()
        for site in sites:
            seen.add(site.name)
            state = self.sites.get(site.name)
            if state is None:
                self.sites[site.name] = SiteLoopState(SiteStep(SiteContext(site)))
            else:
                state.ctx.replace_site(site)
        for name in [n for n in self.sites if n not in seen]:
            gone = self.sites.pop(name)
            self._mark_quietly(gone)
            gone.ctx.close()
            self.open_lru.pop(name, None)
            self.open_pg.pop(name, None)

    def _own_databases(self, sites: list[Site]) -> list[Site]:
        """``sites`` less those that share a database with an earlier one (in the bench's order): serving both
        would run one tenant's jobs for the other and tick one table twice. The first keeps being served (it
        is what it was before the second was pointed at its database); the others are logged once as an
        ERROR and served again as soon as each has a database of its own."""
        groups = shared_databases(sites)
        skipped: set[str] = set()
        for group in groups:
            skipped.update(s.name for s in group[1:])
            names = tuple(s.name for s in group)
            if names not in self.shared_logged:
                self.shared_logged.add(names)
                log.error("%s; serving only site %s until then", describe_shared(group), group[0].name)
        self.shared_logged &= {tuple(s.name for s in g) for g in groups}
        return [s for s in sites if s.name not in skipped] if skipped else sites

    def cycle(self, all_sites: bool = True) -> float:
        """One cycle; returns how long to sleep before the next one (seconds). ``all_sites`` False (the loop
        woken for a slot) steps only the sites that want a step (:meth:`SiteLoopState.wants_step`); a bench
        of one site always steps it.

        The cycle first releases the runs claimed ahead whose slot has come (before anything else: that is the
        slot's whole latency), and ends by claiming ahead the sites whose next slot is within its window."""
        writes: dict[int, tuple[SetBatch, list[SiteLoopState]]] = {}
        if self.held:
            self._release(self.now_fn(), writes)
        worked_ahead, self.worked_ahead_at = self.worked_ahead_at, None
        if worked_ahead is None or time.monotonic() - worked_ahead > FRESH:
            self._refresh()
        self._begin_cycle(all_sites)
        now = self.now_fn()
        every = all_sites or len(self.sites) == 1
        pending: list[_Pending] = []
        target = 1  # sites whose runs are sent together: 1, 2, 4, ... (the first due site's runs go at once)
        # the sites this cycle claims ahead at its end: a step wanted for the tick interval or a sweep is left to that
        claiming = {c.name for c in self._plan(now).claim} if not every else set()
        for state in self._due_first(self._in_turn(), now):
            if state.retry_at is not None and now < state.retry_at:
                continue
            if not every and (not state.wants_step(now) or (state.ctx.name in claiming and state.claim_serves(now))):
                continue
            self._step_site(state, now, writes, pending)
            self._used(state)
            if len(pending) >= target:
                self._send_pending(pending, writes, now)
                target = min(2 * target, SEND_BATCH, state.ctx.site.settings.db_connections)
        self._send_pending(pending, writes, now)
        self._claim_ahead(writes)
        before = self.now_fn()
        wait = self._sleep_for(before)  # the heartbeat is written when the sleep to come would leave it stale
        self._heartbeat(now, writes, wait)
        if self._flush(writes, now):
            return self._sleep_for(self.now_fn())
        return max(MIN_SLEEP, wait - (self.now_fn() - before).total_seconds())  # the flush's time is slept less

    def _release(self, now: datetime, writes: dict[int, tuple[SetBatch, list[SiteLoopState]]]) -> None:
        """Send the held runs whose slot has come at ``now``, every site's in one round trip per Redis, then mark
        them sent (:meth:`_send_pending`: a failure leaves them in the outbox and backs the site off; its retry,
        or any process's pass, sends them, at or after their slot: I10)."""
        due = [h for h in self.held if h.slot is None or h.slot <= now]
        if due:
            self.held = [h for h in self.held if h.slot is not None and h.slot > now]
            self._send_pending(due, writes, now)

    def _claim_ahead(self, writes: dict[int, tuple[SetBatch, list[SiteLoopState]]]) -> None:
        """Claim ahead the sites whose next slot is within its window (:func:`.ahead.plan`): a site already
        holding runs, backing off, inactive or never stepped is not a candidate (its slot is stepped at its time,
        as before). Stops when a slot comes meanwhile: the next cycle, at once, serves it."""
        now = self.now_fn()
        plan = self._plan(now)
        self.claim_wake = plan.wake_at
        # a round of claims may take longer than the time to the earliest slot of any site or held runs (many
        # PostgreSQL sites past the connection budget, a long window): it stops there, and the cycle that follows
        # serves that slot at once (a release, a step) instead of after the rest of the round
        dues = [h.slot for h in self.held if h.slot is not None]
        dues += [s.next_due for s in self.sites.values() if s.retry_at is None and s.next_due is not None]
        stop_at = min((d for d in dues if d > now), default=None)
        for c in plan.claim:
            at = self.now_fn()
            if at >= c.slot or (stop_at is not None and at >= stop_at):
                break
            state = self.sites[c.name]
            began = time.perf_counter()
            self._step_ahead(state, c.slot, at, writes)
            self._used(state)
            # the whole visit, not only its pass: the window must cover the round (a site's next slot read after
            # its claim, the payloads built, a file reopened), or the round's last sites miss their slot's lead.
            # A visit that failed is not counted: its time is the failure's (a connect timeout, Redis retrying),
            # and it would stretch every slot's window to the cap for many visits after
            if state.retry_at is None:
                self.claim_cost = ahead.measured(self.claim_cost, time.perf_counter() - began)

    def _plan(self, now: datetime) -> ahead.Plan:
        """The claim-ahead plan at ``now`` (:func:`.ahead.plan`): a site already holding runs, backing off,
        inactive or never stepped is not a candidate (its slot is stepped at its time, as before)."""
        holding = {h.state.ctx.name for h in self.held}
        # in this process's own turn (:meth:`_in_turn`; the plan keeps it within a slot): several processes
        # claiming the sites of one slot ahead start at different sites instead of racing for the same ones
        candidates = [ahead.Candidate(state.ctx.name, state.next_due, state.ctx.site.settings.claim_ahead)
                      for state in self._in_turn()
                      if state.next_due is not None and state.next_due > now and state.ctx.name not in holding
                      and state.retry_at is None and not state.inactive and state.stepped_at is not None]
        return ahead.plan(candidates, now, self.claim_cost)

    def _step_ahead(self, state: SiteLoopState, slot: datetime, now: datetime,
                    writes: dict[int, tuple[SetBatch, list[SiteLoopState]]]) -> None:
        """Claim ``slot`` of ``state``'s site at ``now``, before it (:meth:`.step.SiteStep.claim_ahead`), and
        hold its runs for :meth:`_release`. A failure backs the site off as a failed step does; what it
        committed is in the outbox (I3), sent at its slot by the retry or by any pass (I10).

        The visit counts as the site's step at ``now`` for its tick interval (:meth:`SiteLoopState.wants_step`):
        its pass read the site's rows as a step's would, a sweep due by ``now`` is completed (its reconcile), and
        its last tick is written (stamped ``now``, not the slot). So a site
        claimed ahead every slot is not also stepped every tick interval: past the connection budget, each would
        be one more PostgreSQL connection (:meth:`_mark_owed` is the other half)."""
        ctx = state.ctx
        try:
            conn = redis_for(ctx.site)
            runs: list[send.Run] = []
            self._mark_owed(state)  # the previous slot's runs, released while the site held no connection
            result = state.step.claim_ahead(conn, slot, now, runs.extend)
            if runs:
                self.held.append(_Pending(state, conn, result, runs, slot, ctx.site))
                try:  # built now, off the path from the slot to the send: the release only joins bytes
                    send.prebuild(conn, ctx.bench.bench_id, runs, **ctx.site.settings.rq_ttls)
                except Exception as exc:  # an optimisation only: the release builds what is not built
                    log.debug("site %s: could not build its held runs ahead (%s); the release will", ctx.name, exc)
                # now, off the path from the slot to the send: the release then finds the epoch fresh
                observe_epoch(conn, ctx.bench.bench_id,
                              fresh_for=(slot - now).total_seconds() / ahead.clock_seconds(1.0) + 1.0)
            if result.send_error:  # its re-send of an earlier slot's outbox failed: the outage, as in a step
                raise redis.exceptions.ConnectionError(result.send_error.partition(": ")[2] or result.send_error)
            if result.inactive:
                state.inactive = True  # nothing decided: the step at the slot decides and records it
            elif result.earliest_known:
                state.next_due = ahead.owed_wake(result.owed, result.earliest)
            else:  # runs held here are released at their slot (:meth:`_release`): only another's are owed
                state.next_due = store_for(ctx.database()).earliest_next() if runs else next_due_after(ctx, now)
            if self.keep_results:
                self.results.append(result)
            if result.fired or result.skipped or result.missed:
                log.info("site %s: %d claimed ahead of %s (%d skipped, %d missed)", ctx.name, result.fired,
                         slot.isoformat(sep=" "), result.skipped, result.missed)
            if not result.inactive:  # an inactive site's step at the slot decides and records it
                batch, states = self._batch(writes, conn)
                state.step.write_last_tick(batch, now)
                states.append(state)
                state.stepped_at = now
        except TRANSIENT as exc:
            self._fail(state, now, exc)
        except Exception as exc:  # a bug must not kill the loop for every site; log it loudly, back off
            log.exception("site %s: unexpected error claiming a slot ahead", ctx.name)
            self._fail(state, now, exc)

    def _mark_quietly(self, state: SiteLoopState) -> bool:
        """:meth:`_mark_owed` outside a visit (a site leaving the bench, the process stopping); a failure is
        logged, not raised (the runs stay in the outbox). Returns whether it succeeded."""
        try:
            self._mark_owed(state)
            return True
        except Exception as exc:
            log.warning("site %s: could not mark its released runs sent (%s: %s); they stay in its outbox, and a "
                        "later pass sends them again, which RQ stores once", state.ctx.name, type(exc).__name__, exc)
            return False

    def _mark_all_owed(self, budget: float) -> None:
        """On the way out: mark sent the runs released while their site held no connection, within ``budget``
        real seconds (one connection per such site); the rest stay in their outboxes (sent again by a later
        pass, stored once by RQ: I4)."""
        give_up = time.monotonic() + budget
        left = 0
        for state in self.sites.values():
            if not state.unmarked:
                continue
            if time.monotonic() >= give_up:
                left += sum(len(sent.ids) for _, sent in state.unmarked)
                state.unmarked.clear()
                continue
            self._mark_quietly(state)
            self._used(state)
        if left:
            log.info("stopping with %d sent run(s) not marked sent: they stay in their outboxes, and the next pass "
                     "sends them again, which RQ stores once", left)

    def _mark_owed(self, state: SiteLoopState) -> None:
        """Mark sent the runs released while ``state``'s site held no connection (:func:`_reconnects`): first
        thing in its next visit, before its pass, which would otherwise find them in its outbox and send them again
        (RQ would store them once, I4, but that is a round trip per slot for nothing). Meanwhile they are outbox
        rows whose slot has passed: another process's pass may send them again, with the same result. Errors
        propagate (the visit fails and backs off; the runs stay in the outbox, I3, and are sent at most again)."""
        if not state.unmarked:
            return
        owed, state.unmarked = state.unmarked, []
        for site, sent in owed:
            ctx = state.ctx if state.ctx.site.db_url == site.db_url else SiteContext(site)
            try:
                with ctx.pinned():
                    record_sent(ctx, sent)
            finally:
                if ctx is not state.ctx:
                    ctx.close()
    def _begin_cycle(self, all_sites: bool) -> None:
        """Per cycle, not per site: the descriptor budget (a ``getrlimit``), and the change gate's readings (a
        cycle over every site, an announced change or the first, probes every site: :mod:`.gate`)."""
        self.fd_cap = open_sites_cap()
        self.gate.begin(not all_sites, (state.ctx.site.db_url for state in self.sites.values()))

    def _in_turn(self) -> list[SiteLoopState]:
        """The sites, starting at this process's own offset: several ``schedule`` processes over the same sites
        begin each cycle at different sites, so they share a slot's work instead of racing through the sites
        in the same order (the claims keep each slot to one run either way)."""
        states = list(self.sites.values())
        start = int(self.offset * len(states)) if states else 0
        return states[start:] + states[:start]

    @staticmethod
    def _due_first(states: list[SiteLoopState], now: datetime) -> list[SiteLoopState]:
        """The sites with a slot due at ``now`` before the others (each group in its turn): in a cycle that
        steps every site (the tick interval, an announced change), a slot due at a site late in the turn
        waits only for the other due sites' passes, not for every site's probe."""
        return sorted(states, key=lambda s: s.next_due is None or s.next_due > now)  # stable: turn order kept

    def _used(self, state: SiteLoopState) -> None:
        """``state``'s site just used its database: it becomes the most recently used open one, and the least
        recently used are closed past the process's budgets: sites open at all (file descriptors:
        ``max_open``, or :func:`open_sites_cap`) and PostgreSQL connections (``scheduler_db_connections``,
        :data:`~hookscheduler.config.settings.DEFAULT_DB_CONNECTIONS`). A closed site reconnects when it is
        next stepped (a fraction of a millisecond for SQLite, a few for PostgreSQL), so 1,000 sites on one
        server work within its ``max_connections``."""
        lru, held = self.open_lru, self.open_pg
        name = state.ctx.name
        lru.pop(name, None)
        held.pop(name, None)
        if not state.ctx.is_open:
            return
        lru[name] = state
        if state.ctx.holds_server_connection:
            held[name] = state
        cap = self.max_open if self.max_open is not None else self.fd_cap or open_sites_cap()
        # entries of sites closed since (a failure) still count here, so what is open stays within both budgets
        for budget, queue in ((state.ctx.site.settings.db_connections, held), (cap, lru)):
            while len(queue) > max(1, budget):
                other_name, other = next(iter(queue.items()))
                lru.pop(other_name, None)
                held.pop(other_name, None)
                other.ctx.close(planned=True)

    @staticmethod
    def _batch(writes: dict[int, tuple[SetBatch, list[SiteLoopState]]],
              conn: redis.Redis) -> tuple[SetBatch, list[SiteLoopState]]:
        """The cycle's batch of key writes on ``conn`` (sites of a bench share their Redis: one for all)."""
        found = writes.get(id(conn))
        if found is None:
            found = writes[id(conn)] = (SetBatch(conn), [])
        return found

    def _flush(self, writes: dict[int, tuple[SetBatch, list[SiteLoopState]]], now: datetime) -> bool:
        """Send the cycle's last ticks and heartbeat: one round trip per Redis, not one per site and key. A
        Redis that fails here fails the steps whose last tick it carried, as a failed write inside the step
        would: the outage is reported once and the sites back off. Returns whether the loop's sleep must be
        computed again: a site failed (its retry comes sooner) or recovered from a clock excursion (its slots
        moved)."""
        again = False
        for batch, states in writes.values():
            try:
                batch.flush()
            except redis.exceptions.RedisError as exc:
                for state in states:
                    state.step.last_tick_written = None
                    self._fail(state, now, exc)
                    again = True
                continue
            for state in states:
                if state.retry_at is None:  # not failed since its step: the step and its writes both went through
                    self._recovered(state)
                if state.step.found_excursion is not None:  # the batch carried the clock-excursion checks
                    self._recover(state, batch.conn, now)
                    again = True
        return again

    @staticmethod
    def _recovered(state: SiteLoopState) -> None:
        """A step whose writes reached Redis: any failure streak ends here, said once."""
        if state.failures:
            log.warning("site %s: recovered after %d failed attempt(s)", state.ctx.name, state.failures)
        state.failures, state.last_error = 0, None

    def _recover(self, state: SiteLoopState, conn: redis.Redis, now: datetime) -> None:
        """Recover the site from the clock excursion its step's check found (:meth:`.step.SiteStep.recover`),
        then read its earliest slot again (jobs moved back)."""
        try:
            with state.ctx.pinned():
                state.step.recover(conn)
                state.next_due = store_for(state.ctx.database()).earliest_next()
        except Exception as exc:  # found again at the next check: its step ahead stays the latest
            if not isinstance(exc, TRANSIENT):
                log.exception("site %s: unexpected error recovering from a clock excursion", state.ctx.name)
            self._fail(state, now, exc)

    def _refresh(self) -> None:
        try:
            self.refresh_sites()
        except HookSchedulerError as exc:  # a broken config file: keep the previous settings, say so once
            self._report(None, f"cannot read the bench config: {exc}")

    def work_ahead(self, until: datetime | None = None) -> None:
        """Just before a slot: the work of the next cycle that does not depend on the slot's instant, done
        ahead so the slot waits only for its pass. A failure here is left for the cycle to meet and report.

        ``until``: the slot. No site's sweep starts at or after it: with many sites whose sweeps fall due
        together (a thousand SQLite sites: over 100 ms) the work ahead would otherwise run past the slot and
        delay its release; a sweep not done ahead is done by the site's step, as without this."""
        self._refresh()
        now = self.now_fn()
        for state in self.sites.values():
            if until is not None and self.now_fn() >= until:
                break
            if state.retry_at is not None and now < state.retry_at:
                continue
            try:
                state.step.sweep_ahead(now, ahead=FRESH)
            except Exception:  # the cycle retries the sweep and reports what fails
                log.debug("site %s: the sweep before the pass failed; the cycle will retry it", state.ctx.name)
            self._used(state)
        self.worked_ahead_at = time.monotonic()

    def _send_pending(self, pending: list[_Pending], writes: dict[int, tuple[SetBatch, list[SiteLoopState]]],
                      now: datetime) -> None:
        """Send the runs several sites' passes committed, in one round trip per Redis (:func:`.outbox.send_many`),
        then mark them sent in each site's database. A site whose runs could not be sent (or marked) fails its
        step as a send inside its pass would: no last tick, back-off, the runs left in its outbox."""
        groups: dict[int, list[_Pending]] = {}
        for item in pending:
            groups.setdefault(id(item.conn), []).append(item)
        pending.clear()
        for group in groups.values():
            conn = group[0].conn
            contexts = [self._claimed_in(item) for item in group]
            parts = send_many(conn, [(ctx, item.runs) for ctx, item in zip(contexts, group, strict=True)])
            for ctx, item, part in zip(contexts, group, parts, strict=True):
                state = item.state
                try:
                    item.result.add_sent(*part.outcome)
                    if part.outcome.error:
                        error = part.outcome.error
                        raise redis.exceptions.ConnectionError(error.partition(": ")[2] or error)
                    if part.to_record is not None and item.site is not None and ctx is state.ctx \
                            and _reconnects(ctx):
                        state.unmarked.append((item.site, part.to_record))  # at its next visit
                    elif part.to_record is not None:
                        with ctx.pinned():
                            record_sent(ctx, part.to_record)
                        if ctx is state.ctx:
                            self._used(state)
                except Exception as exc:
                    if not isinstance(exc, TRANSIENT):
                        log.exception("site %s: unexpected error marking its runs sent", state.ctx.name)
                    batch, states = self._batch(writes, conn)
                    batch.discard(last_tick_key(state.ctx.bench.bench_id, state.ctx.name))
                    if state in states:
                        states.remove(state)
                    state.step.last_tick_written = None
                    state.stepped_at = None  # its step did not complete: the retry steps it (its outbox)
                    self._fail(state, now, exc)
                finally:
                    if ctx is not state.ctx:
                        ctx.close()

    def _claimed_in(self, item: _Pending) -> SiteContext:
        """The context of the database ``item``'s runs were claimed in: the site's own, unless runs held for a
        slot belong to a site that has since left the bench or been pointed at another database (the config
        re-read in between). Then a context of their own, closed once they are marked sent: the old database
        must not keep them as unsent (any pass serving it would send them again), nor a removed site stay open."""
        state, site = item.state, item.site
        if site is None or (self.sites.get(state.ctx.name) is state and state.ctx.site.db_url == site.db_url):
            return state.ctx
        return SiteContext(site)

    def _step_site(self, state: SiteLoopState, now: datetime,
                   writes: dict[int, tuple[SetBatch, list[SiteLoopState]]],
                   pending: list[_Pending] | None = None) -> None:
        ctx = state.ctx
        try:
            conn = redis_for(ctx.site)
            batch, states = self._batch(writes, conn)
            seen = self.gate.seen(ctx, (s.ctx for s in self.open_pg.values())) if self._not_due(state, now) else None
            if seen is not None and not state.unmarked and not state.step.needs_database(now) and \
                    self.gate.skips(ctx.name, ctx.site, seen, now):
                state.step.skip(now, batch)  # no database: its cached answer stands (:mod:`.gate`)
                states.append(state)
                state.stepped_at = now
                return
            self._mark_owed(state)  # before its pass, which would otherwise send them again from the outbox
            deferred: list[send.Run] = []
            result = state.step.run(conn, now, last_tick=batch,
                                    defer=deferred.extend if pending is not None else None)
            if deferred and pending is not None:  # sent with other sites' (:meth:`_send_pending`)
                pending.append(_Pending(state, conn, result, deferred))
            if result.send_error:  # "<Type>: <message>": report it as the same outage a direct call would
                raise redis.exceptions.ConnectionError(result.send_error.partition(": ")[2] or result.send_error)
            states.append(state)  # its last tick is in the batch
            # inactive: the due slots are held, so the earliest one is no wake-up time (the tick-interval cap
            # notices a resume; a pause with an end wakes the loop at its end). A pass that moved no slot read
            # the earliest one in its probe.
            state.inactive = result.inactive is not None
            if result.inactive:
                state.next_due = result.resume_at
            else:
                state.next_due = ahead.owed_wake(result.owed, result.earliest) if result.earliest_known \
                    else next_due_after(ctx, now)
            if self.keep_results:
                self.results.append(result)
            if result.fired or result.skipped or result.missed:
                log.info("site %s: %d fired, %d skipped, %d missed", ctx.name, result.fired, result.skipped,
                         result.missed)
        except TRANSIENT as exc:
            self._fail(state, now, exc)
            return
        except Exception as exc:  # a bug must not kill the loop for every site; log it loudly, back off
            log.exception("site %s: unexpected error in the scheduling pass", ctx.name)
            self._fail(state, now, exc)
            return
        # not recovered yet: its last tick is in the cycle's batch, which may still fail (a Redis down while
        # nothing was due: the step itself never touched it). :meth:`_flush` settles it once that is written,
        # so an outage keeps backing off and is reported once, not "recovered" on every attempt
        state.retry_at = None
        state.stepped_at = now
        self.gate.probed(ctx.name, ctx.site, seen, now)

    @staticmethod
    def _not_due(state: SiteLoopState, now: datetime) -> bool:
        """Whether the step at ``now`` takes the gate's reading (:meth:`.gate.ChangeGate.seen`): no slot of the
        site is due and it is not retrying a failure. Asked before the reading, so a cycle woken for a slot
        never waits for a reading before the slot's pass. Its probe is left out only if, besides, nothing else
        in its step needs the database (:meth:`.step.SiteStep.needs_database`) and the gate finds its database
        unwritten since its last probe (:meth:`.gate.ChangeGate.skips`)."""
        return not state.failures and (state.next_due is None or state.next_due > now)

    def _fail(self, state: SiteLoopState, now: datetime, exc: BaseException) -> None:
        state.failures += 1
        self.gate.forget(state.ctx.name)
        state.step.forget_ahead()
        delay = min(MAX_BACKOFF, 0.5 * 2 ** min(state.failures - 1, 10))
        state.retry_at = now + timedelta(seconds=delay)
        state.ctx.close()  # reconnect next time: the connection may be broken
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if message != state.last_error:
            self._report(state.ctx.name, f"{message}; retrying with back-off (next in {delay:.1f}s)")
            state.last_error = message

    def _report(self, site: str | None, message: str) -> None:
        from ..security.redact import redact

        log.error("%s%s", f"site {site}: " if site else "", redact(message))

    def _heartbeat(self, now: datetime, writes: dict[int, tuple[SetBatch, list[SiteLoopState]]] | None = None,
                   wait: float = 0.0) -> None:
        """Queue the process's heartbeat on the cycle's batch of writes (or write it now without one), unless
        the last one is younger than :data:`HEARTBEAT_EVERY` seconds and will still be at the loop's next wake,
        ``wait`` seconds away.

        The heartbeat is written by the cycle, not by a timer of its own: its age then measures the loop (a
        cycle stuck on a database lets it age, then expire, and ``scheduler_up`` drops), and an idle process
        wakes for nothing but its sites. A cycle followed by a long sleep always writes it, so its age stays
        within the longest sleep (a tick interval) plus a cycle; frequent cycles write it once every
        :data:`HEARTBEAT_EVERY` seconds, not at each (its value names every site served)."""
        if self.last_heartbeat and (now - self.last_heartbeat).total_seconds() + wait < HEARTBEAT_EVERY:
            return
        for state in self.sites.values():
            ctx = state.ctx
            value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": now.isoformat(),
                                "sites": sorted(self.sites)})
            ttl = max(3 * ctx.site.tick_interval, 30)
            conn = redis_for(ctx.site)
            target = self._batch(writes, conn)[0] if writes is not None else conn
            try:
                target.set(heartbeat_key(ctx.bench.bench_id, self.instance), value, ex=ttl)
            except redis.exceptions.RedisError:
                pass  # the site's pass reports Redis problems; a heartbeat is best effort
            break  # the heartbeat is per bench: every site of a bench shares its Redis
        self.last_heartbeat = now

    def _earliest(self) -> datetime | None:
        """The earliest due slot of any site that is not backing off, or of runs held for their slot (None: none
        known)."""
        dues = [r.next_due for r in self.sites.values() if r.retry_at is None and r.next_due is not None]
        dues += [h.slot for h in self.held if h.slot is not None]
        return min(dues) if dues else None

    def _sleep_for(self, now: datetime) -> float:
        """Until the earliest due slot of any site, at most one tick interval after a site's last step, sooner
        for a retry, for the slot of held runs (their release), or for the next slot to come within its
        claim-ahead window (``claim_wake``)."""
        waits = [(h.slot - now).total_seconds() for h in self.held if h.slot is not None]
        for state in self.sites.values():
            cap = float(state.ctx.site.tick_interval)
            if state.stepped_at is not None and state.stepped_at <= now:
                cap -= (now - state.stepped_at).total_seconds()
            if state.retry_at is not None:
                waits.append((state.retry_at - now).total_seconds())
            elif state.next_due is not None:
                waits.append(min(cap, (state.next_due - now).total_seconds()))
            else:
                waits.append(cap)
        wait = min(waits) if waits else 1.0
        self.waking_to_claim = self.claim_wake is not None and (self.claim_wake - now).total_seconds() < wait
        if self.waking_to_claim and self.claim_wake is not None:
            wait = (self.claim_wake - now).total_seconds()
        return max(MIN_SLEEP, wait)

    def stop(self, *_: Any) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _on_signal(self, *_: Any) -> None:
        """SIGTERM / SIGINT: stop (the cycle under way ends, the drain, the heartbeat removed), and arm a watchdog
        that exits the process if that overruns :data:`STOP_GRACE` plus the claim-ahead window. A Redis or a
        PostgreSQL that refuses connections fails each call at once (the clients do not retry), but one that
        accepts and does not answer holds a call up to its timeout (``socket_timeout`` 30 s for Redis), and the
        cycle's calls add up (seen: a scheduler outliving its killed ``start`` and private Redis by 40 s; the
        cause was not pinned down). Exiting then is as safe as a kill (:mod:`.claim`'s invariants hold across
        one): what the process held stays in its site's outbox, sent by a pass at or after its slot."""
        self.stop()
        if self.watchdog is None:
            grace = STOP_GRACE + max((s.ctx.site.settings.claim_ahead for s in self.sites.values()), default=0.0)
            self.watchdog = threading.Timer(grace, self._overdue, args=(grace,))
            self.watchdog.daemon = True
            self.watchdog.start()

    def _overdue(self, grace: float) -> None:
        log.error("scheduler %s did not stop within %.0f s of its stop signal (a service not answering?): exiting "
                  "now; runs it held stay in their outbox and are sent at or after their slot", self.instance, grace)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self.exit_fn(1)

    def _listen_for_changes(self) -> None:
        for state in self.sites.values():
            ctx = state.ctx
            WakeListener(redis_for(ctx.site), ctx.bench.bench_id, self.wake_event, self.stop_event).start()
            return

    def run(self, max_cycles: int | None = None) -> None:
        """Loop until SIGTERM/SIGINT (or ``max_cycles``); the sleep wakes at once on a stop signal."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log.info("scheduler %s started", self.instance)
        try:
            while not self.stop_event.is_set():
                announced = self.wake_event.is_set()  # a change was announced: it may concern any site
                self.wake_event.clear()
                wait = self.cycle(all_sites=announced or self.cycles == 0)
                if self.cycles == 0:
                    self._listen_for_changes()
                self.cycles += 1
                if max_cycles is not None and self.cycles >= max_cycles:
                    break
                self._sleep(wait)
        finally:
            try:
                self.drain()
                self._mark_all_owed(MARK_ON_STOP)
            finally:
                self._clear_heartbeat()
                for state in self.sites.values():
                    state.ctx.close()
                if self.watchdog is not None:
                    self.watchdog.cancel()
                log.info("scheduler %s stopped", self.instance)

    def drain(self) -> None:
        """On the way out: send the runs held for a slot still to come at that slot, then return. The wait is
        bounded by the real time to the last held slot (at most the claim-ahead window, a couple of seconds at
        most: well within a supervisor's stop timeout), measured when the drain starts; runs whose slot the
        clock has not reached by then (it went back meanwhile) are left in the outbox, which any pass sends at
        or after their slot (I10). Waiting rather than leaving them all to the outbox: a stop does not push a
        slot claimed a moment ago to whenever a scheduler next runs (one scheduler restarted by hand later)."""
        if not self.held:
            return
        now = self.now_fn()
        latest = max((h.slot for h in self.held if h.slot is not None), default=now)
        per_real = ahead.clock_seconds(1.0)  # the scheduler's seconds in one real second
        budget = max(0.0, (latest - now).total_seconds()) / per_real + 0.05
        cap = max((h.state.ctx.site.settings.claim_ahead for h in self.held), default=0.0) + 0.05
        deadline = time.monotonic() + min(budget, cap)
        while self.held:
            writes: dict[int, tuple[SetBatch, list[SiteLoopState]]] = {}
            self._release(self.now_fn(), writes)
            if not self.held or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        if self.held:
            n = sum(len(h.runs) for h in self.held)
            log.warning("stopping with %d run(s) claimed ahead of a slot the clock has not reached: they stay in "
                        "the outbox, and the next pass of any scheduler at or after their slot sends them", n)
            for h in self.held:
                send.forget(h.runs)
            self.held.clear()

    def _sleep(self, wait: float) -> None:
        """Sleep ``wait`` seconds; when a slot ends the sleep, wake :data:`LEAD` early, :meth:`work_ahead`, and
        wait for the slot itself. A stop signal or an announced change ends any of these waits at once."""
        if SIM is not None:  # a simulated clock (hookscheduler.clock): no lead or spin, just the converted sleep
            self.wake_event.wait(real_seconds(wait))
            return
        due = self._earliest()
        until = (due - self.now_fn()).total_seconds() if due is not None else None
        if self.waking_to_claim or due is None or until is None or until <= 0 or abs(until - wait) > LEAD:
            self.wake_event.wait(wait)  # not a slot (the tick-interval cap, a retry, a late row): as asked
            return
        if wait > LEAD:
            if self.wake_event.wait(wait - LEAD):
                return
            self.work_ahead(until=due)
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
        for state in self.sites.values():
            try:
                redis_for(state.ctx.site).delete(heartbeat_key(state.ctx.bench.bench_id, self.instance))
            except redis.exceptions.RedisError:
                pass
            break
