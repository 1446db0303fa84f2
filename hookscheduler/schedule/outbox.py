"""The outbox: runs claimed and recorded but not yet in RQ, and sending them (I3 and I4 of :mod:`.claim`).

A pass commits its claim and the runs' ledger rows (``status='queued'``, ``enqueued_at IS NULL``) *before* it
sends anything to Redis, and every pass first re-sends every claimed-but-unsent run (the probe finds them
through the outbox index, which holds exactly the rows between their claim and their send). So a process killed
at any point leaves one of:

* before the commit: nothing (the rollback undoes the claim), and the slot is still due: the next pass claims it;
* after the commit, before or during the send: an unsent outbox row, sent by the next pass of any process;
* after the send, before marking it sent: a run sent twice at worst, which RQ stores once: its job id is
  deterministic and :func:`hookscheduler.schedule.send.send_runs` uses RQ's atomic unique enqueue.

I10: the outbox only ever sends a run whose slot has come (``scheduled_for <= now``, on the sender's clock):
the loop claims a slot a moment ahead of it and holds its runs until the slot (:mod:`.ahead`), and a pass of any
other process in between must not send them early. Both the probe's flag (the earliest unsent slot) and the
outbox's selection (:func:`resend_outbox`) compare with ``now``. The RQ job's ``enqueued_at`` and the ledger's are
stamped when the run is sent (the enqueue script's ``TIME``: :data:`.send.ENQUEUE_MANY`, :func:`record_sent`), so
at the release, not the claim.

I11: a claim found unsent past the lateness grace is decided by its job's catch-up policy, as a slot no pass
served in time would be (:func:`settle_late`). A pass claims a slot on time and commits it; if its process then
dies (or Redis refuses the send) and no sender comes back before the grace (:func:`late_after`, the one the pass
uses to tell an on-time slot from a missed one), sending it as the on-time run it was claimed as would run a slot
``catchup = skip`` says not to run, and its queued run would block the job's on-time slot (``overlap = skip``)
and turn the slots of the outage into overlap skips. So, by ``catchup``:

* ``skip``: the row becomes ``missed`` ("claimed at <t> but never sent ..."), never sent;
* ``once``: ``missed`` when the job has a slot due (its next run, the catch-up of the outage or an on-time
  slot, is the one run that covers it); otherwise it is the catch-up itself: sent, trigger ``catch-up``, with
  a reason saying it was sent late;
* ``all``: sent, trigger ``catch-up``, with a reason saying it was sent late, unless the job's due slots fill
  its ``catchup_limit`` (they are later: the pass runs them and this one is beyond the limit, ``missed``).

Each is a compare-and-set on the row still being an unsent on-time claim, so two senders cannot both decide it
(one settles, the other finds nothing to send), and a run that is sent keeps its RQ id: the id is one per slot
whatever the trigger (:func:`hookscheduler.broker.keys.scheduled_job_id`), so a send before the change and one
after it are still stored once (I4). Only on-time claims (trigger ``schedule``, no reason) are concerned: runs
claimed ahead are not late before their slot plus the grace, catch-up and backfill runs are late by design, and
a run the sweep put back for a re-send (it has a reason) was sent in time once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import redis

from ..context import SiteContext
from ..states import CatchUp, LedgerStatus, Trigger
from ..store import Store, store_for
from ..store.base import LateClaim
from ..store.models import utcnow
from ..worker import marks
from . import send
from ._faults import failpoint
from .decide import JobState, summarize
from .rows import FIX_HINT, report_once

log = logging.getLogger(__name__)

class SendOutcome(NamedTuple):
    """A send's outcome: the RQ ids sent and marked sent, and the Redis error that stopped it, if one did
    (``"<Type>: <message>"``; the runs not sent stay in the outbox)."""

    ids: list[str]
    error: str | None


def send_claimed(ctx: SiteContext, conn: redis.Redis, runs: list[send.Run]) -> SendOutcome:
    """Send committed runs and mark them sent; on a Redis error they stay in the outbox for the next pass."""
    if not runs:
        return SendOutcome([], None)
    try:
        observe_epoch(conn, ctx.bench.bench_id)
        try:
            sent = send.send_runs(conn, ctx.bench.bench_id, runs, **ctx.site.settings.rq_ttls)
        except (ValueError, TypeError):  # one run RQ refuses (a timeout of 0 set with SQL) must not hold the rest
            sent = _send_one_by_one(ctx, conn, runs)
        failpoint("after_send")  # in Redis, not marked sent: a re-send must not double it
    except redis.exceptions.RedisError as exc:
        error = f"{type(exc).__name__}: {exc}"
        # reported by the caller (the loop logs an outage once); here it is only detail
        log.debug(
            "site %s: could not send %d run(s) to Redis (%s); they stay in the outbox", ctx.name, len(runs), error
        )
        return SendOutcome([], error)
    record_sent(ctx, sent)
    return SendOutcome(sent.ids, None)


@dataclass(frozen=True)
class Batched:
    """One site's part of :func:`send_many`: what its pass sent, the Redis error that stopped it, and what the
    caller still has to mark sent in the site's database (:func:`record_sent`; None: nothing, or done)."""

    outcome: SendOutcome
    to_record: send.Sent | None = None


