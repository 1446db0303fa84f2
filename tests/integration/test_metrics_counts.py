"""The ledger counters on real Redis, SQLite and PostgreSQL: monotonic through pruning, counted once with
several collectors at once, and right with several worker processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hookscheduler.metrics import ledger_counts
from hookscheduler.metrics.bench import BenchSites
from hookscheduler.metrics.exporter import registry_for
from hookscheduler.ops import manual
from hookscheduler.store import store_for
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.helpers import env_for
from tests.integration.opcli_support import migrated

APPS = {"app1": {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.boom"]}}


def _add(job: ScheduledJobType, status: str, when, **kw) -> ScheduledJobLog:
    row: ScheduledJobLog = ScheduledJobLog.create(
        job=job.id, job_name=job.name, scheduled_for=when, trigger=kw.pop("trigger", "schedule"), status=status,
        slots=kw.pop("slots", 1), queue=job.queue, enqueued_at=when + timedelta(seconds=1),
        finished_at=when + timedelta(seconds=3), duration=2.0, created_at=when, modified_at=when, **kw)
    return row


def samples(registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_follow_the_ledger_and_never_drop_when_it_is_pruned(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    t0 = utcnow() - timedelta(hours=2)
    ctx, conn = migrated(bench, t0)
    bench_id = ctx.bench.bench_id
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    _add(ok, "complete", t0)
    _add(ok, "failed", t0 + timedelta(hours=1), traceback="RuntimeError: x")
    _add(ok, "missed", t0, slots=5, reason="no scheduler pass ran for 5 slots; catchup=skip, so not run")
    active = _add(ok, "started", t0 + timedelta(minutes=90))
    assert ledger_counts.update(conn, bench_id, ctx.name, grace=0) == 3
    got = ledger_counts.read(conn, bench_id, ctx.name)
    assert got[("runs", ok.name, "complete")] == "1" and got[("runs", ok.name, "failed")] == "1"
    assert got[("slots", ok.name, "missed", "no_scheduler")] == "5"
    assert ledger_counts.update(conn, bench_id, ctx.name, grace=0) == 0  # nothing counted twice
    # the active run ends later: counted once, then
    ctx.database()
    ScheduledJobLog.update(status="complete").where(ScheduledJobLog.id == active.id).execute()
    assert ledger_counts.update(conn, bench_id, ctx.name, grace=0) == 1
    # pruning the ledger leaves the counters where they were
    ScheduledJobLog.delete().execute()
    assert ledger_counts.update(conn, bench_id, ctx.name, grace=0) == 0
    got = ledger_counts.read(conn, bench_id, ctx.name)
    assert got[("runs", ok.name, "complete")] == "2" and got[("slots", ok.name, "missed", "no_scheduler")] == "5"
    _add(ok, "skipped", t0, reason="job stopped", slots=2)
    ledger_counts.update(conn, bench_id, ctx.name, grace=0)
    assert ledger_counts.read(conn, bench_id, ctx.name)[("slots", ok.name, "skipped", "stopped")] == "2"


def test_a_row_younger_than_the_grace_waits_for_the_next_collection(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    now = utcnow()
    ctx, conn = migrated(bench, now - timedelta(hours=1))
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    _add(ok, "complete", now - timedelta(seconds=5))
    assert ledger_counts.update(conn, ctx.bench.bench_id, ctx.name, now=now, grace=30) == 0
    assert ledger_counts.update(conn, ctx.bench.bench_id, ctx.name, now=now + timedelta(seconds=40), grace=30) == 1


COLLECT = """
import sys
from hookscheduler.metrics import ledger_counts
from hookscheduler.metrics.bench import BenchSites
sites = BenchSites(sys.argv[1])
name = sites.names[0]
with sites.use(name):
    ledger_counts.update(sites.redis(name), sites.bench_id, name, grace=0, budget=30)
