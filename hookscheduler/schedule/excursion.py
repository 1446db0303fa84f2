"""A clock that jumped forward and came back: found, the schedule recovered, logged, shown by ``doctor``.

One step under a clock a day ahead claims every job's next slot a day ahead (each claim moves
``next_execution`` to the first slot after *that* now); when the clock comes back, nothing is due for a day
and nothing says why. The step that follows sees it: each site keeps in Redis the latest moment a step ran at
(:func:`queue_check`: read as it is written, in the round trip of the site's last tick, at most once a second
and after the pass); a previous step *later* than this one by more than :data:`TOLERANCE` means a clock ran
ahead. The pass before the check decides nothing the clock ahead decided (each job it claimed has its next slot
past that clock's now, which is ahead of this one), and the recovery moves no job to a slot at or before now,
so recovering after the pass or before it gives the same schedule. Then :func:`recover`, conservatively, so
that it can never be the cause of a second run of a slot:

* nothing sent to Redis is withdrawn or deleted: a run decided under the clock ahead runs early, once (a
  worker may already have taken it off its queue), and its row records that; missed and skipped stretches
  decided under it stay as recorded;
* every job whose next slot lies ahead is moved back (compare-and-set on ``next_execution``) to the first
  slot after now that no ledger row of the job covers (``first_slot .. last_slot`` of a row of any status;
  runs on request stand for no slot), never earlier: slots a row already stands for are never decided again,
  whatever the earlier excursions;
* the event is logged and kept in the state table (``clock_excursion``) for ``doctor``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis

from ..broker.batch import SetBatch
from ..broker.keys import site_prefix
from ..context import SiteContext
from ..store import store_for
from ..store.database import get_state, set_state
from ..timing.calendar import next_slot

log = logging.getLogger(__name__)

#: How far a previous step may be ahead of this one before it counts as a clock excursion: more than hosts'
#: clocks drift apart under NTP, less than the smallest jump that silences a job for a slot worth noticing.
TOLERANCE = timedelta(minutes=5)
STATE_KEY = "clock_excursion"


@dataclass(frozen=True)
class Excursion:
    """A step ran at ``ahead`` while this one runs at ``now``."""

    ahead: datetime
    now: datetime

    @property
    def by(self) -> timedelta:
        return self.ahead - self.now


def latest_step_key(bench_id: str, site: str) -> str:
    return f"{site_prefix(bench_id, site)}:latest-step"


def queue_check(ctx: SiteContext, batch: SetBatch, now: datetime, found: Callable[[Excursion], None]) -> None:
    """Record ``now`` as the site's latest step on ``batch`` (the step's last-tick write: one round trip for
    both) and, once the batch is written, say whether an earlier step of the site ran further ahead than
    ``now`` allows: then ``found`` gets the excursion. The caller puts the step ahead back
    (:func:`keep_ahead`) and recovers, and records ``now`` (:func:`mark`) only once the schedule is
    recovered, so a failed recovery is found again."""

    def seen(old: Any) -> None:
        previous = _parse(old)
        if previous is not None and previous - now > TOLERANCE:
            found(Excursion(previous, now))

    batch.swap(latest_step_key(ctx.bench.bench_id, ctx.name), now.isoformat(), _TTL, seen)


_TTL = 30 * 86400


def keep_ahead(ctx: SiteContext, conn: redis.Redis, excursion: Excursion) -> None:
    """Put the step ahead back as the site's latest step until the schedule is recovered."""
    conn.set(latest_step_key(ctx.bench.bench_id, ctx.name), excursion.ahead.isoformat(), ex=_TTL)


def mark(ctx: SiteContext, conn: redis.Redis, now: datetime) -> None:
    """Record ``now`` as the site's latest step (after a recovery)."""
    conn.set(latest_step_key(ctx.bench.bench_id, ctx.name), now.isoformat(), ex=_TTL)


def _parse(raw: Any) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return None


def recover(ctx: SiteContext, conn: redis.Redis, excursion: Excursion) -> tuple[int, int]:
    """Bring the site's schedule back to ``excursion.now`` without undoing anything; returns (jobs moved back,
    runs decided under the clock ahead and kept).

    Nothing sent to Redis is withdrawn: a worker may already hold a queued run (taken off the queue, not yet
    marked started), and taking its row back would let the slot be decided a second time. A run decided under
    the clock ahead runs early, once, and its row says so. A job's ``next_execution`` only moves back to the
    first slot after now that no ledger row of the job covers (any status; runs on request stand for no
    slot), so no slot a row already stands for is decided again, however many excursions came before."""
    now, store = excursion.now, store_for(ctx.database())
    moved = 0
    with store.transaction():
        early = store.runs_decided_after(now + TOLERANCE)
        ahead = store.slots_after(now)
        covered = store.covered_after([job_id for job_id, *_ in ahead], now) if ahead else {}
        for job_id, frequency, cron_format, current in ahead:
            if not isinstance(current, datetime):  # a bad row: the pass reports it (schedule/rows.py)
                continue
            try:
                target = next_slot(frequency, cron_format, now, ctx.calendar, anchor=current)
                last = covered.get(job_id)
                if last is not None and last >= target:  # never before a slot a row already stands for
                    target = next_slot(frequency, cron_format, last, ctx.calendar, anchor=current)
            except Exception:  # a bad row: the pass reports it (schedule/rows.py)
                continue
            if target < current:
                moved += store.move_slot(job_id, current, target)
        set_state(STATE_KEY, json.dumps({"detected_at": now.isoformat(), "ahead": excursion.ahead.isoformat(),
                                         "jobs": moved, "early": early}))
    mark(ctx, conn, now)
    log.warning("site %s: clock excursion: a step ran at %s, %s ahead of now (%s); %d job(s) moved back to their "
                "first slot not yet decided, %d run(s) decided under the clock ahead kept (each runs once, early)",
                ctx.name, excursion.ahead.isoformat(), _fmt(excursion.by), now.isoformat(), moved, early)
    return moved, early


def last_excursion() -> dict[str, object] | None:
    """The recorded excursion of the bound site (for ``doctor``), or None."""
    raw = get_state(STATE_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds} s"


__all__ = ["TOLERANCE", "Excursion", "keep_ahead", "last_excursion", "mark", "queue_check", "recover"]
