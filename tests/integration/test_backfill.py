"""``jobs backfill``: past slots no run served, run exactly once per slot, even against concurrent backfills
and schedulers; bad input refused in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler.broker.keys import queue_name
from hookscheduler.ops import backfill as bf
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, utcnow
from tests.helpers import drain, env_for, read_out
from tests.integration.opcli_support import assert_one_line_error, migrated, run

T0 = datetime(2026, 1, 5, 0, 30)  # migrate here: the hourly job's first slot is 01:00
H = timedelta(hours=1)
HOURLY_SKIP = {"app1": {"hourly": [{"method": "app1.tasks.ok", "name": "hourly-ok", "catchup": "skip",
                                   "overlap": "allow"}]}}


def _at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 1, 5, hour, minute, second)


def _runs(job: str = "hourly-ok") -> list[ScheduledJobLog]:
    return list(ScheduledJobLog.select().where((ScheduledJobLog.job_name == job)
                                               & ScheduledJobLog.status.in_(bf.RAN)).order_by(ScheduledJobLog.id))


def _history(bench_factory, db_kind):
    """01:00 runs on time; at 04:00 the 02:00 and 03:00 slots are recorded missed (catchup=skip) and 04:00 runs;
    the job's next slot is 05:00."""
    bench = bench_factory.make(HOURLY_SKIP, db=db_kind)
    ctx, conn = migrated(bench, T0)
    assert run_pass(ctx, conn, now=_at(1, 0, 5)).fired == 1
    r = run_pass(ctx, conn, now=_at(4, 0, 5))
    assert (r.fired, r.missed) == (1, 2)
    return bench, ctx, conn


def test_backfill_runs_each_unserved_past_slot_once_and_a_repeat_runs_nothing(bench_factory, db_kind):
    bench, ctx, conn = _history(bench_factory, db_kind)
    result = bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(6), policy="all", now=_at(6, 30))
    # 00:00 (before the job existed), 02:00 and 03:00 (missed); 01:00 and 04:00 ran; 05:00 and 06:00 are the
    # scheduler's (its next slot is 05:00: the catch-up policy decides them)
    assert [r.scheduled_for for r in result.runs] == [_at(0), _at(2), _at(3)]
    assert (result.in_range, result.already_ran, result.left_to_scheduler) == (7, 2, 2)
    rows = [r for r in _runs() if r.trigger == "backfill"]
    assert [(r.scheduled_for, r.status, r.slots) for r in rows] == [(_at(h), "queued", 1) for h in (0, 2, 3)]
    assert all(r.enqueued_at is not None and "backfill by" in r.reason for r in rows)
    again = bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(6), policy="all", now=_at(6, 30))
    assert (again.runs, again.already_ran) == ([], 5)
    drain(ctx.bench.bench_id, conn)
    out = [o for o in read_out(bench) if o["trigger"] == "backfill"]
    assert sorted(o["slot"] for o in out) == [_at(h).isoformat() for h in (0, 2, 3)]
    ctx.database()
    assert {r.status for r in _runs() if r.trigger == "backfill"} == {"complete"}


def test_backfill_once_sends_one_run_covering_every_slot(bench_factory, db_kind):
    _bench, ctx, conn = _history(bench_factory, db_kind)
    result = bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(4), now=_at(6, 30))
    assert [(r.first_slot, r.last_slot, r.slots) for r in result.runs] == [(_at(0), _at(3), 3)]
    row = ScheduledJobLog.get(ScheduledJobLog.trigger == "backfill")
    assert (row.first_slot, row.last_slot, row.slots, row.scheduled_for) == (_at(0), _at(3), 3, _at(3))
    # the run's stretch (00:00 .. 03:00) counts as served: nothing is left, whatever the policy
    assert bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(4), policy="all", now=_at(6, 30)).runs == []
    q = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn)
    assert row.rq_job_id in q.job_ids