def send_many(conn: redis.Redis, items: list[tuple[SiteContext, list[send.Run]]]) -> list[Batched]:
    """Send several sites' committed runs (all on ``conn``) in one round trip, where :func:`send_claimed` would
    make one per site; returns each site's part, in order. The caller marks each site's runs sent in its own
    database (:func:`record_sent`), as :func:`send_claimed` does: sending a run twice stores it once (I4), so a
    failure between the send and the mark costs a re-send and nothing else. A run RQ refuses falls back to one
    site at a time; a Redis error leaves every run in its outbox (I3)."""
    groups: dict[tuple[str, int, int], list[int]] = {}
    for i, (ctx, _) in enumerate(items):
        settings = ctx.site.settings
        groups.setdefault((ctx.bench.bench_id, settings.rq_results_ttl, settings.rq_job_failure_ttl), []).append(i)
    out: dict[int, Batched] = {}
    for (bench_id, result_ttl, failure_ttl), members in groups.items():
        runs = [run for i in members for run in items[i][1]]
        try:
            observe_epoch(conn, bench_id)
            try:
                sent = send.send_runs(conn, bench_id, runs, result_ttl=result_ttl, failure_ttl=failure_ttl)
            except (ValueError, TypeError):  # a run RQ refuses: each site alone, as its own pass would
                for i in members:
                    out[i] = Batched(send_claimed(items[i][0], conn, items[i][1]))
                continue
            failpoint("after_send")
        except redis.exceptions.RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.debug("could not send %d run(s) of %d site(s) to Redis (%s); they stay in the outboxes",
                      len(runs), len(members), error)
            for i in members:
                out[i] = Batched(SendOutcome([], error))
            continue
        at = 0
        for i in members:
            n = len(items[i][1])
            part = send.Sent(sent.ids[at:at + n], sent.ats[at:at + n])
            at += n
            out[i] = Batched(SendOutcome(part.ids, None), part)
    return [out[i] for i in range(len(items))]


#: Seconds between two checks that Redis's epoch key is set before a send (a send only needs it to exist with a
#: moment before its runs; a restart in between makes their loss read as unknown, the safe side).
EPOCH_EVERY = 10.0
_epoch_checked: dict[str, float] = {}


def observe_epoch(conn: redis.Redis, bench_id: str, fresh_for: float = 0.0) -> None:
    """Make sure the epoch (:func:`hookscheduler.worker.marks.redis_epoch`) predates the runs about to be sent:
    a run lost later must be judged against the Redis it was sent to. Checked at most every
    :data:`EPOCH_EVERY` seconds, before a send; the loop also calls it when it holds runs claimed ahead
    (:meth:`hookscheduler.schedule.loop.Scheduler._step_ahead`), so that the release at the slot finds it fresh
    and does not pay this round trip between the slot and the send. Either way it runs before the runs reach
    Redis, which is all the guarantee needs. ``fresh_for``: check now unless the last check stays fresh that many
    seconds more (the real time to the release)."""
    now = time.monotonic()
    if now + fresh_for - _epoch_checked.get(bench_id, -EPOCH_EVERY) < EPOCH_EVERY:
        return
    marks.redis_epoch(conn, bench_id)
    _epoch_checked[bench_id] = now


def _send_one_by_one(ctx: SiteContext, conn: redis.Redis, runs: list[send.Run]) -> send.Sent:
    """Send each run alone; a run RQ refuses is recorded failed with why (it would block the outbox for ever)."""
    ids: list[str] = []
    ats: list[datetime] = []
    store = store_for(ctx.database())
    for run in runs:
        try:
            sent = send.send_runs(conn, ctx.bench.bench_id, [run], **ctx.site.settings.rq_ttls)
        except (ValueError, TypeError) as exc:
            report_once(ctx.name, run.job_name, f"its run was refused by RQ: {exc}")
            with store.transaction():
                store.fail_unsendable(run.rq_job_id, f"not sent: RQ refused it ({exc}); {FIX_HINT}", utcnow())
            continue
        ids += sent.ids
        ats += sent.ats
    return send.Sent(ids, ats)


def record_sent(ctx: SiteContext, sent: send.Sent) -> None:
    """Close the outbox rows of runs now in RQ, each stamped with the moment Redis accepted it."""
    if sent.ids:
        store_for(ctx.database()).mark_sent(sent.ids, sent.ats)


def resend_outbox(ctx: SiteContext, conn: redis.Redis, now: datetime, limit: int = 5000,
                  decided_at: datetime | None = None) -> SendOutcome:
    """Send every claimed-but-unsent run whose slot has come at ``now`` (a previous sender died, or Redis was
    down, or lost it). I10: a run claimed ahead of its slot is left alone before it, whoever claimed it. I11: an
    on-time claim found past the lateness grace is first decided by its job's catch-up policy
    (:func:`settle_late`; ``decided_at``: the instant the caller's pass decides about, default ``now``)."""
    store = store_for(ctx.database())
    runs = store.outbox(ctx.name, limit, now)
    return send_claimed(ctx, conn, settle_late(ctx, store, runs, now, decided_at or now))


