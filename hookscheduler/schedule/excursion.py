"""A clock that jumped forward and came back: found, the schedule recovered, logged, shown by ``doctor``.

One step under a clock a day ahead claims every job's next slot a day ahead (each claim moves
``next_execution`` to the first slot after *that* now); when the clock comes back, nothing is due for a day
and nothing says why. The step that follows sees it: each site keeps in Redis the latest moment a step ran at
(:func:`check`, one ``SET ... GET`` per sweep); a previous step *later* than this one by more than
:data:`TOLERANCE` means a clock ran ahead. Then :func:`recover`:

* every job whose next slot lies beyond the first slot after now is moved back to that slot;
* the runs claimed for future slots that no worker has started are taken off their queue and recorded
  ``skipped`` (their slot runs when it comes, once);
* runs for future slots that did start keep their slots (all the slots a catch-up run stood for): the pass
  does not run those slots again when they come (:func:`served_early`), so each slot still runs once, and the
  job runs again after the last of them;
* the event is logged and kept in the state table (``clock_excursion``) for ``doctor``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis

from ..broker.keys import queue_name, site_prefix
from ..context import SiteContext
from ..states import LedgerStatus
from ..store.database import get_state, set_state, write_txn
from ..store.models import ScheduledJobLog, ScheduledJobType
from ..timing.calendar import next_slot
from ..worker import marks

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


def check(ctx: SiteContext, conn: redis.Redis, now: datetime) -> Excursion | None:
    """Say whether an earlier step of the site ran further ahead than ``now`` allows (None also when Redis
    cannot be asked); without one, record ``now`` as the site's latest step. After an excursion the caller
    records ``now`` (:func:`mark`) only once the schedule is recovered, so a failed recovery is found again."""
    key = latest_step_key(ctx.bench.bench_id, ctx.name)
    try:
        old = _swap(conn, key, now.isoformat())  # one round trip on every sweep of every site
        previous = _parse(old)
        if previous is not None and previous - now > TOLERANCE:
            conn.set(key, old, ex=_TTL)  # put the step ahead back until the schedule is recovered
            return Excursion(previous, now)
    except redis.exceptions.RedisError:  # Redis down: the pass still claims into the outbox; check next sweep
        return None
    return None


_TTL = 30 * 86400


def _swap(conn: redis.Redis, key: str, value: str) -> Any:
    """``SET key value GET`` (Redis 6.2+): write and read the previous value in one round trip; GET then SET
    on an older server."""
    try:
        return conn.set(key, value, ex=_TTL, get=True)
    except redis.exceptions.ResponseError:  # a server before 6.2 knows no SET ... GET
        old = conn.get(key)
        conn.set(key, value, ex=_TTL)
        return old


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
    """Bring the site's schedule back to ``excursion.now``; returns (jobs moved back, runs withdrawn)."""
    now, db = excursion.now, ctx.database()
    moved = withdrawn = 0
    with write_txn(db):
        # every decision a step under the clock ahead wrote (its created_at is on that clock): runs not started
        # are withdrawn and missed / skipped stretches taken back, and their slots are decided again
        decided = list(ScheduledJobLog.select().where(
            (ScheduledJobLog.created_at > now + TOLERANCE) & ScheduledJobLog.trigger.in_(("schedule", "catch-up"))
            & ScheduledJobLog.status.in_((LedgerStatus.QUEUED, LedgerStatus.MISSED, LedgerStatus.SKIPPED))))
        begun = marks.started(conn, ctx.bench.bench_id, [str(r.rq_job_id) for r in decided if r.rq_job_id])
        again: dict[int, datetime] = {}  # job id -> the first slot to decide again
        for row in decided:
            if row.rq_job_id in begun or (row.reason or "").startswith("not run: decided by a step"):
                continue
            if row.rq_job_id:
                conn.lrem(f"rq:queue:{queue_name(ctx.bench.bench_id, row.queue or 'default')}", 0,
                          str(row.rq_job_id))
                conn.delete(f"rq:job:{row.rq_job_id}")
            taken = (ScheduledJobLog.update(
                status=LedgerStatus.SKIPPED, rq_job_id=None, finished_at=now, modified_at=now,
                reason=f"not run: decided by a step whose clock was {_fmt(excursion.by)} ahead (clock excursion); "
                       "its slots are decided again")
                .where((ScheduledJobLog.id == row.id) & (ScheduledJobLog.status == row.status)).execute())
            if taken:
                withdrawn += 1
                first = row.first_slot or row.scheduled_for
                again[row.job_id] = min(first, again.get(row.job_id, first))
        for job in ScheduledJobType.select().where((ScheduledJobType.removed == False)  # noqa: E712
                                                   & ScheduledJobType.next_execution.is_null(False)):
            target, current = again.get(job.id), job.next_execution
            if current is None:
                continue
            if current > now:
                try:
                    first = next_slot(job.frequency, job.cron_format, now, ctx.calendar, anchor=current)
                    target = min(target, first) if target is not None else first
                except Exception:  # a bad row: the pass reports it (schedule/rows.py)
                    pass
            if target is not None and target < current:
                moved += (ScheduledJobType.update(next_execution=target)
                          .where((ScheduledJobType.id == job.id) & (ScheduledJobType.next_execution == current))
                          .execute())
        set_state(STATE_KEY, json.dumps({"detected_at": now.isoformat(), "ahead": excursion.ahead.isoformat(),
                                         "jobs": moved, "withdrawn": withdrawn}))
    mark(ctx, conn, now)
    log.warning("site %s: clock excursion: a step ran at %s, %s ahead of now (%s); %d job(s) moved back to their "
                "next slot, %d run(s) claimed for future slots withdrawn", ctx.name, excursion.ahead.isoformat(),
                _fmt(excursion.by), now.isoformat(), moved, withdrawn)
    return moved, withdrawn


def served_early(runs: Sequence[Any], site: str) -> set[str]:
    """The rq ids among ``runs`` (about to be recorded) whose job already ran that slot: slots a step under a
    clock ahead served early (whatever the trigger it ran under). Asked only for slots up to a recorded
    excursion's reach, so an ordinary pass pays nothing (the state row is read once a minute)."""
    reach = _reach(site) if runs else None
    if reach is None:
        return set()
    early = set()
    for run in runs:
        if run.scheduled_for > reach:
            continue
        if ScheduledJobLog.select().where(  # a run for the slot, or a catch-up run whose stretch covers it
                (ScheduledJobLog.job_name == run.job_name) & (ScheduledJobLog.first_slot <= run.scheduled_for)
                & (ScheduledJobLog.last_slot >= run.scheduled_for)
                & ScheduledJobLog.status.not_in([LedgerStatus.SKIPPED, LedgerStatus.MISSED])).exists():
            early.add(str(run.rq_job_id))
    return early


def _reach(site: str) -> datetime | None:
    """How far the recorded excursion reached (one primary-key read; no excursion recorded: None)."""
    raw = get_state(STATE_KEY)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(json.loads(raw)["ahead"])
    except (ValueError, KeyError, TypeError):
        return None


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


__all__ = ["TOLERANCE", "Excursion", "check", "last_excursion", "mark", "recover", "served_early"]
