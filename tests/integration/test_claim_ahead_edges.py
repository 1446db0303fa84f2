"""Claim ahead at its edges: what a slot claimed a moment before its time must still get right (the overlap
check of a job whose stop ends inside the window, a site whose database changes while its runs are held).
Real Redis and both databases; every instant is passed in, nothing sleeps for a slot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.exceptions import ServiceUnavailable
from hookscheduler.ops import backfill as bf
from hookscheduler.ops import manual
from hookscheduler.ops.jobs import set_stopped
from hookscheduler.schedule import claim as claim_module
from hookscheduler.schedule import step as step_module
from hookscheduler.schedule.ahead import MIN_WINDOW
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.reanchor import reanchor_if_calendar_changed
from hookscheduler.store.models import ScheduledJobLog
from tests.helpers import closing_sites

T0 = datetime(2026, 1, 5, 10, 7)
SLOT = datetime(2026, 1, 5, 11, 0)  # the hourly job's next slot
NEXT = SLOT + timedelta(hours=1)
AHEAD = timedelta(seconds=MIN_WINDOW / 2)  # inside the claim-ahead window of a slot of one site


def _migrate(bench, site=None):
    ctx = open_site(str(bench), site)
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    reanchor_if_calendar_changed(ctx, now=T0)
    ctx.close()


def _rows(bench, site=None) -> list[tuple[datetime, str, bool]]:
    ctx = open_site(str(bench), site)
    ctx.database()
    rows = [(r.scheduled_for, r.status, r.enqueued_at is not None)
            for r in ScheduledJobLog.select().order_by(ScheduledJobLog.id)]
    ctx.close()
    return rows


@contextmanager
def _scheduling(bench: Path) -> Iterator[tuple[Scheduler, dict[str, datetime]]]:
    """A scheduler over the bench on a clock of the test's (``clock["now"]``), its first cycle run at 10:27 (the
    hourly job's 11:00 slot learnt); its sites' databases closed afterwards."""
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    with closing_sites(sched):
        sched.cycle()
        yield sched, clock


def _in_redis(bench) -> int:
    ctx = open_site(str(bench))
    return Queue(queue_name(ctx.bench.bench_id, "default"), connection=redis_for(ctx.site)).count


def test_a_stop_that_ends_inside_the_window_still_has_its_slot_judged_for_overlap(bench_factory, db_kind):
    """``jobs disable --until T`` with T the job's next slot, its previous run still queued (overlap ``skip``):
    the pass ahead runs before T, when the job is still stopped, but decides the slot as of T, when it is not. The
    overlap check must be made for the instant decided about: the slot is skipped, not a second run sent."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    _migrate(bench)
    with _scheduling(bench) as (sched, clock):
        clock["now"] = SLOT + timedelta(milliseconds=1)
        sched.cycle()  # 11:00 sent; no worker: it stays queued in RQ, so it blocks the next slot (overlap skip)
        assert _rows(bench) == [(SLOT, "queued", True)] and _in_redis(bench) == 1
        ctx = open_site(str(bench))
        set_stopped(ctx.database(), "app1.tasks.ok", True, until=NEXT, now=SLOT + timedelta(minutes=1))
        ctx.close()
        clock["now"] = NEXT - AHEAD
        sched.cycle(all_sites=False)  # the pass ahead of 12:00, at 11:59:59.95: stopped now, not at the slot
        clock["now"] = NEXT + timedelta(milliseconds=1)
        sched.cycle(all_sites=False)
        assert _rows(bench) == [(SLOT, "queued", True), (NEXT, "skipped", False)]
        assert _in_redis(bench) == 1


def _write_conf(path, **values):
    conf = json.loads(path.read_text()) if path.exists() else {}
    conf.update(values)
    path.write_text(json.dumps(conf))


