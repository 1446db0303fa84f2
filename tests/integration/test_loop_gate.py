"""The change gate over PostgreSQL sites, one database each (real server, real Redis): an idle cycle probes no
site whose database has not been written since its last probe (and so opens no connection), a direct SQL edit in
one site's database is noticed at the next cycle that steps it, and without usable write counters every site
is probed as before (:mod:`hookscheduler.schedule.gate`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import peewee as pw
import pytest

from hookscheduler.broker.keys import last_tick_key
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.gate import FULL_PROBE_EVERY, ChangeGate
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog
from tests.conftest import PG_DSN
from tests.helpers import closing_sites, pg_admin_conn

T0 = datetime(2026, 1, 5, 10, 7)
N = 4


@pytest.fixture
def site_databases() -> Iterator[list[str]]:
    """``N`` databases of their own (the gate counts writes per database), dropped afterwards."""
    names = [f"hs_gate_{uuid.uuid4().hex[:8]}_{i}" for i in range(N)]
    admin = pg_admin_conn(PG_DSN)
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        yield [f"{PG_DSN.rsplit('/', 1)[0]}/{name}" for name in names]
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _flush(url: str, sql: str | None = None) -> None:
    """Run ``sql`` (if any) in the database, then flush the session's statistics now: PostgreSQL 15+ flushes a
    session's counts when it next goes idle, at most once a second unless forced (and before the client hears
    back from the statement that forced it)."""
    conn = pg_admin_conn(url)
    try:
        with conn.cursor() as cur:
            if sql:
                cur.execute(sql)
            cur.execute("SELECT pg_stat_force_next_flush()")
    finally:
        conn.close()


def _bench(bench_factory, urls: list[str]):
    names = [f"s{i}.example" for i in range(len(urls))]
    sites = {name: {"db_url": url} for name, url in zip(names, urls, strict=True)}
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres", sites=sites,
                               common={"scheduler_db_connections": 1, "scheduler_tick_interval": 60})
    for name in names:
        ctx = open_site(str(bench), name)
        db = ctx.database(create=True, require_schema=False)
        migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        ctx.close()
    for url in urls:
        _flush(url)
    return names, bench


class _Connects:
    """Counts the sites' connections opened (a spy on the real ``connect``: the server is real)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count, real = 0, dbmod.connect

        def counted(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(dbmod, "connect", counted)


def _settle(sched: Scheduler, clock: list[datetime]) -> None:
    """Cycles one tick interval apart until a cycle skips every site: our own setup's writes (migrate's, the
    first steps') reach the counters a moment after their sessions end. Bounded: three cycles."""
    for _ in range(3):
        clock[0] += timedelta(seconds=61)
        skipped = sched.gate.skipped
        sched.cycle(all_sites=False)
        if sched.gate.skipped - skipped == N:
            return
    raise AssertionError("the gate never skipped every idle site")


@contextmanager
def settled(bench_factory, urls: list[str]) -> Iterator[tuple[list[str], Path, Scheduler, list[datetime]]]:
    """A bench of one site per database in ``urls`` and a scheduler over it (``names, bench, sched, clock``) that
    has probed every site once and whose gate now skips them all; the sites' connections closed afterwards."""
    names, bench = _bench(bench_factory, urls)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    with closing_sites(sched):
        sched.cycle()  # the first cycle probes every site, and marks each against the reading taken before
        assert sorted(r.site for r in sched.results) == names and set(sched.gate.marks) == set(names)
        _settle(sched, clock)
        yield names, bench, sched, clock


@pytest.mark.postgres
def test_an_idle_cycle_opens_no_connection_and_a_direct_edit_is_noticed(bench_factory, redis_client,
                                                                        site_databases, monkeypatch):
    with settled(bench_factory, site_databases) as (names, bench, sched, clock):
        connects = _Connects(monkeypatch)
        bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
        for name in names:
            redis_client.delete(last_tick_key(bench_id, name))
        clock[0] += timedelta(seconds=61)
        sched.results.clear()
        sched.cycle(all_sites=False)
        assert sched.results == []  # no site probed ...
        assert connects.count == 0  # ... and no connection opened (the gate read on the one held)
        assert all(redis_client.get(last_tick_key(bench_id, name)) for name in names)  # yet every site stepped
        assert {s.next_due for s in sched.sites.values()} == {datetime(2026, 1, 5, 11)}

        # a direct SQL edit in one site's database: its job is due at 10:16, not 11:00
        edited = names[2]
        _flush(site_databases[2], "UPDATE scheduled_job_type SET next_execution = '2026-01-05 10:16:00'")
        clock[0] += timedelta(seconds=61)
        sched.cycle(all_sites=False)
        assert [r.site for r in sched.results] == [edited]  # noticed: that site alone probed
        assert sched.sites[edited].next_due == datetime(2026, 1, 5, 10, 16)
        sched.results.clear()
        clock[0] = datetime(2026, 1, 5, 10, 16, 0, 5000)
        sched.cycle(all_sites=False)
        assert [(r.site, r.fired) for r in sched.results] == [(edited, 1)]
        # belt and braces: every site is probed for real within FULL_PROBE_EVERY, whatever its count says
        sched.results.clear()
        clock[0] = max(m.probed_at for m in sched.gate.marks.values()) + timedelta(seconds=FULL_PROBE_EVERY)
        sched.cycle(all_sites=False)
        assert sorted(r.site for r in sched.results) == names
    ctx = open_site(str(bench), edited)
    ctx.database()
    assert [r.scheduled_for for r in ScheduledJobLog.select()] == [datetime(2026, 1, 5, 10, 16)]
    ctx.close()


def _no_counters(db):
    return None  # as with track_counts off (the store's contract test sets it for real)


def _denied(db):
    raise pw.ProgrammingError("permission denied for view pg_stat_database")


@pytest.mark.postgres
@pytest.mark.parametrize("read", [_no_counters, _denied])
def test_without_write_counters_every_site_is_probed_each_tick_interval(bench_factory, site_databases, read, caplog):
    names, bench = _bench(bench_factory, site_databases)
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True, gate=ChangeGate(read=read))
    with closing_sites(sched):
        with caplog.at_level(logging.INFO, logger="hookscheduler.schedule.gate"):
            sched.cycle()
            for _ in range(3):
                clock[0] += timedelta(seconds=61)
                sched.results.clear()
                sched.cycle(all_sites=False)
                assert sorted(r.site for r in sched.results) == names
        assert sched.gate.skipped == 0
        assert all(s.failures == 0 for s in sched.sites.values())
        assert len([r for r in caplog.records if "probing every PostgreSQL site" in r.getMessage()]) == 1  # once


