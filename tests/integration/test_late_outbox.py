"""I11: a run claimed on time whose scheduler stopped before sending it, found unsent past the lateness grace, is
decided by its job's catch-up policy (schedule/outbox.py settle_late), as a slot no pass served in time is: not
sent as an on-time run however late, and not blocking the job's on-time slot. Runs claimed ahead of their slot
are left alone until it. Real Redis, both databases; every instant is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.broker.keys import scheduled_job_id
from hookscheduler.schedule.ahead import MIN_WINDOW
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.outbox import resend_outbox, send_claimed
from hookscheduler.schedule.reconcile import RESENT
from hookscheduler.store import store_for
from tests.helpers import drain, read_out
from tests.integration.opcli_support import migrated, run
from tests.integration.test_tick import logs, queued_ids

T0 = datetime(2026, 1, 5, 10, 7)
SLOT = datetime(2026, 1, 5, 11, 0)
CLAIMED = SLOT + timedelta(seconds=1)  # the pass that claimed 11:00, then its process died before the send
BACK = datetime(2026, 1, 5, 14, 0, 30)  # the scheduler is back: 14:00 is on time, 12:00 and 13:00 were missed


def _site(bench_factory, db_kind, **policy):
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.ok", **policy}]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    return bench, ctx, conn


def _crash_after_commit(ctx, conn, now=CLAIMED, **kw):
    """A pass that commits its claim and ledger row, then dies before sending: an outbox row is left."""
    held: list = []
    run_pass(ctx, conn, now=now, defer=held.extend, **kw)
    assert len(held) == 1
    return held[0]


def _id(ctx, slot=SLOT):
    return scheduled_job_id(ctx.bench.bench_id, ctx.name, "app1.tasks.ok", slot)


def test_catchup_skip_a_late_claim_is_missed_and_the_on_time_slot_runs(bench_factory, db_kind):
    bench, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    _crash_after_commit(ctx, conn)
    r = run_pass(ctx, conn, now=BACK)
    assert (r.fired, r.skipped) == (1, 0)
    rows = {row.scheduled_for: row for row in logs()}
    late = rows[SLOT]
    assert (late.status, late.trigger, late.enqueued_at) == ("missed", "schedule", None)
    assert late.reason == ("claimed at 2026-01-05 11:00:01 UTC but never sent: the scheduler stopped (or lost "
                           "Redis) before sending it; catchup=skip, so not run")
    outage = rows[datetime(2026, 1, 5, 13)]
    assert (outage.status, outage.slots, outage.first_slot) == ("missed", 2, datetime(2026, 1, 5, 12))
    assert "catchup=skip, so not run" in outage.reason
    on_time = rows[datetime(2026, 1, 5, 14)]
    assert (on_time.status, on_time.trigger, on_time.reason) == ("queued", "schedule", None)
    assert queued_ids(ctx) == [_id(ctx, datetime(2026, 1, 5, 14))]  # the late run never reached Redis

    # what an operator reads
    x = run(bench, "jobs", "explain", "app1.tasks.ok", "--at", "2026-01-05T11:00", "--format", "json").json()
    assert x["verdict"].startswith("did not run: missed: claimed at 2026-01-05 11:00:01 UTC but never sent")
    [g] = run(bench, "jobs", "missed", "--format", "json").json()
    assert (g["missed_slots"], g["skipped_slots"], g["caught_up_slots"]) == (3, 0, 0)


def test_catchup_once_a_late_claim_is_covered_by_the_one_catch_up_run(bench_factory, db_kind):
    bench, ctx, conn = _site(bench_factory, db_kind)  # catchup=once, the default
    _crash_after_commit(ctx, conn)
    r = run_pass(ctx, conn, now=BACK)
    assert (r.fired, r.skipped) == (1, 0)
    late, catch_up = logs()
    assert (late.scheduled_for, late.status) == (SLOT, "missed")
    assert late.reason.endswith("catchup=once, so the job's next run (the catch-up of the slots since) covers it")
    assert (catch_up.trigger, catch_up.status, catch_up.slots) == ("catch-up", "queued", 3)
    assert (catch_up.first_slot, catch_up.last_slot) == (datetime(2026, 1, 5, 12), datetime(2026, 1, 5, 14))
    assert queued_ids(ctx) == [catch_up.rq_job_id]  # exactly one run for the whole stretch
    [g] = run(bench, "jobs", "missed", "--format", "json").json()
    assert (g["missed_slots"], g["skipped_slots"], g["caught_up_runs"]) == (1, 0, 1)


def test_catchup_once_a_late_claim_with_no_slot_due_since_is_the_catch_up_run(bench_factory, db_kind):
    bench, ctx, conn = _site(bench_factory, db_kind)
    _crash_after_commit(ctx, conn)
    r = run_pass(ctx, conn, now=SLOT + timedelta(minutes=5))  # 12:00 not due yet: this run is the catch-up
    assert r.resent == 1
    [row] = logs()
    assert (row.status, row.trigger, row.rq_job_id) == ("queued", "catch-up", _id(ctx))  # the id of its slot
    assert row.enqueued_at is not None
    assert row.reason.startswith("sent late: claimed at 2026-01-05 11:00:01 UTC, the scheduler stopped")
    assert row.reason.endswith("catchup=once, so run late, once")
    assert queued_ids(ctx) == [_id(ctx)]
    x = run(bench, "jobs", "explain", "app1.tasks.ok", "--at", "2026-01-05T11:00", "--format", "json").json()
    assert x["verdict"].startswith("ran late: one catch-up run at 2026-01-05 11:00:00 UTC")
    [g] = run(bench, "jobs", "missed", "--format", "json").json()
    assert (g["missed_slots"], g["caught_up_slots"], g["caught_up_runs"]) == (0, 1, 1)


def test_catchup_all_a_late_claim_is_sent_as_a_catch_up_run_once(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="all", overlap="allow")
    _crash_after_commit(ctx, conn)
    r = run_pass(ctx, conn, now=BACK)
    assert r.resent == 1 and r.fired == 3
    rows = {row.scheduled_for: row for row in logs()}
    late = rows[SLOT]
    assert (late.status, late.trigger, late.rq_job_id) == ("queued", "catch-up", _id(ctx))
    assert late.reason.startswith("sent late: ") and late.reason.endswith("catchup=all, so run late, once")
    assert [rows[datetime(2026, 1, 5, h)].trigger for h in (12, 13, 14)] == ["catch-up", "catch-up", "schedule"]
    assert sorted(queued_ids(ctx)) == sorted(_id(ctx, datetime(2026, 1, 5, h)) for h in (11, 12, 13, 14))
    # a second sender at the same moment finds nothing left to decide or send
    assert resend_outbox(ctx, conn, BACK).ids == []
    assert len(queued_ids(ctx)) == 4


def test_catchup_all_a_late_claim_beyond_the_limit_is_missed(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="all", catchup_limit=3, overlap="allow")
    _crash_after_commit(ctx, conn)
    r = run_pass(ctx, conn, now=BACK)  # 12:00, 13:00 and 14:00 fill the limit: they run, 11:00 does not
    assert (r.resent, r.fired) == (0, 3)
    rows = {row.scheduled_for: row for row in logs()}
    assert rows[SLOT].status == "missed"
    assert rows[SLOT].reason.endswith("beyond catchup_limit=3 (the job's 3 slot(s) due since come first), so not run")
    assert [rows[datetime(2026, 1, 5, h)].status for h in (12, 13, 14)] == ["queued"] * 3
    assert sorted(queued_ids(ctx)) == sorted(_id(ctx, datetime(2026, 1, 5, h)) for h in (12, 13, 14))


def test_two_senders_of_a_late_claim_decide_it_once(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    _crash_after_commit(ctx, conn)
    assert resend_outbox(ctx, conn, BACK).ids == []  # settled missed, not sent
    assert resend_outbox(ctx, conn, BACK).ids == []
    [row] = logs()
    assert row.status == "missed" and queued_ids(ctx) == []


def test_a_claimer_that_sends_after_another_sender_settled_it_missed_does_not_run_it(bench_factory, db_kind):
    bench, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    held = _crash_after_commit(ctx, conn)  # the claimer stalls between its commit and its send ...
    assert resend_outbox(ctx, conn, BACK).ids == []  # ... another sender finds it late: missed
    send_claimed(ctx, conn, [held])  # the claimer wakes and sends it: RQ has it
    assert queued_ids(ctx) == [_id(ctx)]
    drain(ctx.bench.bench_id, conn)
    assert read_out(bench) == []  # the worker's start compare-and-set refuses a row that is not queued (I5)
    [row] = logs()
    assert row.status == "missed"


def test_a_claim_within_the_grace_is_sent_as_claimed(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    _crash_after_commit(ctx, conn)
    assert resend_outbox(ctx, conn, SLOT + timedelta(seconds=60)).ids == [_id(ctx)]  # the grace: on time
    [row] = logs()
    assert (row.status, row.trigger, row.reason) == ("queued", "schedule", None)
    assert row.enqueued_at is not None


def test_a_run_claimed_ahead_is_held_until_its_slot_and_sent_on_time(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    before = SLOT - timedelta(seconds=MIN_WINDOW / 2)
    _crash_after_commit(ctx, conn, now=SLOT, ahead_of=before)  # claimed ahead, its holder died before the slot
    assert resend_outbox(ctx, conn, before).ids == []  # I10: not before its slot
    r = run_pass(ctx, conn, now=SLOT + timedelta(seconds=1))  # the owed wake, a moment after the slot
    assert r.resent == 1
    [row] = logs()
    assert (row.status, row.trigger, row.reason) == ("queued", "schedule", None)
    assert queued_ids(ctx) == [_id(ctx)]


def test_a_run_the_sweep_put_back_for_a_resend_is_resent_however_late(bench_factory, db_kind):
    _, ctx, conn = _site(bench_factory, db_kind, catchup="skip")
    run_pass(ctx, conn, now=CLAIMED)
    [row] = logs()
    store = store_for(ctx.database())
    with store.transaction():  # Redis lost it before it started (I6): back in the outbox, with the reason
        store.mark_for_resend(row.id, BACK, RESENT)
    conn.delete(*conn.keys(f"*{_id(ctx)}*"))
    assert resend_outbox(ctx, conn, BACK).ids == [_id(ctx)]
    [row] = logs()
    assert (row.status, row.trigger, row.reason) == ("queued", "schedule", RESENT)
