"""The ledger's ``enqueued_at`` is the moment Redis accepted the run (its ``TIME``, read by the enqueue script
that writes the run), not a time taken before the pipeline was sent or after its reply came back."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone

import peewee as pw
import pytest
from rq.job import Job

from hookscheduler.schedule import send
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store import postgres as pgstore
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.opcli_support import migrated

T0 = datetime(2026, 1, 5, 9, 59, 30)


def _redis_now(conn) -> datetime:
    sec, usec = conn.time()
    return datetime.fromtimestamp(sec, timezone.utc).replace(tzinfo=None, microsecond=usec)


def test_accepted_at_is_the_server_time_kept_inside_the_local_window() -> None:
    before, after = datetime(2026, 1, 5, 10, 0, 0), datetime(2026, 1, 5, 10, 0, 1)
    inside = (int(before.replace(tzinfo=timezone.utc).timestamp()), 250_000)
    assert send.accepted_at(inside, before, after) == datetime(2026, 1, 5, 10, 0, 0, 250_000)
    assert send.accepted_at((inside[0] - 3600, 0), before, after) == before  # a Redis clock an hour behind
    assert send.accepted_at((inside[0] + 3600, 0), before, after) == after  # ... or ahead


def test_the_ledger_stamps_runs_with_the_time_redis_accepted_them(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    calls: list[int] = []
    evalsha_all = send._evalsha_all

    def spy(conn, commands):
        calls.append(len(commands))
        return evalsha_all(conn, commands)

    monkeypatch.setattr(send, "_evalsha_all", spy)
    # the job's slot is 10:00: the pass runs "at" 10:00:01 while the server's clock says today
    lo = _redis_now(conn)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 0, 1)).fired == 1
    hi = _redis_now(conn)
    assert calls == [1], calls  # the run and its stamp: one script call
    ctx.database()
    row = ScheduledJobLog.get()
    assert lo - timedelta(milliseconds=1) <= row.enqueued_at <= hi + timedelta(milliseconds=1)


@pytest.mark.postgres
def test_a_session_that_lost_its_prepared_statements_falls_back_to_plain_ones(bench_factory, monkeypatch, caplog):
    """A pooler in transaction mode hands a transaction another server connection, where the pass's prepared
    statements do not exist: that pass fails (the loop retries it), later ones use plain statements."""
    monkeypatch.setattr(pgstore, "_POOLED", [])
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.ok", "overlap": "allow"}]}},
                               db="postgres")
    ctx, conn = migrated(bench, T0)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 0, 1)).fired == 1  # plain: the first use
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 1  # prepared, and used
    ctx.database().execute_sql("DEALLOCATE ALL")  # as a different server connection would be
    with pytest.raises((pw.ProgrammingError, pw.OperationalError)):
        run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert pgstore._POOLED and "plain statements from now on" in caplog.text
    ctx.close()
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).fired == 1
    ctx.database().execute_sql("DEALLOCATE ALL")
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1)).fired == 1


def test_each_call_of_the_enqueue_script_stamps_its_own_runs(redis_client, monkeypatch):
    """A send of more runs than one script call takes: every run is stamped with the time of the call that
    wrote it, and they are all in RQ once."""
    monkeypatch.setattr(send, "RUNS_PER_CALL", 2)
    bench_id = f"hsacc{os.getpid()}"
    runs = [send.Run(f"{bench_id}_x_sched-{i}", "site", f"app.tasks.j{i}", "app.tasks.j", "default", 300,
                     datetime(2026, 1, 5, 10, 0), "schedule") for i in range(5)]
    try:
        lo = _redis_now(redis_client)
        sent = send.send_runs(redis_client, bench_id, runs)
        hi = _redis_now(redis_client)
        assert sent.ids == [r.rq_job_id for r in runs]
        assert len(sent.ats) == 5 and sent.ats == sorted(sent.ats)
        assert sent.ats[0] == sent.ats[1] and sent.ats[2] == sent.ats[3]  # two runs per call
        assert all(lo - timedelta(milliseconds=1) <= at <= hi + timedelta(milliseconds=1) for at in sent.ats)
        again = send.send_runs(redis_client, bench_id, runs)  # a second send stores nothing more
        assert again.ids == sent.ids
        queued = [v.decode() for v in redis_client.lrange(f"rq:queue:{bench_id}:default", 0, -1)]
        assert queued == [r.rq_job_id for r in runs]
    finally:
        keys = [f"rq:job:{r.rq_job_id}" for r in runs] + [f"rq:queue:{bench_id}:default"]
        redis_client.delete(*keys)
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default")


def test_the_enqueue_script_writes_the_hash_rq_writes(redis_client):
    """The script's hash (shared fields once per call, each run's own after) is RQ's own, field by field (the
    timestamps aside), for runs of several queues and timeouts in one call; RQ reads the job back."""
    bench_id = f"hshash{os.getpid()}"
    runs = [send.Run(f"{bench_id}_x_sched-a", "site.one", "app.tasks.a", "app.tasks.a", "default", 300,
                     datetime(2026, 1, 5, 10, 0), "schedule"),
            send.Run(f"{bench_id}_x_sched-b", "site.one", "app.tasks.b", "app.tasks.b", "long", 1500,
                     datetime(2026, 1, 5, 11, 30, 5), "catch-up"),
            send.Run(f"{bench_id}_x_sched-c", "site.one", "app.tasks.c", "app.tasks.c", "default", 300,
                     datetime(2026, 1, 5, 12, 0, 10), "schedule", frequent=True)]
    try:
        send.send_runs(redis_client, bench_id, runs, 86400, 86400)
        for run in runs:
            written = {k.decode(): v for k, v in redis_client.hgetall(f"rq:job:{run.rq_job_id}").items()}
            ref = send.rq_hash(redis_client, bench_id, run, 86400, 86400)
            encode = redis_client.get_encoder().encode  # as redis-py sends RQ's values
            expected = {encode(k).decode(): encode(v) for k, v in zip(ref[::2], ref[1::2], strict=True)}
            for stamp in ("created_at", "enqueued_at"):
                assert stamp in written and stamp in expected
                written.pop(stamp), expected.pop(stamp)
            assert written == expected
            job = Job.fetch(run.rq_job_id, connection=redis_client)
            assert job.kwargs["job_name"] == run.job_name and job.origin == f"{bench_id}:{run.queue}"
        assert {f"rq:queue:{bench_id}:default".encode(), f"rq:queue:{bench_id}:long".encode()} <= \
            redis_client.smembers("rq:queues")
    finally:
        redis_client.delete(*[f"rq:job:{r.rq_job_id}" for r in runs], f"rq:queue:{bench_id}:default",
                          f"rq:queue:{bench_id}:long")
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default", f"rq:queue:{bench_id}:long")


@pytest.mark.parametrize("per_call", [250, 2])
def test_a_redis_without_the_script_gets_it_loaded_and_the_runs_once(redis_client, monkeypatch, per_call):
    """A Redis that does not have the enqueue script (new, restarted, flushed) makes the send load it and send
    again, alone or in a pipeline of calls; each run is in RQ once."""
    source = send.ENQUEUE_MANY + f"-- {os.getpid()} {per_call} {datetime.now().isoformat()}\n"  # a script no Redis has
    monkeypatch.setattr(send, "ENQUEUE_MANY", source)
    monkeypatch.setattr(send, "_SHA", hashlib.sha1(source.encode()).hexdigest())
    monkeypatch.setattr(send, "RUNS_PER_CALL", per_call)
    bench_id = f"hsload{os.getpid()}"
    runs = [send.Run(f"{bench_id}_x_sched-{i}", "site", f"app.tasks.j{i}", "app.tasks.j", "default", 300,
                     datetime(2026, 1, 5, 10, 0), "schedule") for i in range(3)]
    try:
        assert not redis_client.script_exists(send._SHA)[0]
        assert send.send_runs(redis_client, bench_id, runs).ids == [r.rq_job_id for r in runs]
        assert redis_client.script_exists(send._SHA)[0]
        assert redis_client.lrange(f"rq:queue:{bench_id}:default", 0, -1) == [r.rq_job_id.encode() for r in runs]
    finally:
        redis_client.delete(*[f"rq:job:{r.rq_job_id}" for r in runs], f"rq:queue:{bench_id}:default")
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default")
