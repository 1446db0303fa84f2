"""The pass: one site's due jobs at one ``now``, and the exactly-once protocol that serves each slot once.

A pass is a probe, then batches; each batch is one transaction: select due rows, decide (pure,
:mod:`.decide`), *claim*, *record*; after its commit the batch's runs are *sent* (:mod:`.outbox`). The
invariants that make a slot fire exactly once are numbered as in ``docs/exactly-once.md``, and each is written
beside the code that keeps it:

* **I1**, only one process can claim a slot: :func:`claim`;
* **I2**, a claim and its ledger rows commit together: :func:`run_pass`, :func:`record`;
* **I3**, nothing is sent before the commit, and the outbox is always emptied: :func:`run_pass`, :mod:`.outbox`;
* **I4**, sending a run twice stores it once: :func:`record` (the job id), :mod:`.send`;
* **I5**, one delivery of a run may start it, ever: :mod:`hookscheduler.worker.ledger`, :mod:`.reconcile`;
* **I6** and **I7**, lost and refused deliveries: :mod:`.reconcile`;
* **I8**, every slot has a ledger row (``queued``, ``missed`` or ``skipped``, with the reason), and the next
  slot is always in the future: :func:`record`, :mod:`.decide`;
* **I9**, a slot the ledger already stands for is never decided again, whatever moved ``next_execution``:
  :func:`undecided_from`;
* **I10**, nothing is sent before its slot: a run claimed ahead of its slot waits in the outbox, and the outbox
  only sends the runs whose ``scheduled_for`` has come on the sender's clock: :func:`run_pass` (``ahead_of``),
  :mod:`.outbox` (:func:`.outbox.resend_outbox`), the store's probe and ``outbox()``. The ``schedule`` loop
  claims a slot ahead of it and holds its runs until it (:mod:`.ahead`); a process killed while holding them
  leaves committed outbox rows that any pass sends at or after the slot, never before (docs/exactly-once.md,
  I10, has the failure cases: a kill, Redis down at the release, SIGTERM, the clock going back).
* **I11**, a claimed run found unsent past the lateness grace is decided by its job's catch-up policy, as a
  slot no pass served in time: :func:`.outbox.settle_late`.

While the site's scheduler is paused, disabled or in maintenance a pass decides nothing: it records the stretch
of inactivity and holds the due slots, which the first active pass decides with each job's catch-up policy
(:mod:`.inactivity`, :mod:`.decide`).

The statements themselves are the store's (:mod:`hookscheduler.store`): this module says what they must do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import redis

from ..broker.keys import scheduled_job_id
from ..context import SiteContext
from ..exceptions import SchemaError
from ..states import LedgerStatus
from ..store import Store, store_for
from ..store import database as dbmod
from ..store.base import ClaimRequest, DueRow, LatestRow, LedgerValues
from ..store.models import utcnow
from ..timing.calendar import SiteCalendar, next_slot
from ..timing.frequencies import fires_within_hour
from . import send
from ._faults import failpoint
from .decide import Decision, Entry, JobState, Slots, Stretch, decide, stop_over
from .inactivity import (
    parse_stamp,
    read_switches,
    recent_stretches,
    settle_pause_end,
    track_inactivity,
)
from .judge import Verdict
from .outbox import late_after, resend_outbox, send_claimed
from .reconcile import active_runs
from .rows import report_once, usable

log = logging.getLogger(__name__)
QUEUED, SKIPPED = LedgerStatus.QUEUED, LedgerStatus.SKIPPED


@dataclass
class PassResult:
    """What one pass did, for logs, tests and benchmarks."""

    site: str
    now: datetime
    due: int = 0
    fired: int = 0
    skipped: int = 0
    missed: int = 0
    lost_claims: int = 0  # due rows another process claimed first
    resent: int = 0
    sent_ids: list[str] = field(default_factory=list)
    send_error: str | None = None
    inactive: str | None = None
    resume_at: datetime | None = None  # inactive: when a pause with an end ends by itself
    bad: int = 0  # due rows skipped because they cannot be acted on (schedule/rows.py)
    #: The probe's answers, for the step: the earliest next slot when the pass changed nothing
    #: (``earliest_known``; else the pass moved slots: ask again), whether runs were active and whether some
    #: row had no next slot.
    earliest: datetime | None = None
    earliest_known: bool = False
    #: the slot of a run claimed ahead and not sent yet, still to come (I10): owed then, by its holder or, if
    #: the holder is gone, by any pass (the loop wakes for it a grace after the slot: :func:`.ahead.owed_wake`)
    owed: datetime | None = None
    active: bool = True
    unslotted: bool = True

    def add_sent(self, sent_ids: list[str], error: str | None) -> int:
        """Count a send's outcome; returns how many runs it sent."""
        self.sent_ids += sent_ids
        if error:
            self.send_error = error
        return len(sent_ids)