"""


def test_four_collectors_at_once_count_every_row_exactly_once(bench_factory, db_kind, redis_client, monkeypatch):
    monkeypatch.setattr(ledger_counts, "BATCH", 50)
    bench = bench_factory.make(APPS, db=db_kind)
    t0 = utcnow() - timedelta(days=3)
    ctx, conn = migrated(bench, t0)
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    rows = [{"job": ok.id, "job_name": ok.name, "scheduled_for": t0 + timedelta(minutes=i), "trigger": "schedule",
             "status": "complete" if i % 3 else "failed", "slots": 1, "queue": "default", "created_at": t0,
             "modified_at": t0} for i in range(3000)]
    for i in range(0, len(rows), 500):
        ScheduledJobLog.insert_many(rows[i:i + 500]).execute()
    env = env_for(bench)
    procs = [subprocess.Popen([sys.executable, "-c", COLLECT.replace("BATCH", "x"), str(bench)], env=env)
             for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    got = ledger_counts.read(conn, ctx.bench.bench_id, ctx.name)
    assert got[("runs", ok.name, "complete")] == "2000" and got[("runs", ok.name, "failed")] == "1000"


def test_runs_done_by_several_worker_processes_are_all_counted(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=5))
    for _ in range(9):
        manual.run_job(ctx, conn, "app1.tasks.ok", force=True)
    for _ in range(3):
        manual.run_job(ctx, conn, "app1.tasks.boom", force=True)
    done = subprocess.run([sys.executable, "-m", "hookscheduler", "worker-pool", "--num-workers", "3", "--burst"],
                          env=env_for(bench), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    sites = BenchSites(str(bench))
    got = samples(registry_for(sites, grace=0))
    site = (("site", ctx.name),)
    assert got[("hookscheduler_job_runs_total", (("job_name", "app1.tasks.ok"), *site, ("status", "complete")))] == 9
    assert got[("hookscheduler_job_runs_total", (("job_name", "app1.tasks.boom"), *site, ("status", "failed")))] == 3
    assert got[("hookscheduler_job_duration_seconds_count", (("job_name", "app1.tasks.ok"), *site))] == 9
    boom = ("job_name", "app1.tasks.boom")
    assert got[("hookscheduler_job_last_run_status", (boom, *site, ("status", "failed")))] == 1
    assert got[("hookscheduler_site_up", site)] == 1
    assert got[("hookscheduler_scheduler_up", site)] == 0
    assert got[("hookscheduler_job_schedule_interval_seconds", (("job_name", "app1.tasks.ok"), *site))] == 3600
    assert got[("hookscheduler_job_schedule_interval_seconds", (("job_name", "app1.tasks.boom"), *site))] == 86400
    # scraping again counts nothing twice
    assert samples(registry_for(sites, grace=0))[
        ("hookscheduler_job_runs_total", (("job_name", "app1.tasks.ok"), *site, ("status", "complete")))] == 9


@pytest.mark.parametrize("per_job", [True, False])
def test_site_histograms_always_and_job_histograms_unless_turned_off(bench_factory, db_kind, redis_client,
                                                                     per_job):
    bench = bench_factory.make(APPS, db=db_kind, common={"metrics_job_histograms": per_job})
    t0 = utcnow() - timedelta(hours=2)
    ctx, _conn = migrated(bench, t0)
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    boom = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.boom")
    for i in range(3):
        _add(ok, "complete", t0 + timedelta(minutes=i))
    _add(boom, "failed", t0, traceback="RuntimeError: x")
    got = samples(registry_for(BenchSites(str(bench)), grace=0))
    site = (("site", ctx.name),)
    # the site's histograms sum every job's: 4 runs, each 1 s late and 2 s long
    assert got[("hookscheduler_site_lateness_seconds_count", site)] == 4
    assert got[("hookscheduler_site_lateness_seconds_sum", site)] == 4.0
    assert got[("hookscheduler_site_duration_seconds_bucket", (("le", "5.0"), *site))] == 4
    assert got[("hookscheduler_site_duration_seconds_bucket", (("le", "1.0"), *site))] == 0
    job_series = [key for key in got if key[0].startswith(("hookscheduler_job_duration", "hookscheduler_job_lateness"))]
    if per_job:
        assert got[("hookscheduler_job_duration_seconds_count", (("job_name", "app1.tasks.ok"), *site))] == 3
    else:
        assert job_series == []
    # the counters the alert rules read are there either way
    assert got[("hookscheduler_job_runs_total", (("job_name", "app1.tasks.ok"), *site, ("status", "complete")))] == 3


def test_stored_series_names_survive_any_job_name(redis_client):
    import uuid

    from hookscheduler.metrics.ledger_counts import counts_key, field_name, read

    bench_id = f"hst{uuid.uuid4().hex[:10]}"
    weird = "a\x1fb\x1f<c>"
    key = counts_key(bench_id, "s")
    try:
        redis_client.hset(key, mapping={field_name("runs", weird, "complete"): 3, field_name("late_sum", weird): 1.5,
                                        field_name("slots", weird, "skipped", "stopped"): 2, "cursor": 9, "junk": 1})
        assert read(redis_client, bench_id, "s") == {("runs", weird, "complete"): "3", ("late_sum", weird): "1.5",
                                                     ("slots", weird, "skipped", "stopped"): "2"}
    finally:
        redis_client.delete(key)


def test_a_skipped_row_that_grows_after_it_was_counted_counts_its_new_slots_once(bench_factory, db_kind,
                                                                                  redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    t0 = utcnow() - timedelta(hours=3)
    ctx, conn = migrated(bench, t0)
    bench_id = ctx.bench.bench_id
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    boom = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.boom")
    stopped = _add(ok, "skipped", t0, reason="job stopped", first_slot=t0, last_slot=t0)
    other = _add(boom, "skipped", t0, reason="job stopped", first_slot=t0, last_slot=t0)
    field = ("slots", ok.name, "skipped", "stopped")
    assert ledger_counts.update(conn, bench_id, ctx.name, grace=0) == 2
    assert ledger_counts.read(conn, bench_id, ctx.name)[field] == "1"
    # the job stays stopped: the passes extend its row (the only way a ledger row grows), 1 -> 3 slots
    store = store_for(ctx.database())
    with store.transaction():
        store.extend_skip(stopped.id, 2, t0 + timedelta(hours=2), t0 + timedelta(hours=2), utcnow())
    ledger_counts.update(conn, bench_id, ctx.name, grace=0)
    assert ledger_counts.read(conn, bench_id, ctx.name)[field] == "3"
    ledger_counts.update(conn, bench_id, ctx.name, grace=0)  # scraping again counts nothing twice
    assert ledger_counts.read(conn, bench_id, ctx.name)[field] == "3"
    # a newer row of the job ends the stretch: the old row is read a last time, then no longer followed
    with store.transaction():
        store.extend_skip(stopped.id, 1, t0 + timedelta(hours=3), t0 + timedelta(hours=3), utcnow())
    _add(ok, "complete", t0 + timedelta(hours=3))
    ledger_counts.update(conn, bench_id, ctx.name, grace=0)
    assert ledger_counts.read(conn, bench_id, ctx.name)[field] == "4"
    assert {int(x) for x in conn.hkeys(ledger_counts.growing_key(bench_id, ctx.name))} == {other.id}


def test_a_served_site_follows_a_db_url_change_to_its_new_database(bench_factory, redis_client):
    """A long-running exporter (or dashboard) re-reads the site's config per request; after ``set-config db_url``
    + ``migrate`` it must read the new database, not go on serving the old one it had open."""
    from hookscheduler.config import update_site_config

    bench = bench_factory.make(APPS)
    t0 = utcnow() - timedelta(hours=2)
    ctx, _conn = migrated(bench, t0)
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    _add(ok, "complete", t0)
    ctx.close()
    sites = BenchSites(str(bench))
    runs = ("hookscheduler_job_runs_total", (("job_name", "app1.tasks.ok"), ("site", ctx.name), ("status", "complete")))
    assert samples(registry_for(sites, grace=0))[runs] == 1
    update_site_config(ctx.site, {"db_url": f"sqlite:///{bench / 'sites' / 'moved.sqlite3'}"})
    moved, _conn = migrated(bench, t0)
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    for i in range(3):
        _add(ok, "complete", t0 + timedelta(minutes=i))
    moved.close()
    # the new ledger restarts its ids below the counted cursor: a reset, so its three rows are counted afresh
    assert samples(registry_for(sites, grace=0))[runs] == 3
    with sites.use(ctx.name):
        assert ScheduledJobLog.select().count() == 3


def test_a_server_serves_a_site_created_after_it_started_and_drops_a_deleted_one(bench_factory, redis_client):
    """The exporter and the dashboard follow the sites folder: a new site is served (and counted) from the next
    request on, without a restart; a deleted one is no longer served."""
    import os
    import shutil

    from hookscheduler.metrics.bench import UnknownSite

    bench = bench_factory.make(APPS, sites={"a.example": {}})
    t0 = utcnow() - timedelta(hours=2)
    migrated(bench, t0, site="a.example")[0].close()
    folder = bench / "sites"
    past = (utcnow() - timedelta(hours=1)).timestamp()
    os.utime(folder, (past, past))  # a settled folder: listed once, then only a stat per request
    sites = BenchSites(str(bench))
    assert sites.names == ["a.example"]
    (folder / "b.example").mkdir()  # a site's folder first, its config a moment later: both are seen
    assert sites.names == ["a.example"]
    (folder / "b.example" / "site_config.json").write_text("{}")
    new, _conn = migrated(bench, t0, site="b.example")
    _add(ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok"), "complete", t0)
    new.close()
    assert sites.names == ["a.example", "b.example"]
    with sites.use("b.example"):
        assert ScheduledJobLog.select().count() == 1
    runs = ("hookscheduler_job_runs_total",
            (("job_name", "app1.tasks.ok"), ("site", "b.example"), ("status", "complete")))
    assert samples(registry_for(sites, grace=0))[runs] == 1
    shutil.rmtree(folder / "b.example")
    assert sites.names == ["a.example"]
    with pytest.raises(UnknownSite, match=r"site 'b\.example' is not served here"):
        sites.get("b.example")


def test_alerting_counters_start_at_zero_and_a_catch_up_counts_its_late_slots(bench_factory, db_kind, redis_client):
    """``increase()`` ignores a series' first sample: the counters the alert rules read must exist at 0 before a
    job's first failure or first late slots, or those never alert."""
    bench = bench_factory.make(APPS, db=db_kind)
    t0 = utcnow() - timedelta(hours=2)
    ctx, _conn = migrated(bench, t0)
    ctx.close()
    sites = BenchSites(str(bench))
    site = ("site", ctx.name)

    def key(name: str, job: str, *labels: tuple[str, str]):
        return (name, tuple(sorted((("job_name", job), site, *labels))))

    got = samples(registry_for(sites, grace=0))
    for job in ("app1.tasks.ok", "app1.tasks.boom"):
        assert got[key("hookscheduler_job_runs_total", job, ("status", "failed"))] == 0
        assert got[key("hookscheduler_job_runs_total", job, ("status", "complete"))] == 0
        assert got[key("hookscheduler_job_slots_off_time_total", job)] == 0
    with sites.use(ctx.name):
        ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
        boom = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.boom")
        _add(boom, "failed", t0, traceback="RuntimeError: x")
        # catchup=once: an outage's 83 slots run late in one catch-up run; no row is "missed"
        _add(ok, "complete", t0, trigger="catch-up", slots=83, reason="83 missed slots coalesced into one run")
        _add(ok, "missed", t0, slots=5, reason="no scheduler pass ran for 5 slots; catchup=skip, so not run")
    got = samples(registry_for(sites, grace=0))
    assert got[key("hookscheduler_job_runs_total", "app1.tasks.boom", ("status", "failed"))] == 1
    assert got[key("hookscheduler_job_slots_off_time_total", "app1.tasks.ok")] == 88
    assert got[key("hookscheduler_job_slots_off_time_total", "app1.tasks.boom")] == 0