def test_runs_held_for_a_site_whose_database_is_repointed_are_marked_sent_where_they_were_claimed(bench_factory):
    """A site's ``db_url`` changes between the claim ahead and the slot (the config is re-read by a cycle in
    between): the held runs are claimed in the old database, so they must be marked sent there, not looked for in
    the new one (which never had them); else the old database keeps an outbox row that any pass serving it sends
    again (a second delivery, or a run stuck "about to be sent" for doctor and the overlap check)."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"s1.example": {}})
    _migrate(bench, "s1.example")
    other = bench / "other.db"
    with _scheduling(bench) as (sched, clock):
        clock["now"] = SLOT - AHEAD
        sched.cycle(all_sites=False)
        assert sched.held
        old_ctx = sched.sites["s1.example"].ctx
        old_url = old_ctx.site.db_url
        _write_conf(bench / "sites" / "s1.example" / "site_config.json", db_url=f"sqlite:///{other}")
        _migrate(bench, "s1.example")  # the new database, migrated
        clock["now"] = SLOT - AHEAD / 2
        sched.cycle(all_sites=False)  # re-reads the config: the site now points at the other database
        assert sched.sites["s1.example"].ctx.site.db_url != old_url and sched.held
        clock["now"] = SLOT + timedelta(milliseconds=1)
        sched.cycle(all_sites=False)
        assert _in_redis(bench) == 1
    _write_conf(bench / "sites" / "s1.example" / "site_config.json", db_url=old_url)
    assert _rows(bench, "s1.example") == [(SLOT, "queued", True)]  # sent, and marked so where it was claimed


def test_runs_held_for_a_site_removed_from_the_bench_are_sent_and_leave_nothing_open(bench_factory):
    """A site removed from the bench (its folder gone) between the claim ahead and the slot: its runs were
    decided and committed while it was configured, so they are sent at the slot and marked sent; its database
    is not left open by the loop (no longer one of its sites, nothing would ever close it)."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    for site in ("s1.example", "s2.example"):  # each database outside its site's folder (it stays when that goes)
        (bench / "sites" / site).mkdir()
        _write_conf(bench / "sites" / site / "site_config.json", db_url=f"sqlite:///{bench / site}.db")
    for site in ("s1.example", "s2.example"):
        _migrate(bench, site)
    with _scheduling(bench) as (sched, clock):
        clock["now"] = SLOT - AHEAD
        sched.cycle(all_sites=False)
        assert {h.state.ctx.name for h in sched.held} == {"s1.example", "s2.example"}
        gone = sched.sites["s2.example"]
        (bench / "sites" / "s2.example").rename(bench / "s2.example.away")
        clock["now"] = SLOT - AHEAD / 2
        sched.cycle(all_sites=False)
        assert "s2.example" not in sched.sites
        clock["now"] = SLOT + timedelta(milliseconds=1)
        sched.cycle(all_sites=False)
        assert not sched.held
        assert "s2.example" not in sched.open_lru and not gone.ctx.is_open
    (bench / "s2.example.away").rename(bench / "sites" / "s2.example")
    assert _rows(bench, "s2.example") == [(SLOT, "queued", True)]


