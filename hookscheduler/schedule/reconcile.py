"""Active runs against RQ: *settle* the ones that are over, abandoned or lost, and *reconcile* a whole site.

A run is active while its ledger row says ``queued`` or ``started``. A pass asks about the active runs of its
due ``overlap="skip"`` jobs (:func:`active_runs`: is the previous run still going?); the sweep asks about every
active run of the site (:func:`reconcile_active`), so a monthly job's dead run does not read ``started`` for a
month. Each is judged against RQ (:mod:`.judge`, pure) and the verdict written (:func:`settle`).

A run RQ lost before it started is put back in the outbox and sent again, unless a work horse left its start
mark (:mod:`hookscheduler.worker.marks`): then it ran, or runs, without the ledger knowing, and it is not run a
second time (I6 of :mod:`.claim`); a refused second delivery's outcome is not the run's (I7). The sweep also
puts orphans back on their queue (:mod:`.orphans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import redis

from ..broker.connection import reply_text
from ..broker.keys import redis_epoch_key, refused_mark_key, started_mark_key
from ..context import SiteContext
from ..states import LedgerStatus, Overlap
from ..store import Store, store_for
from ..store.base import DueRow
from ..store.models import utcnow
from ..worker import marks
from .decide import is_stopped
from .judge import RQ_OVER, Verdict, judge
from .orphans import ORPHAN_GRACE, requeue_orphans
from .outbox import resend_outbox

QUEUED = LedgerStatus.QUEUED
LOST_UNKNOWN = (
    "lost from Redis, which restarted after it was sent: a worker may have started it without "
    "recording it, so it is not sent again (outcome unknown)"
)
UNRECORDED = "started by a worker that could not record it, then lost from Redis: outcome unknown, not run again"
RESENT = "re-sent: Redis lost the job before it started"
REQUEUED = "re-queued: a worker took it off the queue and stopped before starting it"


class Run(Protocol):
    """What :func:`settle` reads of an active ledger row (a :class:`~hookscheduler.store.base.ActiveRun` or a
    ``ScheduledJobLog``)."""

    @property
    def id(self) -> int: ...
    @property
    def job_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def rq_job_id(self) -> str | None: ...
    @property
    def enqueued_at(self) -> datetime | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...


def active_runs(
    store: Store, rows: Sequence[DueRow], conn: redis.Redis, now: datetime, bench_id: str | None = None,
    decided_at: datetime | None = None,
) -> dict[int, list[Verdict]]:
    """For due rows with ``overlap='skip'``: their active runs, judged against RQ (at ``now``) and settled.
    ``decided_at``: the instant the pass decides about (default ``now``); a pass ahead of its slot decides
    the slot, so a job whose stop ends between ``now`` and the slot runs at the slot and is checked for overlap."""
    at = decided_at or now
    ids = [r.id for r in rows if r.overlap == Overlap.SKIP and not is_stopped(r.stopped, r.stopped_until, at)]
    if not ids:
        return {}
    return settle(store, store.active_runs_of(ids), conn, now, {r.id: r.timeout for r in rows}, bench_id)


def settle(
    store: Store,
    active: Sequence[Run],
    conn: redis.Redis,
    now: datetime,
    timeouts: dict[int, int],
    bench_id: str | None = None,
) -> dict[int, list[Verdict]]:
    """Judge each active ledger row against RQ and write the outcome of the ones that are over. With
    ``bench_id``, a row RQ lost is re-sent only if no worker ever started it (:mod:`hookscheduler.worker.marks`)."""
    if not active:
        return {}
    statuses, alive, began, epoch, refused = _ask_redis(conn, active, bench_id)
    out: dict[int, list[Verdict]] = {}
    for row in active:
        ref = refused.get(row.rq_job_id) if row.rq_job_id else None
        verdict = judge(
            db_status=row.status,
            enqueued_at=row.enqueued_at,
            started_at=row.started_at,
            rq_status=statuses.get(row.rq_job_id) if row.rq_job_id else None,
            timeout=timeouts.get(row.job_id, 300),
            now=now,
            rq_job_id=row.rq_job_id,
            refused_at=ref.at if ref else None,
            outcome=ref.outcome if ref else None,
            alive=alive.get(str(row.rq_job_id)) if row.rq_job_id else None,
        )
        if verdict.resend and row.rq_job_id in began:  # it ran (or runs) without the ledger knowing: not again
            verdict = Verdict(False, LedgerStatus.FAILED, UNRECORDED)
        elif verdict.resend and row.enqueued_at is not None and row.enqueued_at < epoch:
            # sent to a Redis that restarted since: its start mark may be lost with the job (I5)
            verdict = Verdict(False, LedgerStatus.FAILED, LOST_UNKNOWN)
        out.setdefault(row.job_id, []).append(verdict)
        if verdict.resend:
            store.mark_for_resend(row.id, now, RESENT)
        elif not verdict.active and verdict.status is not None:
            store.settle_run(row.id, verdict.status, verdict.reason, now, finish=row.finished_at is None)
    return out


def _ask_redis(conn: redis.Redis, active: Sequence[Run], bench_id: str | None) -> tuple[
        dict[str, str | None], dict[str, bool | None], set[str], datetime, dict[str, marks.Refusal]]:
    """What :func:`settle` needs of Redis, in two round trips: each run's RQ status and worker (one ``HMGET``
    each), then, in one pipeline, whether those workers are alive (a worker's hash that records its death, which
    RQ keeps a minute after a worker stopped, is a dead worker, as RQ itself judges it), the start marks of the
    runs RQ lost and the Redis epoch (only when some are lost), and the refusal marks of the runs RQ says are
    over."""
    ids = [str(a.rq_job_id) for a in active if a.rq_job_id]
    with conn.pipeline(transaction=False) as pipe:
        for jid in ids:
            pipe.hmget(f"rq:job:{jid}", "status", "worker_name")
        replies = pipe.execute()
    statuses: dict[str, str | None] = {}
    workers: dict[str, str | None] = {}
    for jid, (status, worker) in zip(ids, replies, strict=True):
        statuses[jid] = reply_text(status) if status is not None else None
        workers[jid] = reply_text(worker) if worker is not None else None
    started = [jid for jid in ids if statuses[jid] == "started"]
    known = [jid for jid in started if workers[jid]]
    gone = [str(a.rq_job_id) for a in active if a.rq_job_id and a.status == QUEUED and a.enqueued_at is not None
            and statuses.get(a.rq_job_id) is None] if bench_id else []
    # RQ says "over" but the ledger does not: was that a refused second delivery? (its outcome is not the run's)
    over = [jid for jid in ids if statuses[jid] in RQ_OVER] if bench_id else []
    alive: dict[str, bool | None] = {jid: None for jid in started}
    began: set[str] = set()
    epoch = datetime.min
    refused: dict[str, marks.Refusal] = {}
    if not (known or gone or over):
        return statuses, alive, began, epoch, refused
    with conn.pipeline(transaction=False) as pipe:
        for jid in known:  # alive as RQ itself judges a registration: its hash, without a recorded death
            pipe.exists(f"rq:worker:{workers[jid]}")
            pipe.hexists(f"rq:worker:{workers[jid]}", "death")
        if bench_id and gone:
            for jid in gone:
                pipe.exists(started_mark_key(bench_id, jid))
            pipe.info("server")
            pipe.get(redis_epoch_key(bench_id))
        if bench_id and over:
            for jid in over:
                pipe.get(refused_mark_key(bench_id, jid))
                pipe.get(started_mark_key(bench_id, jid))
        answers = iter(pipe.execute())
    for jid in known:
        exists, died = next(answers), next(answers)
        alive[jid] = bool(exists) and not died
    if bench_id and gone:
        began = {jid for jid in gone if next(answers)}
        info, raw = next(answers), next(answers)
        epoch = marks.epoch_from(conn, bench_id, info, raw)
    if bench_id and over:
        for jid in over:
            found = marks.refusal_from(next(answers), next(answers))
            if found is not None:
                refused[jid] = found
    return statuses, alive, began, epoch, refused


def reconcile_active(ctx: SiteContext, conn: redis.Redis, now: datetime | None = None, limit: int = 5000) -> int:
    """Settle every active run of the site, whether or not its job is due, and put its orphans back on their
    queue. Returns runs settled (or put back in the outbox)."""
    now = now or utcnow()
    store = store_for(ctx.database())
    with store.transaction():
        pairs = store.active_runs(limit)
        active = [run for run, _ in pairs]
        verdicts = settle(store, active, conn, now, {run.job_id: timeout for run, timeout in pairs}, ctx.bench.bench_id)
    settled = sum(1 for vs in verdicts.values() for v in vs if not v.active or v.resend)
    if any(v.resend for vs in verdicts.values() for v in vs):
        resend_outbox(ctx, conn, now)
    _requeue_orphans(store, conn, active, now, ctx.bench.bench_id)
    return settled


def _requeue_orphans(store: Store, conn: redis.Redis, active: Sequence[Run], now: datetime, bench_id: str) -> None:
    """Runs a worker took off the queue and died with (or lost Redis) before starting: see :mod:`.orphans`."""
    grace = timedelta(seconds=ORPHAN_GRACE)
    candidates = [
        str(a.rq_job_id)
        for a in active
        if a.status == QUEUED and a.rq_job_id and a.enqueued_at is not None and now - a.enqueued_at > grace
    ]
    pushed = requeue_orphans(conn, candidates, bench_id)
    if pushed:
        with store.transaction():
            store.note_requeued(pushed, now, REQUEUED)