def test_the_series_of_a_job_deleted_from_the_table_are_dropped(bench_factory, db_kind, redis_client):
    """A job only removed from the hooks keeps its counters (it is still in the table and may come back); one
    pruned from the table (``migrate --prune``) leaves the scrape, while the other jobs' counters stay."""
    bench = bench_factory.make(APPS, db=db_kind)
    t0 = utcnow() - timedelta(hours=2)
    ctx, conn = migrated(bench, t0)
    ctx.close()
    sites = BenchSites(str(bench))
    with sites.use(ctx.name):
        for name in ("app1.tasks.boom", "app1.tasks.ok"):  # the deleted job's row not the newest (SQLite id reuse)
            _add(ScheduledJobType.get(ScheduledJobType.name == name), "failed", t0, traceback="RuntimeError: x")
    registry = registry_for(sites, grace=0)

    def jobs() -> set[str]:
        return {dict(labels).get("job_name", "") for (_name, labels) in samples(registry)} - {""}

    assert jobs() == {"app1.tasks.ok", "app1.tasks.boom"}
    with sites.use(ctx.name):
        ScheduledJobType.update(removed=True).where(ScheduledJobType.name == "app1.tasks.boom").execute()
    assert jobs() == {"app1.tasks.ok", "app1.tasks.boom"}
    runs = ("hookscheduler_job_runs_total", (("job_name", "app1.tasks.boom"), ("site", ctx.name), ("status", "failed")))
    assert samples(registry)[runs] == 1
    with sites.use(ctx.name):
        ScheduledJobLog.delete().where(ScheduledJobLog.job_name == "app1.tasks.boom").execute()
        ScheduledJobType.delete().where(ScheduledJobType.name == "app1.tasks.boom").execute()
    assert jobs() == {"app1.tasks.ok"}
    assert not any(ledger_counts.SEP + "app1.tasks.boom" in (k.decode() if isinstance(k, bytes) else k)
                   for k in conn.hkeys(ledger_counts.counts_key(ctx.bench.bench_id, ctx.name)))
    kept = ("hookscheduler_job_runs_total", (("job_name", "app1.tasks.ok"), ("site", ctx.name), ("status", "failed")))
    assert samples(registry)[kept] == 1


def test_workers_are_counted_per_queue_of_the_site(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    ctx, _conn = migrated(bench, utcnow())
    ctx.close()
    got = samples(registry_for(BenchSites(str(bench)), grace=0))
    per_queue = {dict(labels)["queue"]: v for (name, labels), v in got.items() if name == "hookscheduler_queue_workers"}
    assert set(per_queue) == set(ctx.site.queues) and set(per_queue.values()) == {0}