def grace_seconds(ctx: SiteContext) -> float:
    """How late a slot may be served and still count as on time (one tick interval, at least a minute); a
    claimed run unsent past it is late too (:func:`.outbox.late_after`, I11)."""
    return late_after(ctx)


def run_pass(ctx: SiteContext, conn: redis.Redis, now: datetime | None = None,
             batch: int | None = None, defer: Callable[[list[send.Run]], None] | None = None,
             ahead_of: datetime | None = None) -> PassResult:
    """One pass over the site's due rows at ``now`` (naive UTC). ``defer``: hand each batch's committed runs
    to it instead of sending them here (the loop sends several sites' runs in one round trip and records the
    outcome on this pass's result): a committed run waits in the outbox either way (I3).

    ``ahead_of``: the pass runs *ahead* of ``now``, a slot still to come, at this earlier instant (the loop's
    claim ahead, :mod:`.ahead`; ``defer`` then holds the runs until the slot). It decides and claims as of the
    slot, but what it sends itself from the outbox and the stamps of its rows are those of ``ahead_of`` (I10:
    nothing is sent before its slot), and it decides nothing if the site is inactive at either instant (the
    pass at the slot then decides, and records the inactivity)."""
    now = now or utcnow()
    clock = ahead_of or now  # the real instant: what may be sent from the outbox (I10), the rows' stamps
    store = store_for(ctx.database())
    result = PassResult(site=ctx.name, now=now)
    # The probe only says whether to go on: a "no" that races with a claim or a commit means the work is done
    # by the next pass (or by the process that made it due); it never decides that a slot is served.
    probe = store.probe()
    # The schema is this hookscheduler's, checked at every pass from the probe's own answer (no statement of
    # its own): a migrate by another version, or a version set by hand, while this process runs, stops the
    # site here, before anything is decided, claimed or sent. The SchemaError says which fix fits (upgrade
    # hookscheduler, or run migrate); the loop reports it once and retries the site with back-off, its
    # reconnect checking the schema again, and serves it again once the schema is its own; other sites go on.
    if probe.schema_version != dbmod.SCHEMA_VERSION:
        raise SchemaError(dbmod.schema_mismatch(probe.schema_version))  # as the reconnect's check words it: one report
    result.active, result.unslotted = probe.active, probe.unslotted
    pause_until = parse_stamp(probe.pause_until)
    switches = read_switches(ctx, probe.enabled or "1", pause_until)  # no state row: enabled
    result.inactive = switches.reason(now)
    if ahead_of is not None:
        result.inactive = result.inactive or switches.reason(ahead_of)
        if result.inactive:
            return result  # decided at the slot, by a pass that also records the stretch of inactivity
    if result.inactive != probe.inactive_since:
        track_inactivity(ctx.database(), result.inactive, probe.inactive_since, now)
    if probe.pause_until and (switches.pause_over(now) or switches.stale_until()):
        settle_pause_end(ctx, probe.pause_until, now)  # the end applies to its own pause only, and only once
    elif result.inactive and switches.until_applies():
        result.resume_at = pause_until
    if not probe.due(now) and not probe.outbox_due(clock):
        # a run claimed ahead and not sent yet (its claimer may be gone) is owed at its slot (I10)
        result.earliest, result.earliest_known, result.owed = probe.earliest, True, probe.outbox_from
        return result  # the common case: one indexed statement, no transaction
    if probe.outbox_due(clock):  # I3: every pass first sends what an earlier sender claimed and did not send
        # I10: only what is due by now; I11: a claim found late is decided by its job's catch-up policy first
        result.resent += result.add_sent(*resend_outbox(ctx, conn, clock, decided_at=now))
    if not probe.due(now) or result.inactive:
        return result  # inactive: the due slots are held; the first active pass decides them (catch-up)
    batch = batch or store.batch
    memo: dict[tuple[str, str, datetime], Slots] = {}
    # read once, and only when a stretch of inactivity may overlap the slots decided (the probe knows): a
    # pause shorter than the grace leaves rows that are not late but slots that passed during it
    stretches: list[Stretch] | None = None
    for _ in range(1000):  # bounded: each batch moves every row it selected past `now`
        with store.transaction():
            selected = store.select_due(now, batch)
            rows = usable(ctx.name, selected)  # a bad row is reported and skipped; it never stops the site
            result.bad += len(selected) - len(rows)
            if not rows:
                break
            result.due += len(rows)
            verdicts = active_runs(store, [r for r in rows if r.has_active], conn, clock, ctx.bench.bench_id,
                                   decided_at=now)  # the overlap of the slot decided (a stop may end before it)
            if stretches is None and probe.stretch_after(rows[0].next_execution):
                stretches = recent_stretches(store, rows[0].next_execution)
            decisions = _decide_each(ctx, rows, now, verdicts, memo, stretches or ())
            failpoint("before_claim")
            plan = ledger_plan(ctx, store, decisions, {r.id: r for r in rows}, clock)
            won = claim(store, decisions, plan.inserts)
            result.lost_claims += len(decisions) - len(won)
            runs = record(store, [d for d in decisions if d.job.id in won], plan, now, result, stamp=clock)
            failpoint("after_claim")  # claimed and recorded, not committed: the rollback must undo both (I2)
        failpoint("after_commit")  # committed, nothing sent: the outbox must send it later (I3)
        if defer is not None and runs:  # ahead of the slot: held until it (I10), in the outbox meanwhile
            defer(runs)
        else:
            result.add_sent(*send_claimed(ctx, conn, runs))
        if any(v.resend for vs in verdicts.values() for v in vs):
            result.resent += result.add_sent(*resend_outbox(ctx, conn, clock, decided_at=now))
        if len(selected) < batch:
            break
    return result


