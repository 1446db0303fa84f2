"""One site's *step*: everything a scheduler does for one site at one instant, in one place.

Both ways of scheduling a site run this and nothing else: the ``schedule`` loop (a step per site per cycle)
and ``hookscheduler tick`` (one step per site from system cron or a Kubernetes CronJob, then exit). A step is,
in this order:

1. the first half of the *sweep* (when one is due): *re-anchor* the jobs if the site's calendar changed (a new
   ``time_zone`` must not fire one slot at the old time, so this precedes the pass) and *repair* jobs that
   have no next slot;
2. the *pass* (:func:`.claim.run_pass`): the exactly-once protocol over the due jobs;
3. the second half of the sweep: *reconcile* the site's active runs against RQ (settle the ones that are over,
   put orphans back on their queue), whether or not their job is due;
4. the site's *last tick*: a Redis key saying when a step last completed, read by ``scheduler status`` and
   ``doctor``; written (at most once a second) in one round trip with the clock-excursion check's swap of the
   site's latest step (:mod:`.excursion`), after which the step recovers from an excursion it found.

When Redis refused the pass's runs (they stay in the outbox), the step stops after the pass: reconciling needs
the Redis that just failed, and the last tick must not claim a step that did not complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

from ..broker.batch import SetBatch
from ..broker.keys import last_tick_key
from ..context import SiteContext
from ..store.database import require_schema
from . import excursion, send
from .claim import PassResult, run_pass
from .reanchor import reanchor_if_calendar_changed, signature
from .reconcile import reconcile_active
from .repair import repair_missing_slots
from .rows import repair_values

#: Seconds between sweeps in the loop (a sweep reads every active run of the site and asks RQ about them).
SWEEP_EVERY = 30.0
#: Seconds the last-tick key lives: long after any outage, short enough that a removed site's key goes away.
LAST_TICK_TTL = 7 * 86400
#: Seconds between two checks for values written by hand (a scan of the job table on SQLite; a few ms).
VALUES_EVERY = 300.0
#: Seconds between two writes of the last-tick key: a loop stepping every few milliseconds writes it once.
LAST_TICK_EVERY = 1.0


@dataclass
class SiteStep:
    """One site's step, and what it remembers between steps: when it last swept and wrote its last tick, and
    whether the first half of the next sweep already ran ahead of the slot (:meth:`sweep_ahead`)."""

    ctx: SiteContext
    last_sweep: datetime | None = None
    swept_ahead: bool = False
    last_tick_written: datetime | None = None
    #: The calendar signature this step last checked the stored one against: the re-anchor check reads the
    #: database again only when the site's calendar (its config) changed since.
    checked_calendar: str | None = None
    #: What the last pass's probe said: some row had no next slot (repair), some run was active (reconcile).
    #: Both start true: the first sweep does everything.
    unslotted: bool = True
    active: bool = True
    #: When the sweep last looked for values written by hand (:func:`.rows.repair_values`).
    values_checked: datetime | None = None
    #: A clock excursion the last written check found, not yet recovered from (:meth:`recover`).
    found_excursion: excursion.Excursion | None = None

    def sweep_due(self, now: datetime, ahead: float = 0.0) -> bool:
        """Whether the step at ``now`` (plus ``ahead`` seconds) sweeps: always the first time."""
        if self.last_sweep is None:
            return True
        return (now - self.last_sweep).total_seconds() + ahead >= SWEEP_EVERY

    def sweep_ahead(self, now: datetime, ahead: float) -> None:
        """Just before a slot: run the first half of a sweep due within ``ahead`` seconds now, so the slot
        waits only for its pass. An error propagates and leaves the step as it was (the step retries)."""
        if self.swept_ahead or not self.sweep_due(now, ahead):
            return
        self._sweep_before_pass(now)
        self.swept_ahead = True

    def run(self, conn: redis.Redis, now: datetime, sweep: bool | None = None,
            last_tick: SetBatch | None = None,
            defer: Callable[[list[send.Run]], None] | None = None) -> PassResult:
        """The step at ``now`` (naive UTC). ``sweep``: force the sweep on or off (default: when due, or when
        its first half ran ahead). ``last_tick``: a batch to queue the last-tick write and the clock-excursion
        check on (the loop writes every site's with its heartbeat, one round trip, then calls
        :meth:`recover`) instead of writing them now. ``defer``: the pass hands its committed runs to it
        instead of sending them (:func:`.claim.run_pass`). Errors propagate; :meth:`forget_ahead` after one.

        The sweep skips the work its answer cannot have changed: the re-anchor check when the calendar is
        the one already checked, the repair when the previous probe saw no row without a next slot, the
        reconcile when the pass's probe saw no active run. An idle step is then the probe and, at most once a
        second, the last tick with the clock-excursion check (one Redis round trip, shared by the loop's sites)."""
        sweep = self.swept_ahead or (self.sweep_due(now) if sweep is None else sweep)
        with self.ctx.pinned():  # the step's statements share one check of the database file
            if sweep and not self.swept_ahead:
                self._sweep_before_pass(now)
            result = run_pass(self.ctx, conn, now, defer=defer)
            self.unslotted, self.active = result.unslotted, result.active
            if result.send_error:
                return result
            if sweep:
                self._sweep_after_pass(conn, now, result.active)
            if last_tick is not None:
                self.write_last_tick(last_tick, now)
            else:
                batch = SetBatch(conn)
                self.write_last_tick(batch, now)
                batch.flush()
                self.recover(conn)
        return result

    def claim_ahead(self, conn: redis.Redis, slot: datetime, now: datetime,
                    hold: Callable[[list[send.Run]], None]) -> PassResult:
        """The pass of ``slot``, run at ``now`` before it (:mod:`.ahead`): it decides and commits the slot and
        hands its runs to ``hold`` (the loop sends them at the slot; I10 keeps every other sender off them
        meanwhile). The sweep's first half runs first if it is due by the slot, as :meth:`sweep_ahead`; the
        reconcile and the last tick are left to the next step (a last tick stamped with a slot still to come
        would read as a clock that went back); a sweep due by ``now`` itself is completed here (its reconcile of
        active runs at ``now``), so the loop may count the visit as the site's step at ``now`` and write its last tick
        stamped ``now``. Errors propagate; :meth:`forget_ahead` after one."""
        with self.ctx.pinned():
            self.sweep_ahead(now, ahead=(slot - now).total_seconds())
            result = run_pass(self.ctx, conn, slot, defer=hold, ahead_of=now)
            self.unslotted, self.active = result.unslotted, result.active
            if self.swept_ahead and self.sweep_due(now) and not result.inactive and not result.send_error:
                # the sweep was due by now, not only by the slot: its second half here, as a step at ``now``
                # would (the loop counts this visit as the site's step)
                self._sweep_after_pass(conn, now, result.active)
        return result

    def needs_database(self, now: datetime) -> bool:
        """Whether this step at ``now`` needs the database for more than its probe: a sweep is due and has
        something to do (a calendar to check against the stored one, rows without a next slot to repair, active
        runs to reconcile). The change gate (:mod:`.gate`) leaves the probe out only when this is false. The
        sweep's check of values written by hand is not counted: the gate serves PostgreSQL sites only, whose
        typed columns refuse such values (:func:`.rows.repair_values` does nothing there)."""
        if not self.sweep_due(now):
            return False
        if self.unslotted or self.active:
            return True
        return not self.swept_ahead and signature(self.ctx.calendar) != self.checked_calendar

    def skip(self, now: datetime, last_tick: SetBatch) -> None:
        """The step at ``now`` without its probe (the change gate found the database unwritten since the last
        one, and :meth:`needs_database` is false): a due sweep counts as done (it had nothing to do), and the
        last tick is queued as a full step's would be."""
        if self.sweep_due(now):
            self.last_sweep, self.swept_ahead = now, False
        self.write_last_tick(last_tick, now)

    def _sweep_after_pass(self, conn: redis.Redis, now: datetime, active: bool) -> None:
        """The sweep's second half, after a pass at ``now``: the reconcile of active runs (when the pass saw any);
        the sweep is then done."""
        if active:
            reconcile_active(self.ctx, conn, now)
        self.last_sweep, self.swept_ahead = now, False

    def _sweep_before_pass(self, now: datetime) -> None:
        """The sweep's first half: re-anchor after a calendar change, then repair jobs without a next slot."""
        calendar = signature(self.ctx.calendar)
        values_due = self.unslotted or self.values_checked is None or \
            (now - self.values_checked).total_seconds() >= VALUES_EVERY
        if calendar != self.checked_calendar or self.unslotted or (values_due and not self.ctx.site.on_postgres):
            # it may write, and it runs before the pass's probe checks the schema (.claim.run_pass): a schema
            # that is not this hookscheduler's is refused first, by the same check (and words) as the pass's.
            # Only when there is work: an idle sweep on PostgreSQL needs no database, on SQLite it reads it every
            # VALUES_EVERY seconds anyway
            require_schema(self.ctx.database())
        if calendar != self.checked_calendar:
            reanchor_if_calendar_changed(self.ctx, now)
            self.checked_calendar = calendar
        if values_due:
            # values written by hand (SQLite keeps any): booleans as words, a next_execution that is not a time
            # (set to NULL here, so the repair below reschedules it)
            self.unslotted |= repair_values(self.ctx, now) > 0
            self.values_checked = now
        if self.unslotted:
            repair_missing_slots(self.ctx, now)

    def forget_ahead(self) -> None:
        """After a failed step: the sweep's first half runs again, all of it (the database may have rolled it
        back, or been replaced)."""
        self.swept_ahead = False
        self.checked_calendar, self.unslotted, self.active = None, True, True

    def write_last_tick(self, batch: SetBatch, now: datetime) -> None:
        """Queue the last tick and, with it, the clock-excursion check's swap of the latest step
        (:func:`.excursion.queue_check`): at most once a second, and at once when the clock went back."""
        last = self.last_tick_written
        if last is not None and last <= now and (now - last).total_seconds() < LAST_TICK_EVERY:
            return
        excursion.queue_check(self.ctx, batch, now, self._found)
        batch.set(last_tick_key(self.ctx.bench.bench_id, self.ctx.name), now.isoformat(), ex=LAST_TICK_TTL)
        self.last_tick_written = now

    def _found(self, found: excursion.Excursion) -> None:
        self.found_excursion = found

    def recover(self, conn: redis.Redis) -> bool:
        """After the batch carrying this step's excursion check was written: recover from the clock
        excursion it found, if any (:func:`.excursion.recover`); returns whether it did. Errors propagate
        (the excursion is then found again at the next check: its step ahead stays the latest)."""
        found, self.found_excursion = self.found_excursion, None
        if found is None:
            return False
        excursion.keep_ahead(self.ctx, conn, found)
        self.last_tick_written = None  # check again at the next step, whatever happens here
        excursion.recover(self.ctx, conn, found)
        return True
