"""Regression tests for what the chaos run (tests/chaos) found, each outside the chaos suite."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import orphan_suspect_key, queue_name, started_mark_key
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.judge import ABANDON_GRACE
from hookscheduler.schedule.orphans import SUSPECT_TTL, requeue_orphans
from hookscheduler.schedule.reconcile import reconcile_active
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from hookscheduler.worker import ledger as runlog
from tests.helpers import drain, read_out
from tests.integration.test_loop import private_redis  # noqa: F401  (a fixture)
from tests.integration.test_tick import logs, queued_ids, setup_site

ELEVEN = datetime(2026, 1, 5, 11, 0)


def test_a_run_a_dead_worker_popped_before_starting_is_requeued_once_and_runs_once(bench_factory, db_kind):
    """A worker on several queues takes a job with BLPOP; killed (or Redis restored from a snapshot) before it
    marks the job started, the job is in no list while RQ still says "queued": it was wedged for ever."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    key = f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}"
    [popped] = [v.decode() for v in [conn.lpop(key)]]  # the worker's BLPOP; then the worker dies
    assert conn.hget(f"rq:job:{popped}", "status") == b"queued" and queued_ids(ctx) == []
    # within the grace a worker may just be between BLPOP and "started": leave it alone
    reconcile_active(ctx, conn, now=utcnow() + timedelta(seconds=10))  # enqueued_at is the send time
    assert queued_ids(ctx) == []
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=5))
    assert queued_ids(ctx) == []  # first sighting: suspect only (a live worker may be slow to mark it started)
    conn.expire(orphan_suspect_key(ctx.bench.bench_id, popped), SUSPECT_TTL - 61)  # ... seen so for 61 real seconds
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=5))
    assert queued_ids(ctx) == [popped]
    [row] = logs()
    assert row.status == "queued" and "re-queued" in row.reason
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=6))  # already back: not pushed twice
    assert queued_ids(ctx) == [popped]
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [r["task"] for r in read_out(ctx.bench.path)] == ["ok"]
    assert ScheduledJobLog.get().status == "complete"


def test_requeue_leaves_listed_started_and_unknown_jobs_alone(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 2
    key = f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}"
    first, second = queued_ids(ctx)
    conn.lmove(key, f"{key}:intermediate")  # RQ's single-queue dequeue: RQ cleans that list up itself
    conn.lrem(key, 0, second)
    conn.hset(f"rq:job:{second}", "status", "started")  # being run
    for jid in (first, second):
        conn.set(orphan_suspect_key(ctx.bench.bench_id, jid), "1", ex=1)  # long suspected
    assert requeue_orphans(conn, [first, second, "no-such-job"], ctx.bench.bench_id) == []
    assert queued_ids(ctx) == []


def _redeliver(ctx, conn, rq_id: str) -> None:
    """RQ delivers the same run again (a re-send, or a re-queue racing a slow worker)."""
    key = f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}"
    conn.hset(f"rq:job:{rq_id}", "status", "queued")
    conn.rpush(key, rq_id)