def _decide_each(ctx: SiteContext, rows: Sequence[DueRow], now: datetime, verdicts: dict[int, list[Verdict]],
                 memo: dict[tuple[str, str, datetime], Slots], stretches: Sequence[Stretch]) -> list[Decision]:
    """:func:`.decide.decide` for each row; a row it cannot decide about (a value no check foresaw) is
    reported and left out, like a row :func:`.rows.usable` refused."""
    decisions = []
    calendar, grace = ctx.calendar, grace_seconds(ctx)
    for row in rows:
        job = JobState(row.id, row.name, row.frequency, row.cron_format, row.next_execution, row.stopped,
                       row.catchup, row.catchup_limit, row.overlap, row.stopped_until)
        blocked = next((v.blocking_reason for v in verdicts.get(row.id, ()) if v.active), None)
        try:
            start = undecided_from(ctx, row, calendar)
            if start is None:
                decisions.append(decide(job, now, calendar, grace=grace, blocked=blocked, memo=memo,
                                        stretches=stretches))
            elif start > now:  # nothing left to decide yet: the claim only moves the row past what is decided
                decisions.append(Decision(job, start, ()))
            else:  # decided from the first undecided slot; the claim still compares the stored one (I1)
                d = decide(replace(job, next_execution=start), now, calendar, grace=grace, blocked=blocked,
                           memo=memo, stretches=stretches)
                decisions.append(Decision(job, d.next_execution, d.entries))
        except Exception as exc:
            report_once(ctx.name, row.name, f"{type(exc).__name__}: {exc}")
    return decisions


def undecided_from(ctx: SiteContext, row: DueRow, calendar: SiteCalendar) -> datetime | None:
    """I9, a slot is decided once: None when no ledger row stands for the row's ``next_execution`` (the usual
    answer), else the first slot after the last one the job's ledger rows already stand for, from which the
    pass decides instead (logged: something moved the job's next slot back over decided slots).

    The claim's compare-and-set (I1) keeps two passes from deciding the same slot as long as ``next_execution``
    only moves forward; this keeps a slot from being decided twice even if it moved back (seen once in a
    30-minute PostgreSQL chaos run: four maintenance jobs' 00:31 local slot decided twice, the writer that
    moved them back not identified). The last slot is read in the statement that selects (and on PostgreSQL
    locks) the due rows, and a slot row is only ever written by a pass or a backfill that holds the job's row,
    so no row can be added for these slots between that read and the claim."""
    decided = row.decided
    if not isinstance(decided, datetime) or decided < row.next_execution:
        return None
    start = next_slot(row.frequency, row.cron_format, decided, calendar, anchor=row.next_execution)
    log.warning("site %s: job %s: its next slot %s is already decided (its ledger stands for slots up to %s); "
                "deciding from %s instead, not a second time", ctx.name, row.name, row.next_execution.isoformat(),
                decided.isoformat(), start.isoformat())
    return start


def claim(store: Store, decisions: Sequence[Decision], ledger: Sequence[LedgerValues] = ()) -> set[int]:
    """I1: compare-and-set every decision's row from the slot it served to its next slot; returns the won ids.
    I2: in the same transaction (on PostgreSQL the same statement), ``ledger``'s rows of the won jobs are
    inserted, and only theirs (:func:`ledger_plan` makes them; :func:`record` does the rest).

    Only a process that saw ``next_execution = <served>`` can move it, and the database serialises the writes:
    once one process has moved it, the others' condition no longer matches (PostgreSQL re-checks it after
    waiting for the row lock; SQLite runs writers one at a time). So N scheduler processes cannot both claim a
    slot, and each learns exactly which rows it won (``RETURNING``) and records and sends only those. On
    PostgreSQL due rows are selected ``FOR UPDATE SKIP LOCKED``, so concurrent processes split them instead of
    queueing behind one another; that only decides who *tries*, the compare-and-set still decides who *wins*.
    """
    if not decisions:
        return set()
    requests = [ClaimRequest(d.job.id, d.job.next_execution, d.next_execution) for d in decisions]
    return store.claim_and_record(requests, ledger)


