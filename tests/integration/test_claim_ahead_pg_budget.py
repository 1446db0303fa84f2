"""Claim ahead past the PostgreSQL connection budget: a site whose connection the budget closed is visited once per
slot (its claim ahead), not also at the release to mark its runs sent nor at its tick interval for a step; the
marks it owes are written first thing at its next visit, before its pass, so nothing is sent twice by this process,
and a stop marks what it still owes. A long round of claims stops at an earlier slot. A fresh connection runs the
pass's statements plainly the first time and prepares them at their second use. Real Redis and PostgreSQL; every
instant is passed in, nothing sleeps for a slot."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.broker.keys import last_tick_key, queue_name
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule import loop as loop_module
from hookscheduler.schedule import outbox
from hookscheduler.schedule.ahead import MIN_WINDOW
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog

T0 = datetime(2026, 1, 5, 10, 7)
SLOT = datetime(2026, 1, 5, 11, 0)
NEXT = datetime(2026, 1, 5, 12, 0)
#: the runs stay queued (no worker): each slot fires all the same, and the sweep has active runs to reconcile
HOOKS = {"cron": {"0 * * * *": [{"method": "app1.tasks.ok", "overlap": "allow"}]}}
EARLY = timedelta(seconds=MIN_WINDOW / 4)  # inside the window of a slot few sites share


def _sites(bench_factory, n: int, common: dict | None = None):
    names = [f"s{i}.example" for i in range(n)]
    sites = {name: {"db_url": bench_factory.pg_url()} for name in names}
    bench = bench_factory.make({"app1": HOOKS}, db="postgres", sites=sites,
                               common={"scheduler_db_connections": 1, **(common or {})})
    for name in names:
        ctx = open_site(str(bench), name)
        migrate_site(ctx.database(create=True, require_schema=False), ctx.name,
                     load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        ctx.close()
    clock = [T0 + timedelta(minutes=1)]
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock[0], keep_results=True)
    sched.cycle()
    return names, bench, clock, sched


def _rows(bench, name: str) -> list[ScheduledJobLog]:
    ctx = open_site(str(bench), name)
    ctx.database()
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.scheduled_for))
    ctx.close()
    return rows


def _close(sched: Scheduler) -> None:
    for state in sched.sites.values():
        state.ctx.close()


@pytest.mark.postgres
def test_a_site_past_the_budget_is_marked_sent_at_its_next_claim_ahead_before_its_pass(bench_factory, redis_client,
                                                                                       monkeypatch):
    names, bench, clock, sched = _sites(bench_factory, 3)
    try:
        clock[0] = SLOT - EARLY
        sched.cycle(all_sites=False)
        assert sorted(h.state.ctx.name for h in sched.held) == names
        connects: list[str] = []
        real_connect = dbmod.connect
        monkeypatch.setattr(dbmod, "connect",
                            lambda url, *a, **k: (connects.append(url), real_connect(url, *a, **k))[1])
        sends: list[int] = []
        real_send = outbox.send.send_runs
        monkeypatch.setattr(outbox.send, "send_runs",
                            lambda conn, bench_id, runs, **t: (sends.append(len(runs)), real_send(conn, bench_id,
                                                                                                   runs, **t))[1])
        clock[0] = SLOT + timedelta(microseconds=500)
        sched.cycle(all_sites=False)  # the release: one round trip, no connection opened to mark
        assert sends == [3] and connects == []
        bench_id = next(iter(sched.sites.values())).ctx.bench.bench_id
        assert redis_client.llen(f"rq:queue:{queue_name(bench_id, 'default')}") == 3
        owing = sorted(s.ctx.name for s in sched.sites.values() if s.unmarked)
        open_now = [s.ctx.name for s in sched.sites.values() if s.ctx.is_open]
        assert len(open_now) == 1 and owing == sorted(set(names) - set(open_now))  # the open one marked at once
        for name in owing:
            assert [r.enqueued_at for r in _rows(bench, name)] == [None]  # sent, mark owed
        stamps = {name: [r.enqueued_at for r in _rows(bench, name)] for name in open_now}

        # the next slot's claim ahead: one connection per site, the owed marks first, nothing sent again
        sends.clear()
        connects.clear()
        clock[0] = NEXT - EARLY
        sched.results.clear()
        sched.cycle(all_sites=False)  # an hour on: past every site's tick interval, yet no step besides the claim
        assert sorted(h.state.ctx.name for h in sched.held) == names
        assert sends == [] and sum(r.resent for r in sched.results) == 0
        assert len(connects) == len(names)  # the claim visits only (the budget reopens each site once)
        assert not any(s.unmarked for s in sched.sites.values())
        for name in names:
            first, second = _rows(bench, name)
            assert first.scheduled_for == SLOT and first.enqueued_at is not None
            assert (second.scheduled_for, second.enqueued_at) == (NEXT, None)
        assert {n: [r.enqueued_at for r in _rows(bench, n)][:1] for n in open_now} == stamps
        # the claim counted as the sites' step: their last tick is the claim's instant, not the slot's
        assert all(redis_client.get(last_tick_key(bench_id, n)).decode() == (NEXT - EARLY).isoformat()
                   for n in names)
    finally:
        _close(sched)


def _claim_then_release(sched, clock) -> None:
    """A cycle that claims the slot ahead, then the cycle at the slot that releases it."""
    clock[0] = SLOT - EARLY
    sched.cycle(all_sites=False)
    clock[0] = SLOT + timedelta(microseconds=500)
    sched.cycle(all_sites=False)


@pytest.mark.postgres
def test_a_stop_marks_the_released_runs_it_still_owes(bench_factory):
    names, bench, clock, sched = _sites(bench_factory, 3)
    try:
        _claim_then_release(sched, clock)
        assert sum(bool(s.unmarked) for s in sched.sites.values()) == 2
        sched.stop()
        sched.run()  # stops at once: the drain, then the owed marks
        assert not any(s.unmarked for s in sched.sites.values())
        assert all(r.enqueued_at is not None for n in names for r in _rows(bench, n))
    finally:
        _close(sched)


@pytest.mark.postgres
def test_a_stop_out_of_time_leaves_the_owed_marks_to_the_outbox(bench_factory, monkeypatch, caplog):
    names, bench, clock, sched = _sites(bench_factory, 3)
    try:
        _claim_then_release(sched, clock)
        monkeypatch.setattr(loop_module, "MARK_ON_STOP", 0.0)
        sched.stop()
        with caplog.at_level("INFO", logger="hookscheduler.schedule.loop"):
            sched.run()
        assert "2 sent run(s) not marked sent" in caplog.text
        assert sum(r.enqueued_at is None for n in names for r in _rows(bench, n)) == 2
        # any later pass finds them in the outbox and sends them again: RQ stores each once (I4)
        later = Scheduler(bench=str(bench), now_fn=lambda: SLOT + timedelta(seconds=5))
        later.cycle()
        _close(later)
        assert all(r.enqueued_at is not None for n in names for r in _rows(bench, n))
    finally:
        _close(sched)


@pytest.mark.postgres
def test_a_round_of_claims_stops_when_an_earlier_held_slot_comes(bench_factory, monkeypatch):
    _names, _bench, clock, sched = _sites(bench_factory, 3, common={"scheduler_claim_ahead": 60})
    try:
        clock[0] = SLOT - EARLY
        sched.cycle(all_sites=False)
        first = sched.held[0].state.ctx.name
        sched.held = sched.held[:1]  # one site holds the slot; the two others' next slot is a little later
        for state in sched.sites.values():
            if state.ctx.name != first:
                state.next_due = SLOT + timedelta(seconds=30)
        sched.claim_cost = 20.0  # a long window (60 s, the cap): both are candidates a second before the held slot
        claimed: list[str] = []
        monkeypatch.setattr(sched, "_step_ahead", lambda state, slot, at, writes: claimed.append(state.ctx.name))
        instants = iter([SLOT - timedelta(seconds=1)] * 2 + [SLOT + timedelta(microseconds=1)] * 5)
        sched.now_fn = lambda: next(instants)  # the first claim takes the clock past the held slot
        sched._claim_ahead({})
        assert len(claimed) == 1  # the round stops there: the next cycle releases the held slot at once
    finally:
        _close(sched)


@pytest.mark.postgres
def test_a_fresh_connection_prepares_a_statement_at_its_second_use_not_its_first(bench_factory):
    from hookscheduler.store import store_for

    names, bench, _clock, sched = _sites(bench_factory, 1)
    _close(sched)
    ctx = open_site(str(bench), names[0])
    try:
        db = ctx.database()
        sent: list[str] = []
        real = db.execute_sql
        db.execute_sql = lambda sql, *a, **k: (sent.append(sql.split()[0]), real(sql, *a, **k))[1]
        store = store_for(db)
        probes = [store.probe() for _ in range(3)]
        assert sent == ["SELECT", "PREPARE", "EXECUTE", "EXECUTE"]  # plain, then prepared once, then executed
        assert probes[0] == probes[1] == probes[2]
        sent.clear()
        for _ in range(3):
            with store.transaction():
                store.select_due(SLOT, 10)
        assert [s for s in sent if s in ("WITH", "PREPARE", "EXECUTE")] == ["WITH", "PREPARE", "EXECUTE", "EXECUTE"]
    finally:
        ctx.close()
