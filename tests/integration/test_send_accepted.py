"""The ledger's ``enqueued_at`` is the moment Redis accepted the run (its ``TIME``, read by the enqueue script
that writes the run), not a time taken before the pipeline was sent or after its reply came back."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone

import peewee as pw
import pytest
from rq.job import Job
from rq.utils import utcformat

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


def test_rq_sees_the_moment_redis_accepted_each_run_as_its_enqueued_at(redis_client, monkeypatch):
    """The job hash's ``enqueued_at`` is the enqueue script's own ``TIME``, the ledger's stamp to the
    microsecond, not a time Python took before building the payloads (which would read earlier than the queue
    got the job); RQ parses it back."""
    monkeypatch.setattr(send, "RUNS_PER_CALL", 2)
    bench_id = f"hsenq{os.getpid()}"
    runs = [send.Run(f"{bench_id}_x_sched-{i}", "site", f"app.tasks.j{i}", "app.tasks.j", "default", 300,
                     datetime(2026, 1, 5, 10, 0), "schedule") for i in range(3)]
    try:
        sent = send.send_runs(redis_client, bench_id, runs)
        for run, at in zip(runs, sent.ats, strict=True):
            job = Job.fetch(run.rq_job_id, connection=redis_client)
            assert job.enqueued_at is not None and job.created_at is not None
            assert job.enqueued_at.replace(tzinfo=None) == at
            assert job.created_at <= job.enqueued_at
    finally:
        redis_client.delete(*[f"rq:job:{r.rq_job_id}" for r in runs], f"rq:queue:{bench_id}:default")
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default")


def test_the_script_writes_redis_time_in_rqs_format_on_every_day(redis_client):
    """The script's date arithmetic (Redis's Lua has no date functions) against Python's, on the days it can get
    wrong: the epoch, month and year ends, leap days (2000 is a leap year, 2100 is not), and a spread of others."""
    script = redis_client.register_script(send.LUA_STAMP + "return stamp({ARGV[1], ARGV[2]})")
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    days = [datetime(1970, 1, 1), datetime(1999, 12, 31, 23, 59, 59), datetime(2000, 2, 29, 12), datetime(2000, 3, 1),
            datetime(2024, 2, 29, 23, 59, 59), datetime(2026, 12, 31, 23, 59, 59), datetime(2100, 2, 28, 23),
            datetime(2100, 3, 1), datetime(2400, 2, 29, 6, 7, 8)]
    days += [datetime(1970, 1, 1) + timedelta(days=d * 997, seconds=d * 3607) for d in range(150)]
    for day in days:
        seconds = int((day.replace(tzinfo=timezone.utc) - epoch).total_seconds())
        for micros in (0, 7, 999_999):
            want = utcformat(day.replace(tzinfo=timezone.utc, microsecond=micros))
            assert script(args=[seconds, micros]).decode() == want, day


def test_runs_built_ahead_are_written_as_runs_built_at_the_send(redis_client):
    """A run built ahead (:func:`send.prebuild`) is written exactly as the same run built at its send; an entry
    built for another run of the same job id (its fields changed since) is not used for it."""
    bench_id = f"hspre{os.getpid()}"
    ahead = [send.Run(f"{bench_id}_x_sched-{i}", "site", f"app.tasks.j{i}", "app.tasks.j", "default", 300,
                      datetime(2026, 1, 5, 10, 0), "schedule", frequent=bool(i % 2)) for i in range(3)]
    plain = [send.Run(f"{bench_id}_y_sched-{i}", "site", f"app.tasks.j{i}", "app.tasks.j", "default", 300,
                      datetime(2026, 1, 5, 10, 0), "schedule", frequent=bool(i % 2)) for i in range(3)]
    stale = send.Run(f"{bench_id}_x_sched-2", "site", "app.tasks.other", "app.tasks.other", "long", 1500,
                     datetime(2026, 1, 5, 9, 0), "catch-up")
    keys = [f"rq:job:{r.rq_job_id}" for r in ahead + plain]
    try:
        send.prebuild(redis_client, bench_id, [*ahead[:2], stale])
        assert {r.rq_job_id for r in ahead} <= set(send._BUILT)
        send.send_runs(redis_client, bench_id, ahead + plain)
        assert not {r.rq_job_id for r in ahead} & set(send._BUILT)  # taken by the send
        for a, p in zip(ahead, plain, strict=True):
            got = {k: v for k, v in redis_client.hgetall(f"rq:job:{a.rq_job_id}").items()
                   if k not in (b"created_at", b"enqueued_at")}
            ref = {k: v for k, v in redis_client.hgetall(f"rq:job:{p.rq_job_id}").items()
                   if k not in (b"created_at", b"enqueued_at")}
            assert got == ref, a  # data, description, meta and the rest: byte for byte
        assert Job.fetch(ahead[2].rq_job_id, connection=redis_client).kwargs["job_name"] == "app.tasks.j2"
    finally:
        send.forget([*ahead, stale])
        redis_client.delete(*keys, f"rq:queue:{bench_id}:default", f"rq:queue:{bench_id}:long")
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default")


def test_a_redis_clock_behind_the_sender_cannot_show_a_job_queued_before_it_was_created(redis_client, monkeypatch):
    """The script's ``enqueued_at`` has the sender's time as it built the call as its floor (the hash's
    ``created_at``): here the sender's clock is an hour ahead of Redis's, and RQ shows the floor, not an hour
    earlier; the ledger's stamp is kept inside the sender's window too."""
    ahead = datetime.now(timezone.utc) + timedelta(hours=1)
    monkeypatch.setattr(send, "now", lambda: ahead)
    bench_id = f"hsfloor{os.getpid()}"
    run = send.Run(f"{bench_id}_x_sched-1", "site", "app.tasks.j", "app.tasks.j", "default", 300,
                   datetime(2026, 1, 5, 10, 0), "schedule")
    try:
        send.send_runs(redis_client, bench_id, [run])
        job = Job.fetch(run.rq_job_id, connection=redis_client)
        assert job.enqueued_at == job.created_at == ahead
    finally:
        redis_client.delete(f"rq:job:{run.rq_job_id}", f"rq:queue:{bench_id}:default")
        redis_client.srem("rq:queues", f"rq:queue:{bench_id}:default")


def test_entries_built_ahead_that_no_send_took_are_dropped_once_stale(redis_client, monkeypatch):
    """A run built ahead that this process never sends (another process sent it) is dropped by a later build
    once its slot is ten minutes behind; recent ones stay."""
    monkeypatch.setattr(send, "_BUILT", {})  # this process's own (other tests leave theirs)
    bench_id = f"hsstale{os.getpid()}"

    def run(i: int, slot: datetime) -> send.Run:
        return send.Run(f"{bench_id}_x_sched-{i}", "site", "app.tasks.j", "app.tasks.j", "default", 300, slot,
                        "schedule")

    old, recent, new = run(1, datetime(2026, 1, 5, 9, 0)), run(2, datetime(2026, 1, 5, 9, 55)), \
        run(3, datetime(2026, 1, 5, 10, 0))
    try:
        send.prebuild(redis_client, bench_id, [old, recent])
        send.prebuild(redis_client, bench_id, [new])
        assert old.rq_job_id not in send._BUILT
        assert {recent.rq_job_id, new.rq_job_id} <= set(send._BUILT)
    finally:
        send.forget([old, recent, new])


def test_stale_entries_behind_a_fresh_one_are_dropped_too(redis_client, monkeypatch):
    """An entry built after a later slot's (a clock set back, or sites claimed out of slot order) is not the
    oldest, so dropping from the oldest never reaches it: the periodic scan of every entry does, and a build
    within a minute of the last scan does not scan again."""
    monkeypatch.setattr(send, "_BUILT", {})
    monkeypatch.setattr(send, "_SCANNED", [])
    bench_id = f"hsbehind{os.getpid()}"

    def run(i: int, slot: datetime) -> send.Run:
        return send.Run(f"{bench_id}_x_sched-{i}", "site", "app.tasks.j", "app.tasks.j", "default", 300, slot,
                        "schedule")

    later, earlier = run(1, datetime(2026, 1, 5, 11, 0)), run(2, datetime(2026, 1, 5, 9, 0))
    at_10, at_1030 = run(3, datetime(2026, 1, 5, 10, 0)), run(4, datetime(2026, 1, 5, 10, 30))
    soon = run(5, datetime(2026, 1, 5, 10, 30, 30))
    try:
        send.prebuild(redis_client, bench_id, [later])
        send.prebuild(redis_client, bench_id, [earlier])  # the clock went back: built after a later slot
        assert list(send._BUILT) == [later.rq_job_id, earlier.rq_job_id]
        send.prebuild(redis_client, bench_id, [at_10])  # 09:00 is 60 min behind 10:00, behind 11:00's entry
        assert earlier.rq_job_id not in send._BUILT
        assert {later.rq_job_id, at_10.rq_job_id} <= set(send._BUILT)
        send.prebuild(redis_client, bench_id, [at_1030])  # scanned: 10:00 is now stale too
        assert at_10.rq_job_id not in send._BUILT
        send._BUILT[earlier.rq_job_id] = send.HashBuilder(redis_client, bench_id, 60, 60).packed(earlier)
        send.prebuild(redis_client, bench_id, [soon])  # 30 s after the last scan's line: no scan yet
        assert earlier.rq_job_id in send._BUILT
    finally:
        send.forget([later, earlier, at_10, at_1030, soon])