@dataclass
class LedgerPlan:
    """What :func:`record` writes for a batch's decisions, made before the claim: the ledger rows to insert
    (every decided job's; :func:`claim` inserts the won ones'), the runs to send per job, and the ``skipped``
    rows that a job staying stopped extends instead of inserting one."""

    inserts: list[LedgerValues]
    runs: dict[int, list[send.Run]]
    extend: dict[int, LatestRow]


def ledger_plan(ctx: SiteContext, store: Store, decisions: Sequence[Decision], rows: dict[int, DueRow],
                now: datetime) -> LedgerPlan:
    """I8: the ledger rows of ``decisions``, one per slot or stretch of slots decided about. I4: a run's RQ job
    id is a function of (bench, site, job, slot, trigger), so RQ's unique enqueue stores a second send of it
    once."""
    bench_id = ctx.bench.bench_id
    plan = LedgerPlan([], {}, _skips_to_extend(store, decisions))
    for d in decisions:
        row = rows[d.job.id]
        for e in d.entries:
            if e.status == SKIPPED and d.job.id in plan.extend:
                continue
            rq_id = scheduled_job_id(bench_id, ctx.name, row.name, e.scheduled_for, e.trigger) \
                if e.status == QUEUED else None
            plan.inserts.append(_ledger_values(row, e, rq_id, now))
            if rq_id:
                plan.runs.setdefault(d.job.id, []).append(
                    send.Run(rq_id, ctx.name, row.name, row.method, row.queue, row.timeout, e.scheduled_for,
                             e.trigger, fires_within_hour(row.frequency, row.cron_format)))
    return plan


def record(store: Store, decisions: Sequence[Decision], plan: LedgerPlan, now: datetime,
           result: PassResult, stamp: datetime | None = None) -> list[send.Run]:
    """I2 and I8, for the claimed ``decisions`` (their ledger rows are in, by :func:`claim`): extend the skips
    that go on, clear the stops that ended, count; return the runs to send. ``now``: the instant decided
    about; ``stamp``: the rows' ``modified_at`` (default ``now``; earlier for a pass ahead of its slot)."""
    runs: list[send.Run] = []
    for d in decisions:
        for e in d.entries:
            _count(result, e)
            if e.status == SKIPPED and d.job.id in plan.extend:
                store.extend_skip(plan.extend[d.job.id].id, e.slots, e.last_slot or e.scheduled_for, e.scheduled_for,
                                  stamp or now)
        job_runs = plan.runs.get(d.job.id, [])
        result.fired += len(job_runs)
        runs += job_runs
    for d in decisions:  # stops whose --until has come, their slots before it just decided: the flag is cleared
        if d.job.stopped_until is not None and stop_over(d.job.stopped, d.job.stopped_until, now):
            store.end_stop(d.job.id, d.job.stopped_until)
    return runs


def _count(result: PassResult, e: Entry) -> None:
    if e.status == SKIPPED:
        result.skipped += e.slots
    elif e.status == LedgerStatus.MISSED:
        result.missed += e.slots


def _ledger_values(row: DueRow, e: Entry, rq_id: str | None, now: datetime) -> LedgerValues:
    """One ledger row, in :data:`hookscheduler.store.base.LEDGER_COLUMNS` order."""
    return (row.id, row.name, e.scheduled_for, e.trigger, e.status, e.reason, e.slots,
            e.first_slot or e.scheduled_for, e.last_slot or e.scheduled_for, row.queue, rq_id, now, now)


def _skips_to_extend(store: Store, decisions: Sequence[Decision]) -> dict[int, LatestRow]:
    """A job that stays stopped (or a scheduler that stays paused) extends one ``skipped`` row per stretch
    instead of writing a row per slot: the latest row of the job, if it is a skip for the same reason."""
    candidates = {d.job.id: d.entries[0].reason for d in decisions
                  if len(d.entries) == 1 and d.entries[0].status == SKIPPED}
    if not candidates:
        return {}
    latest = store.latest_rows(list(candidates))
    return {jid: lr for jid, lr in latest.items() if lr.status == SKIPPED and lr.reason == candidates[jid]}
