"""Claim ahead, release at the slot (schedule/ahead.py) and I10, nothing is sent before its slot: the loop
commits a slot's claim and ledger rows before the slot and sends its runs at the slot, once; no other pass, of
this process or another, sends them earlier; a process killed while holding them leaves them to any pass at or
after the slot. Real Redis and both databases; every instant is passed in, nothing sleeps for a slot."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule import loop as loop_module
from hookscheduler.schedule.ahead import MIN_WINDOW, OWED_GRACE
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.reanchor import reanchor_if_calendar_changed
from hookscheduler.schedule.reconcile import reconcile_active
from hookscheduler.store.models import ScheduledJobLog

T0 = datetime(2026, 1, 5, 10, 7)
SLOT = datetime(2026, 1, 5, 11, 0)  # the hourly job's next slot
BEFORE = SLOT - timedelta(seconds=MIN_WINDOW / 2)  # inside the claim-ahead window of a slot of one site


def _migrated(bench_factory, db_kind, events=None, common=None):
    bench = bench_factory.make({"app1": events or {"hourly": ["app1.tasks.ok"]}}, db=db_kind, common=common)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    reanchor_if_calendar_changed(ctx, now=T0)
    ctx.close()
    return bench


def _scheduler(bench, clock):
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.cycle()  # its first cycle (at T0 + 20 min): every site stepped, its next slot known
    return sched


def _in_redis(bench) -> int:
    ctx = open_site(str(bench))
    conn = redis_for(ctx.site)
    return Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).count


def _rows(bench) -> list[ScheduledJobLog]:
    ctx = open_site(str(bench))
    ctx.database()
    rows = list(ScheduledJobLog.select())
    ctx.close()
    return rows


def test_the_cycle_before_the_slot_commits_the_claim_and_the_cycle_at_the_slot_sends_it_once(bench_factory, db_kind):
    bench = _migrated(bench_factory, db_kind)
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    assert sched.sites["default"].next_due == SLOT
    clock["now"] = BEFORE
    wait = sched.cycle()
    [row] = _rows(bench)  # decided and committed before the slot ...
    assert (row.scheduled_for, row.status, row.enqueued_at) == (SLOT, "queued", None)
    assert row.created_at == BEFORE  # stamped when it was claimed, not with the slot
    assert _in_redis(bench) == 0  # ... and nothing in Redis
    assert [len(h.runs) for h in sched.held] == [1]
    assert wait == pytest.approx((SLOT - BEFORE).total_seconds())  # the sleep ends at the release

    # another process, and any pass, before the slot: the held run is not theirs to send (I10)
    other = Scheduler(bench=str(bench), now_fn=lambda: SLOT - timedelta(microseconds=1))
    other.cycle()
    ctx = open_site(str(bench))
    assert run_pass(ctx, redis_for(ctx.site), now=SLOT - timedelta(microseconds=1)).sent_ids == []
    reconcile_active(ctx, redis_for(ctx.site), SLOT - timedelta(microseconds=1))  # not lost, not an orphan
    ctx.close()
    assert _in_redis(bench) == 0
    assert [(r.status, r.enqueued_at) for r in _rows(bench)] == [("queued", None)]
    # the other process wakes for it a grace after the slot (owed then; the holder releases it at the slot)
    assert other.sites["default"].next_due == SLOT + timedelta(seconds=OWED_GRACE)

    clock["now"] = SLOT + timedelta(microseconds=500)
    sched.cycle()  # released first thing
    assert _in_redis(bench) == 1 and not sched.held
    [row] = _rows(bench)
    assert row.status == "queued" and row.enqueued_at is not None  # stamped by Redis at the release
    other.now_fn = lambda: SLOT + timedelta(seconds=1)
    other.cycle()  # the other process's wake at the slot: already sent, nothing more
    sched.cycle()
    assert _in_redis(bench) == 1 and len(_rows(bench)) == 1


def test_a_process_killed_while_holding_leaves_the_runs_to_any_pass_at_the_slot_never_before(bench_factory,
                                                                                               db_kind):
    bench = _migrated(bench_factory, db_kind)
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    clock["now"] = BEFORE
    sched.cycle()
    assert sched.held
    for state in sched.sites.values():  # killed: no release, no drain; the claim is committed
        state.ctx.close()
    del sched

    later = {"now": SLOT - timedelta(microseconds=10)}  # its restart, or another process, before the slot
    other = Scheduler(bench=str(bench), now_fn=lambda: later["now"])
    wait = other.cycle()
    assert _in_redis(bench) == 0 and [r.enqueued_at for r in _rows(bench)] == [None]
    # it sleeps past the slot (the holder's release time), waking within the grace after it, not a tick later
    assert (SLOT - later["now"]).total_seconds() < wait <= (SLOT - later["now"]).total_seconds() + OWED_GRACE
    later["now"] = SLOT + timedelta(seconds=OWED_GRACE)  # then its pass's outbox sends it, once
    other.cycle(all_sites=False)
    assert _in_redis(bench) == 1
    assert [r.enqueued_at is not None for r in _rows(bench)] == [True]
    later["now"] = SLOT + timedelta(minutes=1)
    other.cycle()
    assert _in_redis(bench) == 1 and len(_rows(bench)) == 1


def test_a_slot_many_sites_share_is_claimed_further_ahead_and_zero_turns_claiming_ahead_off(bench_factory):
    bench = _migrated(bench_factory, "sqlite", common={"scheduler_claim_ahead": 0})
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    clock["now"] = SLOT - timedelta(seconds=30)
    assert sched.cycle() == pytest.approx(30.0)  # wakes at the slot itself, not MIN_WINDOW before
    clock["now"] = BEFORE
    sched.cycle()
    assert not sched.held and _rows(bench) == []  # claimed at its time, as before

    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["scheduler_claim_ahead"] = 1.5
    common.write_text(json.dumps(conf))
    sched.claim_cost = 10.0  # passes measured this slow: the window is the cap, 1.5 s
    clock["now"] = SLOT - timedelta(seconds=1.4)
    sched.refresh_sites()
    sched.cycle()
    assert [r.scheduled_for for r in _rows(bench)] == [SLOT] and sched.held and _in_redis(bench) == 0


def test_a_paused_site_is_not_claimed_ahead(bench_factory, db_kind):
    bench = _migrated(bench_factory, db_kind)
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["pause_scheduler"] = True
    common.write_text(json.dumps(conf))
    clock["now"] = BEFORE
    sched.cycle()  # the pause is read first; the pass ahead decides nothing while the site is inactive
    assert not sched.held and _rows(bench) == []


class _LoopTime:
    """The loop module's ``time``, on a clock of the test's: real seconds pass only when the loop sleeps (the drain's
    wait), so a test goes through a slot without waiting for it, and the scheduler's clock follows it
    (:meth:`now`: ``base`` plus the seconds slept)."""

    def __init__(self, base: datetime) -> None:
        self.base, self.t = base, 0.0

    def monotonic(self) -> float:
        return self.t

    perf_counter = monotonic

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def now(self) -> datetime:
        return self.base + timedelta(seconds=self.t)


def test_a_stop_waits_for_the_held_slot_then_sends_it(bench_factory, monkeypatch):
    """SIGTERM while holding: :meth:`Scheduler.drain` sends the held runs at their slot (a moment away), then
    returns. The loop's real time is the test's: it passes only as the drain waits."""
    bench = _migrated(bench_factory, "sqlite")
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    fake = _LoopTime(SLOT - timedelta(seconds=0.03))
    monkeypatch.setattr(loop_module, "time", fake)
    sched.now_fn = fake.now
    sched.cycle()
    assert sched.held and _in_redis(bench) == 0
    released: list[datetime] = []
    release = sched._release

    def spy(now, writes):
        if any(h.slot is not None and h.slot <= now for h in sched.held):
            released.append(now)
        release(now, writes)

    sched._release = spy  # type: ignore[method-assign]
    sched.drain()
    assert not sched.held and _in_redis(bench) == 1
    assert len(released) == 1 and SLOT <= released[0] < SLOT + timedelta(milliseconds=5)  # once, at the slot
    assert fake.t < 0.04  # and the drain returned right after it


def test_a_stop_while_the_clock_is_back_before_the_held_slot_leaves_the_runs_to_the_outbox(bench_factory,
                                                                                          monkeypatch, caplog):
    """SIGTERM while holding, the clock gone back an hour meanwhile: the drain waits no longer than the window
    (real time), sends nothing before the slot (I10), and leaves the runs in the outbox, logged; a pass at the slot
    sends them, once."""
    bench = _migrated(bench_factory, "sqlite")
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    clock["now"] = BEFORE
    sched.cycle()
    assert sched.held
    fake = _LoopTime(SLOT - timedelta(hours=1))
    monkeypatch.setattr(loop_module, "time", fake)
    sched.now_fn = fake.now
    with caplog.at_level(logging.WARNING, logger="hookscheduler.schedule.loop"):
        sched.drain()
    assert not sched.held and _in_redis(bench) == 0
    assert fake.t <= 2.0 + 0.05 + 0.01  # bounded by scheduler_claim_ahead (2 s) in real time, not by the hour
    assert any("claimed ahead of a slot the clock has not reached" in r.getMessage() for r in caplog.records)
    assert [(r.status, r.enqueued_at) for r in _rows(bench)] == [("queued", None)]  # in the outbox
    ctx = open_site(str(bench))
    assert run_pass(ctx, redis_for(ctx.site), now=SLOT - timedelta(milliseconds=1)).resent == 0  # not before
    assert run_pass(ctx, redis_for(ctx.site), now=SLOT + timedelta(milliseconds=1)).resent == 1
    ctx.close()
    assert _in_redis(bench) == 1


def test_holding_runs_observes_the_redis_epoch_so_the_release_does_not(bench_factory):
    """The epoch check (outbox.observe_epoch: one Redis round trip every 10 s before a send) is made when the
    runs are claimed ahead, off the path from the slot to the send; the release at the slot finds it fresh."""
    from hookscheduler.schedule import outbox

    bench = _migrated(bench_factory, "sqlite")
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    bench_id = sched.sites["default"].ctx.bench.bench_id
    outbox._epoch_checked.pop(bench_id, None)
    clock["now"] = BEFORE
    sched.cycle()
    assert sched.held and bench_id in outbox._epoch_checked  # checked while holding, before the slot
    checked = outbox._epoch_checked[bench_id]
    clock["now"] = SLOT
    sched.cycle()
    assert _in_redis(bench) == 1 and outbox._epoch_checked[bench_id] == checked  # the release did not check


def test_holding_runs_builds_their_payloads_so_the_release_only_sends_them(bench_factory, db_kind, monkeypatch):
    """The runs claimed ahead are built (pickled, compressed, packed) while they are held; the release at the slot
    builds nothing, sends them, and leaves nothing behind."""
    from hookscheduler.schedule import send

    bench = _migrated(bench_factory, db_kind)
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    clock["now"] = BEFORE
    sched.cycle()
    [held] = [run for h in sched.held for run in h.runs]
    assert held.rq_job_id in send._BUILT

    def no_build(self, run):
        raise AssertionError(f"{run.rq_job_id} built at the release")

    monkeypatch.setattr(send.HashBuilder, "own", no_build)
    clock["now"] = SLOT
    sched.cycle()
    assert _in_redis(bench) == 1 and held.rq_job_id not in send._BUILT
    [row] = _rows(bench)
    assert row.enqueued_at is not None


def _on_loop_time(bench_factory, monkeypatch):
    """A scheduler stepped once, then a moment before the slot on the loop's own clock (:class:`_LoopTime`)."""
    bench = _migrated(bench_factory, "sqlite")
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)
    fake = _LoopTime(BEFORE)
    monkeypatch.setattr(loop_module, "time", fake)
    sched.now_fn = fake.now
    return sched, fake


