"""Many sites in one ``schedule`` process: the PostgreSQL connections it holds stay within
``scheduler_db_connections`` (the least recently used are closed and reopened when next stepped) without a site
losing or doubling a slot, and the sites with a slot due are stepped before the others."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import psycopg2
import pytest

from hookscheduler.broker.keys import last_tick_key
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.store.models import ScheduledJobLog

T0 = datetime(2026, 1, 5, 10, 7)
ELEVEN = datetime(2026, 1, 5, 11, 0, 0, 5000)


def _migrate(bench, names) -> None:
    for name in names:
        ctx = open_site(str(bench), name)
        migrate_site(ctx.database(create=True, require_schema=False), ctx.name,
                     load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        ctx.close()


@pytest.mark.postgres
def test_the_loop_holds_at_most_its_budget_of_postgresql_connections(bench_factory, redis_client):
    tag = f"hs_conns_{uuid.uuid4().hex[:10]}"  # only this test's connections are counted (the server is shared)
    names = [f"s{i}.example" for i in range(6)]
    sites = {name: {"db_url": f"{bench_factory.pg_url()}&application_name={tag}"} for name in names}
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres", sites=sites,
                               common={"scheduler_db_connections": 2})
    _migrate(bench, names)
    url = sites[names[0]]["db_url"]

    def connections() -> int:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (tag,))
                return int(cur.fetchone()[0]) - 1  # not this one
        finally:
            conn.close()

    def settled_connections() -> int:
        # a closed connection's backend leaves pg_stat_activity a moment after the client closed it
        deadline = time.monotonic() + 10
        while (count := connections()) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        return count

    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    try:
        sched.cycle()
        assert sum(s.ctx.is_open for s in sched.sites.values()) == 2
        assert settled_connections() == 2
        bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
        assert all(redis_client.get(last_tick_key(bench_id, name)) for name in names)  # every site stepped
        # the shared slot: every site fires it once, reconnecting the sites the budget closed
        clock[0] = ELEVEN
        sched.results.clear()
        sched.cycle(all_sites=False)
        assert sorted(r.site for r in sched.results if r.fired == 1) == names
        assert all(s.failures == 0 for s in sched.sites.values())
        assert settled_connections() <= 2
        # and never again: another process's cycle and this one's next find nothing due
        other = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True, offset=0.5)
        try:
            other.cycle()
            sched.results.clear()
            sched.cycle()
            assert sum(r.fired for r in other.results + sched.results) == 0
        finally:
            for state in other.sites.values():
                state.ctx.close()
    finally:
        for state in sched.sites.values():
            state.ctx.close()
    for name in names:
        ctx = open_site(str(bench), name)
        ctx.database()
        assert [r.scheduled_for for r in ScheduledJobLog.select()] == [datetime(2026, 1, 5, 11)]
        ctx.close()


def test_a_cycle_over_every_site_steps_the_due_sites_first(bench_factory):
    names = [f"s{i}.example" for i in range(4)]
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={n: {} for n in names})
    _migrate(bench, names)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True, offset=0.0)
    sched.cycle()
    for name in names[:3]:  # as if only the last site's slot were at 11:00 (the others' later)
        sched.sites[name].next_due = datetime(2026, 1, 5, 12)
    clock[0] = ELEVEN
    sched.results.clear()
    sched.cycle(all_sites=True)
    assert [r.site for r in sched.results] == [names[3], *names[:3]]
    assert [r.fired for r in sched.results] == [1, 1, 1, 1]


def _hourly_sites(bench_factory, n: int) -> tuple[list[str], object, list[datetime], Scheduler]:
    """``n`` sites with one hourly job each, migrated, and a scheduler that has run its first cycle."""
    names = [f"s{i}.example" for i in range(n)]
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={name: {} for name in names})
    _migrate(bench, names)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    sched.cycle()
    return names, bench, clock, sched


def _queued(redis_client, bench_id: str) -> list[bytes]:
    from hookscheduler.broker.keys import queue_name

    return list(redis_client.lrange(f"rq:queue:{queue_name(bench_id, 'default')}", 0, -1))


def test_a_slot_shared_by_many_sites_is_sent_in_few_round_trips_once_per_site(bench_factory, redis_client,
                                                                              monkeypatch):
    from hookscheduler.schedule import outbox

    names, bench, clock, sched = _hourly_sites(bench_factory, 7)
    calls: list[int] = []
    real = outbox.send.send_runs

    def counted(conn, bench_id, runs, **ttls):
        runs = list(runs)
        calls.append(len(runs))
        return real(conn, bench_id, runs, **ttls)

    monkeypatch.setattr(outbox.send, "send_runs", counted)
    clock[0] = ELEVEN
    sched.cycle(all_sites=False)
    assert calls == [1, 2, 4]  # batches grow: the first due site's run goes at once
    bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
    queued = _queued(redis_client, bench_id)
    assert len(queued) == len(set(queued)) == 7
    for name in names:  # each marked sent with the moment Redis accepted it, once
        ctx = open_site(str(bench), name)
        ctx.database()
        [row] = ScheduledJobLog.select()
        assert row.scheduled_for == datetime(2026, 1, 5, 11) and row.enqueued_at is not None
        ctx.close()
    for state in sched.sites.values():
        state.ctx.close()


def test_a_batched_send_that_fails_leaves_the_runs_in_their_outboxes_and_no_last_tick(bench_factory, redis_client,
                                                                                     monkeypatch):
    import redis as redis_mod

    from hookscheduler.schedule import outbox

    names, bench, clock, sched = _hourly_sites(bench_factory, 3)
    bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
    for name in names:
        redis_client.delete(last_tick_key(bench_id, name))
    real = outbox.send.send_runs

    def down(*_args, **_kwargs):
        raise redis_mod.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(outbox.send, "send_runs", down)
    clock[0] = ELEVEN
    sched.cycle(all_sites=False)
    assert all(s.failures == 1 and s.retry_at is not None for s in sched.sites.values())
    assert not any(redis_client.get(last_tick_key(bench_id, name)) for name in names)
    assert _queued(redis_client, bench_id) == []
    monkeypatch.setattr(outbox.send, "send_runs", real)
    clock[0] = ELEVEN + timedelta(seconds=5)  # past the back-off: the next passes send the outboxes
    sched.cycle(all_sites=False)
    assert all(s.failures == 0 for s in sched.sites.values())
    queued = _queued(redis_client, bench_id)
    assert len(queued) == len(set(queued)) == 3
    assert all(redis_client.get(last_tick_key(bench_id, name)) for name in names)
    for name in names:
        ctx = open_site(str(bench), name)
        ctx.database()
        [row] = ScheduledJobLog.select()
        assert row.enqueued_at is not None
        ctx.close()
    for state in sched.sites.values():
        state.ctx.close()


def test_a_site_closed_for_the_budget_reopens_without_checking_its_schema_again(bench_factory, monkeypatch):
    from hookscheduler.store import database as dbmod

    names = ["a.example"]
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={n: {} for n in names})
    _migrate(bench, names)
    ctx = open_site(str(bench), names[0])
    checks: list[object] = []
    real = dbmod.require_schema
    monkeypatch.setattr(dbmod, "require_schema", lambda db: (checks.append(db), real(db)))
    ctx.database()
    assert len(checks) == 1
    ctx.close(planned=True)  # the loop's budget: the same database, reopened
    ctx.database()
    assert len(checks) == 1
    ctx.close()  # after a failure: checked again
    ctx.database()
    assert len(checks) == 2
    ctx.close(planned=True)
    ctx.site = open_site(str(bench), names[0], {"db_url": f"sqlite:///{bench}/other.sqlite3"}).site
    ctx.database(create=True, require_schema=False)  # another database: never carried over
    ctx.close(planned=True)
    with pytest.raises(Exception, match="schema"):
        ctx.database()
    ctx.close()


@pytest.mark.postgres
def test_migrate_over_many_postgresql_sites_holds_one_connection_at_a_time(bench_factory, monkeypatch):
    from hookscheduler.cli.migrate_cmd import _migrate_all
    from hookscheduler.context import SiteContext, open_sites

    names = [f"m{i}.example" for i in range(4)]
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres", sites={n: {} for n in names})
    contexts = open_sites(str(bench))
    most: list[int] = []
    real = SiteContext.database

    def watched(self, *args, **kwargs):
        db = real(self, *args, **kwargs)
        most.append(sum(c.holds_server_connection for c in contexts))
        return db

    monkeypatch.setattr(SiteContext, "database", watched)
    plans = _migrate_all(contexts, dry_run=False, prune=False, warnings=[], moved={})
    assert [len(p.added) > 0 for p in plans] == [True] * 4
    assert max(most) == 1 and not any(c.is_open for c in contexts)
    plans = _migrate_all(contexts, dry_run=False, prune=False, warnings=[], moved={})  # again: nothing to add
    assert all(not p.added and p.unchanged for p in plans) and not any(c.is_open for c in contexts)
