"""An idle loop cycle does only what can have changed: one probe statement and one Redis round trip, the
config files read again only when they changed, and the sweep's work only when the probe saw some."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta

import peewee as pw
import redis

from hookscheduler.broker.keys import heartbeat_key, last_tick_key
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule import loop as loop_mod
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.store.database import get_state
from hookscheduler.store.models import ScheduledJobType

T0 = datetime(2026, 1, 5, 10, 7)


def _sites_bench(bench_factory, sites, db_kind="sqlite"):
    """A bench of ``sites`` (names -> site config), each migrated at T0 with one hourly job."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind, sites=sites)
    for name in sites:
        ctx = open_site(str(bench), name)
        migrate_site(ctx.database(create=True, require_schema=False), ctx.name,
                     load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        ctx.close()
    return bench


def _bench(bench_factory, db_kind):
    return _sites_bench(bench_factory, {"default": {}}, db_kind)


def _age(bench) -> None:
    """Every config file and folder written a minute ago (a file written just now is always read again)."""
    past = time.time() - 60
    for root, dirs, files in os.walk(bench):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (past, past))
    os.utime(bench, (past, past))


class Counts:
    def __init__(self, monkeypatch, db: pw.Database) -> None:
        self.sql: list[str] = []
        self.redis: list[str] = []
        self.reads = 0
        sql, command, load = type(db).execute_sql, redis.Redis.execute_command, loop_mod.load_sites

        def spy_sql(this, text, params=None, *args, **kwargs):
            self.sql.append(text)
            return sql(this, text, params, *args, **kwargs)

        def spy_redis(this, *args, **kwargs):
            self.redis.append(str(args[0]))
            return command(this, *args, **kwargs)

        def spy_load(*args, **kwargs):
            self.reads += 1
            return load(*args, **kwargs)

        monkeypatch.setattr(type(db), "execute_sql", spy_sql)
        monkeypatch.setattr(redis.Redis, "execute_command", spy_redis)
        monkeypatch.setattr(loop_mod, "load_sites", spy_load)


def test_an_idle_cycle_is_one_statement_and_one_redis_round_trip(bench_factory, db_kind, monkeypatch, redis_client):
    bench = _bench(bench_factory, db_kind)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0])
    sched.cycle()  # the first cycle does everything once (re-anchor check, repair, reconcile, config read)
    _age(bench)
    sched.cycle()  # and the next one fingerprints the aged files
    state = sched.sites["default"]
    counts = Counts(monkeypatch, state.ctx.database())
    for _ in range(3):  # a minute apart, as an idle process at the default tick interval: every part is due
        clock[0] += timedelta(seconds=60)
        sched.cycle()
    assert len(counts.sql) == 3, counts.sql  # the probe, nothing else
    # per cycle: the last tick, the clock-excursion check's swap of the latest step and the heartbeat, together
    assert counts.redis == ["EVALSHA"] * 3, counts.redis
    assert counts.reads == 0
    bench_id = state.ctx.bench.bench_id
    assert redis_client.get(last_tick_key(bench_id, "default")).decode() == clock[0].isoformat()
    assert json.loads(redis_client.get(heartbeat_key(bench_id, sched.instance)))["at"] == clock[0].isoformat()
    assert state.next_due == datetime(2026, 1, 5, 11, 0)  # the probe's earliest slot, without asking again


def test_what_the_idle_cycle_skips_is_still_done_when_it_has_changed(bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    sched.cycle()
    _age(bench)
    sched.cycle()
    ctx = sched.sites["default"].ctx
    # a row whose next slot was erased with SQL: the next probe sees it, the sweep after that repairs it
    ctx.database()
    ScheduledJobType.update(next_execution=None).execute()
    for _ in range(2):
        clock[0] += timedelta(seconds=31)
        sched.cycle()
    ctx.database()
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 11, 0)
    # a config edit (in place) a minute after the last read: read again at the next cycle
    conf = bench / "sites" / "default" / "site_config.json"
    original = json.loads(conf.read_text())  # (on PostgreSQL it holds the db_url)
    conf.write_text(json.dumps({**original, "pause_scheduler": 1}))
    clock[0] += timedelta(seconds=60)
    sched.cycle()
    assert "pause_scheduler" in (sched.results[-1].inactive or "")
    # a new time zone: the sweep's re-anchor check runs again (the calendar changed) and moves the row
    conf.write_text(json.dumps({**original, "time_zone": "Asia/Kolkata"}))  # +05:30: the hourly slot moves to :30 UTC
    clock[0] += timedelta(seconds=60)
    sched.cycle()
    ctx = sched.sites["default"].ctx
    ctx.database()
    assert "Asia/Kolkata" in (get_state("clock_signature") or "")
    assert ScheduledJobType.get().next_execution.minute == 30