def _run_without_the_ledger(bench_factory, db_kind, monkeypatch, method: str):
    """One scheduled run of ``method``, fired and then run by a worker that cannot reach the database."""
    ctx = setup_site(bench_factory, {"hourly": [method]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    [rq_id] = queued_ids(ctx)
    with monkeypatch.context() as m:
        m.setenv("HOOKSCHEDULER_DB_URL", "postgresql://postgres@127.0.0.1:1/unreachable")
        drain(ctx.bench.bench_id, conn)
    return ctx, conn, rq_id


def test_a_second_delivery_does_not_run_even_when_the_ledger_cannot_be_written(bench_factory, db_kind, monkeypatch):
    """The worker runs a job whose ledger write fails (Frappe #41245); a second delivery of the same run then
    found no 'started' row to refuse it and ran the slot again (found by the chaos run, with the database
    locked or restarting)."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    [rq_id] = queued_ids(ctx)
    monkeypatch.setenv("HOOKSCHEDULER_DB_URL", "postgresql://postgres@127.0.0.1:1/unreachable")
    drain(ctx.bench.bench_id, conn)  # runs, without the ledger
    _redeliver(ctx, conn, rq_id)
    drain(ctx.bench.bench_id, conn)  # refused: the run already started
    assert [r["task"] for r in read_out(ctx.bench.path)] == ["ok"]
    # the first delivery left its outcome on the start mark (the ledger was down): the row takes it from there
    monkeypatch.delenv("HOOKSCHEDULER_DB_URL")
    ctx.database()
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=5))
    [row] = logs()
    assert row.status == "complete" and "outcome taken from Redis" in row.reason


def test_a_failure_the_ledger_could_not_record_survives_a_refused_second_delivery(bench_factory, db_kind,
                                                                                    monkeypatch):
    ctx, conn, rq_id = _run_without_the_ledger(bench_factory, db_kind, monkeypatch, "app1.tasks.boom")
    # it raised; neither the start nor the failure reached the ledger
    _redeliver(ctx, conn, rq_id)
    drain(ctx.bench.bench_id, conn)  # refused: RQ now calls the job "finished"
    assert conn.hget(f"rq:job:{rq_id}", "status") == b"finished"
    ctx.database()
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=5))
    [row] = logs()
    assert row.status == "failed" and "outcome taken from Redis" in row.reason


def _first_delivery_died(ctx, conn, rq_id: str, *, ledger_start: bool) -> None:
    """A first delivery of ``rq_id`` took the start mark (and, with ``ledger_start``, wrote the ledger's start),
    then its worker was killed before the task ran."""
    conn.set(started_mark_key(ctx.bench.bench_id, rq_id), "1")
    if ledger_start:
        runlog.record_started(ctx.database(), rq_id, "killed-worker", utcnow())


@pytest.mark.parametrize("ledger_start", [False, True], ids=["killed-before-the-ledger-start",
                                                             "killed-after-the-ledger-start"])
def test_a_refused_second_delivery_is_not_read_as_the_runs_outcome(bench_factory, db_kind, ledger_start):
    """Found by the chaos run ("row says complete but never ran"): the first delivery took the start mark and
    died before running the task; a second delivery was rightly refused, and RQ called it "finished" -- which
    the scheduler then wrote to the ledger as the run's outcome. The run never ran: it must end abandoned."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    [rq_id] = queued_ids(ctx)
    _first_delivery_died(ctx, conn, rq_id, ledger_start=ledger_start)
    drain(ctx.bench.bench_id, conn)  # the second delivery: refused
    assert read_out(ctx.bench.path) == []
    assert conn.hget(f"rq:job:{rq_id}", "status") == b"finished"
    ctx.database()
    timeout = ScheduledJobType.get().timeout
    reconcile_active(ctx, conn, now=utcnow() + timedelta(seconds=timeout))
    [row] = logs()
    assert row.status == ("started" if ledger_start else "queued")  # the first delivery may still be running
    reconcile_active(ctx, conn, now=utcnow() + timedelta(seconds=timeout + ABANDON_GRACE + 60))
    [row] = logs()
    assert row.status == "failed" and row.reason.startswith("abandoned"), row.reason
    assert read_out(ctx.bench.path) == []


def test_a_refused_delivery_leaves_a_live_first_delivery_to_record_its_own_outcome(bench_factory, db_kind):
    """The first delivery is only slow (a stopped worker, resumed): a second one is refused meanwhile, and the
    sweep must not settle the row before the first delivery writes what happened."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    [rq_id] = queued_ids(ctx)
    _first_delivery_died(ctx, conn, rq_id, ledger_start=True)
    drain(ctx.bench.bench_id, conn)  # refused
    ctx.database()
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=1))
    assert logs()[0].status == "started"
    runlog.record_finished(ctx.database(), rq_id, "complete", utcnow())  # the first delivery, resumed, finishes
    reconcile_active(ctx, conn, now=utcnow() + timedelta(hours=1))
    [row] = logs()
    assert row.status == "complete" and not (row.reason or "").startswith("abandoned")


def test_a_run_started_without_the_ledger_and_then_lost_by_redis_is_not_sent_again(bench_factory, db_kind,
                                                                                     monkeypatch):
    ctx, conn, rq_id = _run_without_the_ledger(bench_factory, db_kind, monkeypatch, "app1.tasks.ok")
    # it ran; the ledger row still says queued
    conn.delete(f"rq:job:{rq_id}")  # then Redis lost the job (a restart from an older snapshot)
    ctx.database()
    reconcile_active(ctx, conn, now=utcnow() + timedelta(minutes=5))
    assert queued_ids(ctx) == []
    [row] = logs()
    assert row.status == "failed" and "outcome unknown" in row.reason
    assert [r["task"] for r in read_out(ctx.bench.path)] == ["ok"]


def test_a_redis_outage_is_reported_once_whichever_call_meets_it_first(bench_factory, db_kind, private_redis,  # noqa: F811
                                                                      caplog):
    """The chaos run's scheduler logs showed the same outage logged on every attempt: a failed send and a failed
    status lookup worded it differently ("ConnectionError: ConnectionError: ..." vs "ConnectionError: ...")."""
    import logging

    from hookscheduler.schedule.loop import Scheduler
    from tests.integration.test_loop import _migrated

    bench = _migrated(bench_factory, db_kind, {"hourly": ["app1.tasks.ok"]}, common={"redis_queue": private_redis.url})
    clock = {"now": datetime(2026, 1, 5, 11, 0, 1)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.cycle()
    ctx = sched.sites["default"].ctx
    drain(ctx.bench.bench_id, redis_for(ctx.site))
    private_redis.stop()
    caplog.set_level(logging.ERROR, logger="hookscheduler.schedule.loop")
    # 12:00 is claimed and its send fails; at 13:00 the 12:00 run is still queued, so the overlap check asks
    # Redis for its status first, and fails there
    for now in (datetime(2026, 1, 5, 12, 0, 1), datetime(2026, 1, 5, 12, 0, 2), datetime(2026, 1, 5, 13, 0, 1)):
        clock["now"] = now
        sched.sites["default"].retry_at = None
        sched.cycle()
    assert sched.sites["default"].failures == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors


def _covering(job: str, slot: datetime) -> list[int]:
    return [r.id for r in ScheduledJobLog.select().where(ScheduledJobLog.job_name == job)
            if r.trigger in ("schedule", "catch-up", "backfill") and r.first_slot <= slot <= r.last_slot]


def test_a_slot_the_ledger_already_stands_for_is_not_decided_again(bench_factory, db_kind, caplog):
    """I9 (issue 16): a 30-minute PostgreSQL chaos run (seed 707) found the maintenance jobs' 00:31 local slot
    decided twice on two days, the second time without a second run. Whatever moved their ``next_execution``
    back over a decided slot (here an operator's SQL stands for it), the next pass must not decide that slot
    again. Before the fix it did, silently: the run of the first decision was still queued, so the second one
    was a ``skipped`` row ("previous run ... still queued"), which has no RQ id for the unique index to refuse."""
    events = {"hourly_maintenance": [{"method": "app1.tasks.ok", "name": "hm"}],
              "daily_maintenance": [{"method": "app1.tasks.other", "name": "dm"}]}
    ctx = setup_site(bench_factory, events, db_kind, common={"time_zone": "Asia/Kolkata"})
    conn = redis_for(ctx.site)
    day = ScheduledJobType.get(ScheduledJobType.name == "dm").next_execution  # 00:MM local, 18:30+MM UTC
    assert run_pass(ctx, conn, now=day - timedelta(hours=1) + timedelta(seconds=1)).fired == 1  # hm catches up
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert run_pass(ctx, conn, now=day + timedelta(seconds=1)).fired == 2  # both on time; their runs stay queued
    ScheduledJobType.update(next_execution=day).execute()  # both jobs moved back over the slot just decided
    with caplog.at_level("WARNING"):
        again = run_pass(ctx, conn, now=day + timedelta(seconds=30))
    assert (again.fired, again.skipped, again.missed) == (0, 0, 0)
    assert "is already decided" in caplog.text
    assert ScheduledJobType.get(ScheduledJobType.name == "dm").next_execution == day + timedelta(days=1)
    assert ScheduledJobType.get(ScheduledJobType.name == "hm").next_execution == day + timedelta(hours=1)
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert run_pass(ctx, conn, now=day + timedelta(hours=1, seconds=1)).fired == 1  # hm's next slot, once
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    for job, slot in [("dm", day), ("hm", day), ("hm", day + timedelta(hours=1))]:
        assert len(_covering(job, slot)) == 1, f"{job} slot {slot} decided {len(_covering(job, slot))} times"