def late_after(ctx: SiteContext) -> float:
    """Seconds after its slot at which a run is late: the grace within which a pass serves a slot on time (one
    tick interval, at least a minute; :func:`hookscheduler.schedule.claim.grace_seconds`)."""
    return float(max(ctx.site.tick_interval, 60))


def settle_late(ctx: SiteContext, store: Store, runs: list[send.Run], now: datetime,
                decided_at: datetime) -> list[send.Run]:
    """I11: the outbox's ``runs`` to send at ``now``, once the on-time claims among them found late are decided
    by their job's catch-up policy (:func:`late_verdict`): those settled ``missed`` are left out, those sent late
    go as ``catch-up`` runs. Costs nothing when no run is late (the usual outbox: a holder killed a moment ago,
    a Redis blip)."""
    grace = late_after(ctx)
    late = [r.rq_job_id for r in runs
            if r.trigger == Trigger.SCHEDULE and (now - r.scheduled_for).total_seconds() > grace]
    if not late:
        return runs
    out: dict[str, send.Run | None] = {}
    by_id = {r.rq_job_id: r for r in runs}
    for claim in store.late_claims(late):
        run = by_id[claim.rq_job_id]
        status, trigger, reason = late_verdict(claim, run.scheduled_for, decided_at,
                                               _due_count(ctx, claim, decided_at))
        # One transaction per row: holding the first row's lock while waiting for the next could deadlock with a
        # sender whose clock does not find them late, marking the same rows sent in another order (PostgreSQL).
        with store.transaction():
            settled = store.settle_late(claim.rq_job_id, status, trigger, reason, now)
        if not settled:
            out[claim.rq_job_id] = None  # another sender decided it first: its way stands
            continue
        out[claim.rq_job_id] = replace(run, trigger=trigger) if status == LedgerStatus.QUEUED else None
        log.info("site %s: job %s: the run claimed for %s was never sent; %s", ctx.name, run.job_name,
                 run.scheduled_for.isoformat(sep=" "), reason)
    return [sent for sent in (out.get(r.rq_job_id, r) for r in runs) if sent is not None]


def _due_count(ctx: SiteContext, claim: LateClaim, decided_at: datetime) -> int:
    """How many of the job's slots are due at ``decided_at`` (all later than the late claim's): what
    ``catchup = all`` runs before this one, up to its limit. 0 when none is, or when the row cannot say (a value
    written by hand, which the pass reports itself)."""
    if claim.catchup != CatchUp.ALL or claim.next_execution is None or claim.next_execution > decided_at:
        return 0
    job = JobState(0, "", claim.frequency, claim.cron_format, claim.next_execution, catchup=claim.catchup,
                   catchup_limit=claim.catchup_limit)
    try:
        return summarize(job, decided_at, ctx.calendar).count
    except Exception:  # a row the pass cannot use: it reports it; here the run is only not held back
        return 0


def late_verdict(claim: LateClaim, slot: datetime, decided_at: datetime, due: int = 0) -> tuple[str, str, str]:
    """What becomes of an on-time claim of ``slot`` found unsent past the grace (I11): ``(status, trigger,
    reason)``, by its job's catch-up policy, as :func:`hookscheduler.schedule.decide.decide` treats a slot no
    pass served in time. ``decided_at``: the instant the pass decides about (a job due then runs a catch-up or
    an on-time slot that covers this one); ``due``: how many of the job's (later) slots are due then."""
    claimed = f"claimed at {claim.claimed_at:%Y-%m-%d %H:%M:%S} UTC"
    why = "the scheduler stopped (or lost Redis) before sending it"
    if claim.catchup == CatchUp.SKIP:
        return LedgerStatus.MISSED, Trigger.SCHEDULE, f"{claimed} but never sent: {why}; catchup=skip, so not run"
    if claim.catchup == CatchUp.ONCE and claim.next_execution is not None and claim.next_execution <= decided_at:
        return (LedgerStatus.MISSED, Trigger.SCHEDULE, f"{claimed} but never sent: {why}; catchup=once, so the "
                                                       "job's next run (the catch-up of the slots since) covers it")
    if claim.catchup == CatchUp.ALL and due >= claim.catchup_limit:
        return (LedgerStatus.MISSED, Trigger.SCHEDULE, f"{claimed} but never sent: {why}; beyond "
                                                       f"catchup_limit={claim.catchup_limit} (the job's {due} slot(s) "
                                                       "due since come first), so not run")
    return (LedgerStatus.QUEUED, Trigger.CATCH_UP,
            f"sent late: {claimed}, {why} in time; catchup={claim.catchup}, so run late, once")