def test_backfill_cap_needs_yes_and_a_dry_run_writes_nothing(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"cron": {"* * * * *": [{"method": "app1.tasks.ok", "name": "minutely"}]}}},
                               db=db_kind)
    ctx, conn = migrated(bench, _at(12))
    start, end, now = _at(9), _at(11), _at(11, 30)  # 121 minutes before the job existed
    dry = bf.backfill(ctx, conn, "minutely", start, end, policy="all", dry_run=True, now=now)
    assert (len(dry.eligible), dry.runs) == (121, [])
    with pytest.raises(bf.BackfillRefused, match=r"121 runs, more than 100: pass --yes"):
        bf.backfill(ctx, conn, "minutely", start, end, policy="all", now=now)
    with pytest.raises(bf.BackfillRefused, match=r"one run covering 121 slots"):
        bf.backfill(ctx, conn, "minutely", start, end, now=now)
    assert ScheduledJobLog.select().count() == 0
    assert len(bf.backfill(ctx, conn, "minutely", start, end, policy="all", confirmed=True, now=now).runs) == 121
    with pytest.raises(bf.BackfillRefused, match="more than 10000 slots"):
        bf.backfill(ctx, conn, "minutely", _at(0) - 7 * 24 * H, end, confirmed=True, now=now)


def test_backfill_refuses_future_reversed_removed_and_stopped(bench_factory, db_kind):
    _bench, ctx, conn = _history(bench_factory, db_kind)
    with pytest.raises(bf.BadInput, match="in the future"):
        bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(7), now=_at(6, 30))
    with pytest.raises(bf.BadInput, match="is after --to"):
        bf.backfill(ctx, conn, "hourly-ok", _at(3), _at(1), now=_at(6, 30))
    with pytest.raises(bf.BadInput, match="--policy 'twice'"):
        bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(1), policy="twice", now=_at(6, 30))
    from hookscheduler.ops.jobs import set_stopped

    set_stopped(ctx.database(), "hourly-ok", True, "broken")
    with pytest.raises(bf.HookSchedulerError, match="is stopped; pass --force"):
        bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(1), now=_at(6, 30))
    assert len(bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(1), force=True, now=_at(6, 30)).runs) == 1


def test_backfill_cli_and_its_one_line_errors(bench_factory, db_kind):
    now = utcnow().replace(microsecond=0)  # the CLI reads the real clock
    bench = bench_factory.make(HOURLY_SKIP, db=db_kind)
    migrated(bench, now)
    frm, to = (now - 5 * H).isoformat() + "Z", (now - 3 * H).isoformat() + "Z"
    r = run(bench, "jobs", "backfill", "hourly-ok", "--from", frm, "--to", to, "--dry-run")
    assert r.code == 0, r.err
    assert "2 to backfill" in r.out and r.out.count("would run") == 2
    r = run(bench, "jobs", "backfill", "hourly-ok", "--from", frm, "--to", to, "--policy", "all", "--format", "json")
    assert r.code == 0, r.err
    data = r.json()
    assert (len(data["runs"]), data["policy"], data["already_ran"]) == (2, "all", 0)
    # every time in UTC with its Z, as `jobs history -f json` writes them
    times = [data["from"], data["to"], *data["eligible"],
             *(run_[k] for run_ in data["runs"] for k in ("scheduled_for", "first_slot", "last_slot"))]
    assert times and all(t.endswith("Z") for t in times), times
    r = run(bench, "jobs", "backfill", "hourly-ok", "--from", frm, "--to", to)
    assert r.code == 0 and "0 to backfill" in r.out, r.err
    assert_one_line_error(run(bench, "jobs", "backfill", "hourly-ok", "--from", "2h", "--to", "+1h"), 2,
                          "in the future")
    assert_one_line_error(run(bench, "jobs", "backfill", "hourly-ok", "--from", "1h", "--to", "3h"), 2,
                          "is after --to")
    assert_one_line_error(run(bench, "jobs", "backfill", "hourly-ok", "--from", "yesterdayish", "--to", "1h"), 2,
                          "cannot read the --from")
    assert_one_line_error(run(bench, "jobs", "backfill", "nope", "--from", "3h", "--to", "1h"), 1, "not found")
    assert_one_line_error(run(bench, "jobs", "backfill", "hourly-ok", "--from", "1000h", "--to", "1h",
                              "--policy", "all"), 2, "pass --yes")
    r = run(bench, "jobs", "backfill", "hourly-ok", "--from", "3h", "--to", "1h", "--policy", "sometimes")
    assert r.code == 2 and "sometimes" in r.err