def test_two_processes_claiming_ahead_the_same_slot_send_it_once_and_not_before(bench_factory, db_kind):
    """Two ``schedule`` processes over one site, both inside the window of its slot: one claims it (the
    compare-and-set), the other finds it claimed and only learns that it is owed at the slot; at the slot both
    may send it (the holder's release, the other's outbox), RQ stores it once and the ledger has one row."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    _migrate(bench)
    clocks = [{"now": T0 + timedelta(minutes=20)}, {"now": T0 + timedelta(minutes=20)}]
    procs = [Scheduler(bench=str(bench), now_fn=lambda c=c: c["now"], offset=0.0) for c in clocks]
    with closing_sites(*procs):
        for sched in procs:
            sched.cycle()
        for i, sched in enumerate(procs):
            clocks[i]["now"] = SLOT - AHEAD + timedelta(milliseconds=i)
            sched.cycle(all_sites=False)
        assert sum(len(h.runs) for s in procs for h in s.held) == 2  # each run held by one process
        assert _in_redis(bench) == 0
        for i, sched in enumerate(reversed(procs)):  # the one not holding first: its outbox pass at the slot
            clocks[1 - i]["now"] = SLOT + timedelta(milliseconds=1 + i)
            sched.cycle(all_sites=False)
        assert not any(s.held for s in procs)
        assert _in_redis(bench) == 2
        assert sorted(_rows(bench)) == [(SLOT, "queued", True)] * 2


def test_a_process_that_lost_the_claim_ahead_wakes_at_the_slot_for_the_winners_held_runs(bench_factory, db_kind,
                                                                                          monkeypatch):
    """Two processes claim a slot of two sites ahead at once: the loser's probe of s1 sees the job due, then the
    winner claims the slot of both sites, commits and holds the runs, then the loser's selection finds nothing due.
    The loser's pass moved no slot, but s1 owes a run at the slot (the winner's outbox row): if the winner is killed
    before the slot, the loser must wake at the slot and send it (I10's promise for a killed holder), not leave it
    to its next tick interval, a minute later."""
    sites = ("s1.example", "s2.example")
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind, sites={s: {} for s in sites})
    for site in sites:
        _migrate(bench, site)
    clocks = [{"now": T0 + timedelta(minutes=20)}, {"now": T0 + timedelta(minutes=20)}]
    winner, loser = (Scheduler(bench=str(bench), now_fn=lambda c=c: c["now"], offset=0.0) for c in clocks)
    real_store_for, real_run_pass, raced, ahead = claim_module.store_for, step_module.run_pass, [], [False]

    def noting_run_pass(*args, **kwargs):
        ahead[0] = kwargs.get("ahead_of") is not None
        return real_run_pass(*args, **kwargs)

    def racing_store_for(db):  # the loser's probe, then the winner's whole claim ahead, then the loser goes on
        store = real_store_for(db)
        if ahead[0] and not raced and db is loser.sites["s1.example"].ctx.database():
            probe = store.probe

            def probed():
                answer = probe()
                raced.append(1)
                clocks[0]["now"] = SLOT - AHEAD
                winner.cycle(all_sites=False)  # claims the slot of both sites ahead, commits, holds the runs
                return answer

            store.probe = probed
        return store

    with closing_sites(winner, loser):
        winner.cycle()
        loser.cycle()
        clocks[1]["now"] = SLOT - AHEAD + timedelta(milliseconds=1)
        monkeypatch.setattr(claim_module, "store_for", racing_store_for)
        monkeypatch.setattr(step_module, "run_pass", noting_run_pass)
        loser.cycle(all_sites=False)  # its pass ahead of s1's slot is the one the winner overtakes
        monkeypatch.setattr(claim_module, "store_for", real_store_for)
        monkeypatch.setattr(step_module, "run_pass", real_run_pass)
        assert raced and sum(len(h.runs) for h in winner.held) == 2 and not loser.held
        assert {n: s.next_due for n, s in loser.sites.items()} == dict.fromkeys(sites, SLOT)  # wakes for both
        winner.held.clear()  # killed before the slot: its runs are committed outbox rows, unsent
        clocks[1]["now"] = SLOT + timedelta(milliseconds=1)
        loser.cycle(all_sites=False)
    for site in sites:
        assert _rows(bench, site) == [(SLOT, "queued", True)], site  # sent at the slot by the survivor


def test_i10_holds_up_no_backfill_or_manual_run_recorded_while_redis_was_down(bench_factory, db_kind):
    """Runs on request recorded while Redis was down wait in the outbox; their ``scheduled_for`` is a past slot
    (a backfill) or the moment they were asked for (``jobs run``), so the first pass after that moment sends them,
    well before the job's next slot: I10 keeps only runs claimed ahead of their slot waiting."""
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.ok", "name": "hourly-ok",
                                                     "catchup": "skip", "overlap": "allow"}]}}, db=db_kind)
    _migrate(bench)
    ctx = open_site(str(bench))
    conn = redis_for(ctx.site)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 5))  # 11:00 and 12:00 missed, 13:00 sent: next 14:00
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    asked = datetime(2026, 1, 5, 13, 20)
    with pytest.raises(ServiceUnavailable):
        bf.backfill(ctx, dead, "hourly-ok", datetime(2026, 1, 5, 11), datetime(2026, 1, 5, 12), now=asked)
    with pytest.raises(ServiceUnavailable):
        manual.run_job(ctx, dead, "hourly-ok", now=asked)
    result = run_pass(ctx, conn, now=asked + timedelta(milliseconds=1))
    assert result.resent == 2 and result.due == 0
    ctx.close()
    assert [(s, st, sent) for s, st, sent in _rows(bench) if st == "queued"] == [
        (datetime(2026, 1, 5, 13), "queued", True), (datetime(2026, 1, 5, 12), "queued", True),
        (asked, "queued", True)]