def test_the_claim_window_covers_the_whole_visit_of_a_site(bench_factory, monkeypatch):
    """The running cost that sizes the window is what claiming a site ahead costs the round, all of it (here a
    visit that spends 50 ms after its pass), not only its pass: measured short, the window closes too late and
    the round's last sites reach their slot unclaimed."""
    sched, fake = _on_loop_time(bench_factory, monkeypatch)
    used = sched._used

    def slow_used(state):
        fake.t += 0.05
        used(state)

    sched._used = slow_used  # type: ignore[method-assign]
    before = sched.claim_cost
    sched._claim_ahead({})
    assert sched.held
    assert sched.claim_cost == pytest.approx(0.7 * before + 0.3 * 0.05)


def test_a_failed_visit_does_not_stretch_the_claim_window(bench_factory, monkeypatch):
    """A claim ahead that fails (here after 5 s of a service not answering) backs its site off and leaves the
    running cost as it was: counted, it would put every slot's window at the cap for many visits."""
    import redis

    sched, fake = _on_loop_time(bench_factory, monkeypatch)
    state = sched.sites["default"]

    def failing(*args, **kwargs):
        fake.t += 5.0
        raise redis.exceptions.ConnectionError("Redis is not answering")

    monkeypatch.setattr(state.step, "claim_ahead", failing)
    before = sched.claim_cost
    sched._claim_ahead({})
    assert state.retry_at is not None and not sched.held
    assert sched.claim_cost == before


def test_runs_that_cannot_be_built_ahead_are_held_and_built_at_the_release(bench_factory, monkeypatch):
    """Building held runs ahead is an optimisation: when it fails, the claim ahead still succeeds (no back-off)
    and the release builds and sends the runs at the slot."""
    from hookscheduler.schedule import send

    bench = _migrated(bench_factory, "sqlite")
    clock = {"now": T0 + timedelta(minutes=20)}
    sched = _scheduler(bench, clock)

    def broken(*args, **kwargs):
        raise ValueError("no template")

    monkeypatch.setattr(send, "prebuild", broken)
    clock["now"] = BEFORE
    sched.cycle()
    assert sched.held and sched.sites["default"].retry_at is None
    clock["now"] = SLOT
    sched.cycle()
    assert _in_redis(bench) == 1 and [r.status for r in _rows(bench)] == ["queued"]