_BACKFILL_PROC = """
import sys, time
from datetime import datetime
from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.ops.backfill import backfill
ctx = open_site(sys.argv[1])
conn = redis_for(ctx.site)
start, end, now = (datetime.fromisoformat(a) for a in sys.argv[2:5])
while time.time() < float(sys.argv[5]):
    time.sleep(0.002)
sent = 0
for _ in range(4):
    sent += len(backfill(ctx, conn, "hourly-ok", start, end, policy="all", now=now).runs)
print(sent)
"""


@pytest.mark.slow
def test_concurrent_backfills_and_schedulers_run_each_slot_exactly_once(bench_factory, db_kind):
    bench = bench_factory.make(HOURLY_SKIP, db=db_kind)
    ctx, conn = migrated(bench, T0)
    start_at = str(time.time() + 3)  # a shared start line after every interpreter has started
    env = env_for(bench, HS_START_AT=start_at)
    args = [str(bench), _at(0).isoformat(), _at(10).isoformat(), _at(10, 30).isoformat(), start_at]
    fills = [subprocess.Popen([sys.executable, "-c", _BACKFILL_PROC, *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    # two schedulers race the backfills: a pass at 06:00:05 records 01:00-05:00 missed and runs 06:00
    ticks = [subprocess.Popen([sys.executable, "-m", "tests.tick_driver", str(bench), _at(6, 0, 5).isoformat(),
                               "3600", "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in fills + ticks:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # a pass that found the row locked by a backfill skipped it (SKIP LOCKED): the slot waits for the next pass;
    # whatever the order, one more pass and one more backfill leave every slot served by exactly one run
    run_pass(ctx, conn, now=_at(10, 0, 5))
    bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(10), policy="all", now=_at(10, 30))
    ctx.database()
    runs = _runs()
    per_slot = Counter(r.scheduled_for for r in runs)
    assert per_slot == Counter({_at(h): 1 for h in range(11)}), per_slot
    assert all(r.slots == 1 for r in runs)
    # Redis may hold more than 11 jobs: a claim another process's clock found late (I11) was settled missed and
    # backfilled under the slot's next id, while its claimer still sent it; the worker refuses that one at its
    # start. What counts is what runs: each slot once.
    q = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn)
    assert len(q.job_ids) >= 11
    drain(ctx.bench.bench_id, conn)
    executed = Counter(e["slot"] for e in read_out(bench) if e["task"] == "ok")
    assert executed == Counter({_at(h).isoformat(): 1 for h in range(11)}), executed



def test_backfill_of_an_all_job_finds_its_grid_slots_in_the_past(bench_factory, db_kind):
    """``all`` slots lie on the grid through the row's next slot: backfill steps that grid back into the range
    (it used to find none, say "0 slot(s)" and exit 0), and the slot cap applies to them too."""
    from hookscheduler.store.models import ScheduledJobType

    bench = bench_factory.make({"app1": {"all": ["app1.tasks.ok"]}}, db=db_kind,
                               common={"scheduler_tick_interval": 60})
    ctx, conn = migrated(bench, T0)
    ctx.database()
    anchor = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").next_execution
    minute = timedelta(minutes=1)
    dry = bf.backfill(ctx, conn, "app1.tasks.ok", anchor - 10 * minute, anchor - minute, policy="all",
                      now=anchor, dry_run=True)
    assert dry.in_range == 10 and dry.eligible == [anchor - m * minute for m in range(10, 0, -1)]
    with pytest.raises(bf.BackfillRefused, match="more than"):  # 20,000 minutes: over the slot limit
        bf.backfill(ctx, conn, "app1.tasks.ok", anchor - 20_000 * minute, anchor - minute, policy="all", now=anchor,
                    dry_run=True)


def test_backfill_without_redis_is_refused_before_anything_is_written(bench_factory, db_kind):
    _bench, ctx, _conn = _history(bench_factory, db_kind)
    before = ScheduledJobLog.select().count()
    with pytest.raises(bf.BadInput, match="needs Redis"):
        bf.backfill(ctx, None, "hourly-ok", _at(0), _at(3), policy="all", now=_at(6, 30))
    ctx.database()
    assert ScheduledJobLog.select().count() == before  # no run recorded that could not be sent
    assert bf.backfill(ctx, None, "hourly-ok", _at(0), _at(3), policy="all", now=_at(6, 30), dry_run=True).eligible


def test_a_dry_run_only_reads_it_waits_for_no_writer(bench_factory):
    import sqlite3

    _bench, ctx, conn = _history(bench_factory, "sqlite")
    db_path = ctx.database().database
    writer = sqlite3.connect(db_path, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's one write lock
    try:
        started = time.monotonic()
        dry = bf.backfill(ctx, conn, "hourly-ok", _at(0), _at(6), policy="all", now=_at(6, 30), dry_run=True)
        assert dry.eligible == [_at(0), _at(2), _at(3)] and time.monotonic() - started < 2
    finally:
        writer.rollback()
        writer.close()


TEN = {"app1": {"cron": {"*/10 * * * *": [{"method": "app1.tasks.ok", "name": "ten"}]},
                "hourly": [{"method": "app1.tasks.ok", "name": "hourly-ok"}]}}
DAY3 = datetime(2026, 1, 8, 12, 0)


def _ran(job_name: str, slot: datetime) -> None:
    from hookscheduler.store.models import ScheduledJobType

    job = ScheduledJobType.get(ScheduledJobType.name == job_name)
    ScheduledJobLog.create(job=job.id, job_name=job.name, scheduled_for=slot, status="complete", trigger="schedule",
                           slots=1, queue=job.queue, enqueued_at=slot, finished_at=slot + timedelta(seconds=1),
                           created_at=slot, modified_at=slot)


def _retention_bench(bench_factory, db_kind):
    """``ten`` (*/10) ran its 10:00..10:50 slots two days before DAY3, and ``hourly-ok`` its 10:00..13:00 slots
    40 days before; both jobs' next slots are after DAY3, and no other slot has a row."""
    from hookscheduler.store.models import ScheduledJobType

    bench = bench_factory.make(TEN, db=db_kind)
    ctx, conn = migrated(bench, DAY3 - timedelta(days=60))
    ScheduledJobType.update(next_execution=DAY3 + H).execute()
    for m in range(0, 60, 10):
        _ran("ten", DAY3 - timedelta(days=2) + timedelta(hours=-2, minutes=m))
    for h in range(4):
        _ran("hourly-ok", DAY3 - timedelta(days=40) + timedelta(hours=h - 2))
    return ctx, conn


def test_backfill_never_offers_slots_whose_runs_thinning_deleted(bench_factory, db_kind):
    from hookscheduler.ops.retention import thin_frequent_runs

    ctx, conn = _retention_bench(bench_factory, db_kind)
    start = DAY3 - timedelta(days=2, hours=2)  # 10:00 two days before
    before = bf.backfill(ctx, None, "ten", start, start + timedelta(minutes=50), dry_run=True, now=DAY3)
    assert (before.already_ran, before.eligible) == (6, [])
    assert thin_frequent_runs(ctx.database(), now=DAY3) == 5  # 10:50, the hour's last, is kept
    after = bf.backfill(ctx, None, "ten", start, start + timedelta(minutes=70), dry_run=True, now=DAY3)
    assert (after.already_ran, after.before_horizon) == (1, 5)
    assert after.horizon is not None and after.horizon.through == start + timedelta(minutes=40)
    assert after.eligible == [start + timedelta(minutes=60), start + timedelta(minutes=70)]  # no row, after it
    done = bf.backfill(ctx, conn, "ten", start, start + timedelta(minutes=50), now=DAY3)
    assert done.runs == [] and not [r for r in _runs("ten") if r.trigger == "backfill"]
    # another job's slots are not its horizon's business
    assert bf.backfill(ctx, None, "hourly-ok", start, start + H, dry_run=True, now=DAY3).horizon is None


def test_backfill_never_offers_slots_whose_rows_log_retention_deleted(bench_factory, db_kind):
    from hookscheduler.ops.retention import prune_site_logs

    ctx, _conn = _retention_bench(bench_factory, db_kind)
    start = DAY3 - timedelta(days=40, hours=3)  # 09:00, 40 days before: one slot with no row, then four that ran
    assert bf.backfill(ctx, None, "hourly-ok", start, start + 4 * H, dry_run=True, now=DAY3).eligible == [start]
    assert prune_site_logs(ctx.database(), 30, now=DAY3) == 4  # the hourly job's rows; ten's are younger
    after = bf.backfill(ctx, None, "hourly-ok", start, start + 4 * H, dry_run=True, now=DAY3)
    assert (after.eligible, after.already_ran, after.before_horizon) == ([], 0, 5)
    assert after.horizon is not None and after.horizon.through == DAY3 - timedelta(days=30) + timedelta(minutes=1)
    # a slot after the horizon with no row never ran: it is offered
    late = DAY3 - timedelta(days=20)
    assert bf.backfill(ctx, None, "hourly-ok", late, late, dry_run=True, now=DAY3).eligible == [late]


def test_a_slot_recorded_missed_stays_backfillable_after_thinning(bench_factory, db_kind):
    """Thinning deletes only completed runs: a slot whose own ``missed`` row is still there is known not to have
    run, whatever the horizon (the worker's maintenance-mode skip tells the operator to backfill such a slot)."""
    from hookscheduler.ops.retention import thin_frequent_runs
    from hookscheduler.store.models import ScheduledJobType

    ctx, _conn = _retention_bench(bench_factory, db_kind)
    start = DAY3 - timedelta(days=2, hours=2)
    missed = start + timedelta(minutes=20)
    row = ScheduledJobLog.get((ScheduledJobLog.job_name == "ten") & (ScheduledJobLog.scheduled_for == missed))
    ScheduledJobLog.update(status="missed", reason="worker down").where(ScheduledJobLog.id == row.id).execute()
    job = ScheduledJobType.get(ScheduledJobType.name == "ten")
    assert bf.backfill(ctx, None, job.name, start, start + timedelta(minutes=50), dry_run=True,
                       now=DAY3).eligible == [missed]
    assert thin_frequent_runs(ctx.database(), now=DAY3) == 4
    after = bf.backfill(ctx, None, job.name, start, start + timedelta(minutes=50), dry_run=True, now=DAY3)
    assert after.horizon is not None and after.horizon.through >= missed
    assert (after.eligible, after.before_horizon) == ([missed], 4)  # its row says it did not run


def test_a_slot_whose_skipped_run_kept_its_id_is_backfilled_under_a_new_id(bench_factory, db_kind):
    """A run skipped by the worker in maintenance mode (or purged from its queue) keeps the slot's RQ id on its
    row; the backfill of that slot, which the skip's reason recommends, used the same id and failed on the
    ledger's unique index. It now takes the slot's next free id, once."""
    from hookscheduler.broker.keys import scheduled_job_id
    from hookscheduler.store.models import ScheduledJobType

    bench = bench_factory.make(TEN, db=db_kind)
    ctx, conn = migrated(bench, DAY3 - timedelta(days=1))
    ScheduledJobType.update(next_execution=DAY3 + H).execute()
    job = ScheduledJobType.get(ScheduledJobType.name == "ten")
    slot = DAY3 - 2 * H
    first = scheduled_job_id(ctx.bench.bench_id, ctx.name, "ten", slot)
    ScheduledJobLog.create(job=job.id, job_name="ten", scheduled_for=slot, status="skipped", trigger="schedule",
                           slots=1, queue=job.queue, rq_job_id=first, enqueued_at=slot,
                           reason="site in maintenance mode when the run was to start", created_at=slot,
                           modified_at=slot)
    done = bf.backfill(ctx, conn, "ten", slot, slot, now=DAY3)
    [run] = done.runs
    assert run.rq_job_id not in (first, None) and run.rq_job_id == scheduled_job_id(
        ctx.bench.bench_id, ctx.name, "ten", slot, attempt=1)
    assert bf.backfill(ctx, conn, "ten", slot, slot, now=DAY3).runs == []  # served now: once
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    rows = {r.rq_job_id: r.status for r in ScheduledJobLog.select().where(ScheduledJobLog.scheduled_for == slot)}
    assert rows == {first: "skipped", run.rq_job_id: "complete"}
    # and the CLI says nothing about an object in the way
    r = run_cli_backfill(bench, slot)
    assert r.code == 0 and "already ran" in r.out, (r.out, r.err)


def run_cli_backfill(bench, slot):
    return run(bench, "jobs", "backfill", "ten", "--from", f"{slot:%Y-%m-%dT%H:%M}Z", "--to", f"{slot:%Y-%m-%dT%H:%M}Z",
               "--dry-run")