def test_the_loop_keeps_at_most_its_cap_of_site_databases_open(bench_factory, redis_client):
    sites = {f"s{i}.example": {} for i in range(5)}
    bench = _sites_bench(bench_factory, sites)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], max_open=2)
    for _ in range(2):
        sched.cycle()
        clock[0] += timedelta(seconds=60)
        assert sum(1 for s in sched.sites.values() if s.ctx._db is not None) == 2
    bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
    assert all(redis_client.get(last_tick_key(bench_id, name)) for name in sites)  # every site stepped
    assert all(s.next_due == datetime(2026, 1, 5, 11, 0) and s.failures == 0 for s in sched.sites.values())


def test_the_open_sites_cap_follows_the_descriptor_limit(monkeypatch):
    monkeypatch.setattr(loop_mod.resource, "getrlimit", lambda _which: (1024, 4096))
    assert loop_mod.open_sites_cap() == (1024 - loop_mod.FD_RESERVE) // 3  # 298 SQLite sites: 3 descriptors each
    monkeypatch.setattr(loop_mod.resource, "getrlimit", lambda _which: (100, 4096))
    assert loop_mod.open_sites_cap() == 8


def test_a_cycle_woken_for_a_slot_steps_only_the_sites_that_want_a_step(bench_factory):
    sites = {"a.example": {}, "b.example": {}}
    bench = _sites_bench(bench_factory, sites)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    sched.cycle()  # every site, the first time
    a = sched.sites["a.example"]
    a.next_due = clock[0] + timedelta(seconds=5)  # as if a's slot came 5 s later (b's is at 11:00)
    clock[0] += timedelta(seconds=5)
    sched.results.clear()
    sched.cycle(all_sites=False)
    assert [r.site for r in sched.results] == ["a.example"]
    # b's tick interval (60 s) since its last step bounds how long a direct SQL edit of it waits; a was
    # stepped 56 s ago: not yet
    clock[0] += timedelta(seconds=56)
    sched.results.clear()
    sched.cycle(all_sites=False)
    assert [r.site for r in sched.results] == ["b.example"]
    assert 0 < sched._sleep_for(clock[0]) <= 60
    # two processes start their cycles at different sites
    first, second = Scheduler(bench=str(bench), offset=0.0), Scheduler(bench=str(bench), offset=0.75)
    first.refresh_sites()
    second.refresh_sites()
    assert [s.ctx.name for s in first._in_turn()] == ["a.example", "b.example"]
    assert [s.ctx.name for s in second._in_turn()] == ["b.example", "a.example"]


def test_the_batch_swaps_keys_in_the_round_trip_of_its_writes(redis_client):
    from hookscheduler.broker.batch import SetBatch

    seen: list[object] = []
    keys = [f"hstest:batch-swap:{i}" for i in range(3)]
    redis_client.set(keys[0], "before")
    redis_client.delete(keys[1], keys[2])
    batch = SetBatch(redis_client)
    batch.swap(keys[0], "now", 60, seen.append)
    batch.set(keys[2], "plain", 60)
    batch.swap(keys[1], "first", 60, seen.append)  # had no value: None (a Lua nil at the end of the reply)
    batch.flush()
    assert seen == [b"before", None]
    assert [redis_client.get(k) for k in keys] == [b"now", b"first", b"plain"]
    assert all(0 < redis_client.ttl(k) <= 60 for k in keys)
    assert len(batch) == 0
    redis_client.delete(*keys)


def test_a_cycle_before_a_long_sleep_writes_the_heartbeat_so_its_age_stays_within_a_tick_interval(bench_factory,
                                                                                                  redis_client):
    """The heartbeat's age is what the exporter reports and what the key's TTL must cover: an idle loop sleeps
    a tick interval between its cycles, so a cycle followed by such a sleep must not skip the heartbeat because
    the previous one is a few seconds old (the age then climbed to a tick interval plus that gap)."""
    bench = _bench(bench_factory, "sqlite")
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0])
    sched.cycle()
    state = sched.sites["default"]
    key = heartbeat_key(state.ctx.bench.bench_id, sched.instance)
    clock[0] += timedelta(seconds=loop_mod.HEARTBEAT_EVERY - 1)  # a wake soon after (a retry, a config change)
    wait = sched.cycle()  # a full tick interval's sleep follows: the heartbeat is written now
    assert json.loads(redis_client.get(key))["at"] == clock[0].isoformat()
    clock[0] += timedelta(seconds=wait)  # the loop's next wake
    age = (clock[0] - datetime.fromisoformat(json.loads(redis_client.get(key))["at"])).total_seconds()
    assert age <= state.ctx.site.tick_interval < redis_client.ttl(key)
    # frequent cycles (the next wake within the gap) do not rewrite it each time: the value names every site
    written = json.loads(redis_client.get(key))["at"]
    soon = datetime.fromisoformat(written) + timedelta(seconds=1)
    sched._heartbeat(soon, None, wait=1.0)
    assert json.loads(redis_client.get(key))["at"] == written
    sched._heartbeat(soon, None, wait=float(state.ctx.site.tick_interval))  # unless a long sleep follows
    assert json.loads(redis_client.get(key))["at"] == soon.isoformat()