@pytest.mark.postgres
def test_a_cycle_woken_by_an_announced_change_probes_every_site(bench_factory, site_databases):
    with settled(bench_factory, site_databases) as (names, _, sched, clock):
        clock[0] += timedelta(seconds=61)
        sched.results.clear()
        sched.cycle(all_sites=True)  # the CLI's writes may not have reached the counters yet
        assert sorted(r.site for r in sched.results) == names


@pytest.mark.postgres
def test_a_server_with_a_single_site_is_not_read(bench_factory, site_databases):
    """One site holds its connection between cycles: a reading would cost the round trip of the probe it saves."""
    names, bench = _bench(bench_factory, site_databases[:1])
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    with closing_sites(sched):
        sched.cycle()
        for _ in range(3):
            clock[0] += timedelta(seconds=61)
            sched.results.clear()
            sched.cycle(all_sites=False)
            assert [r.site for r in sched.results] == names
            assert sched.gate.readings == {}


@pytest.mark.postgres
def test_a_cycle_woken_for_a_slot_takes_no_reading_before_the_slots_pass(bench_factory, site_databases):
    with settled(bench_factory, site_databases) as (names, _, sched, clock):
        slot = (clock[0] + timedelta(seconds=91)).replace(microsecond=0)
        _flush(site_databases[0], f"UPDATE scheduled_job_type SET next_execution = '{slot.isoformat(sep=' ')}'")
        clock[0] += timedelta(seconds=61)
        sched.cycle(all_sites=False)  # every site's tick interval: site 0's edit noticed
        assert sched.sites[names[0]].next_due == slot
        sched.results.clear()
        clock[0] = slot + timedelta(milliseconds=5)
        sched.cycle(all_sites=False)  # woken for site 0's slot: the others' tick interval has not passed
        assert [(r.site, r.fired) for r in sched.results] == [(names[0], 1)]
        assert sched.gate.readings == {}  # no round trip for the gate between the slot and its pass
