"""`jobs next | run | skip-next | history | missed` against real Redis and SQLite / PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine

from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.helpers import drain, read_out
from tests.integration.opcli_support import assert_one_line_error, migrated, run, sub

APPS = {"app1": {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"]}}


def test_jobs_next_is_dst_correct_in_text_and_json(bench_factory):
    bench = bench_factory.make(APPS, common={"time_zone": "Europe/Berlin"})
    migrated(bench, datetime(2026, 3, 28, 12, 0))
    with time_machine.travel(datetime(2026, 3, 28, 12, 0, 5, tzinfo=timezone.utc), tick=False):
        _jobs_next_dst(bench)


def _jobs_next_dst(bench) -> None:
    r = run(bench, "jobs", "next", "app1.tasks.other", "-n", "3", "--format", "json")
    assert r.code == 0, r.err
    assert [{k: e[k] for k in ("utc", "local", "kind")} for e in r.json()] == [
        {"utc": "2026-03-28T23:00:00Z", "local": "2026-03-29T00:00:00+01:00", "kind": "run"},
        {"utc": "2026-03-29T22:00:00Z", "local": "2026-03-30T00:00:00+02:00", "kind": "run"},
        {"utc": "2026-03-30T22:00:00Z", "local": "2026-03-31T00:00:00+02:00", "kind": "run"},
    ]
    text = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "4").out
    lines = text.splitlines()
    assert lines[0].split() == ["WHEN", "WHAT", "SLOT", "NOTE"]
    assert "2026-03-28 14:00:00 CET" in lines[1] and "run" in lines[1]
    assert "times in Europe/Berlin" in text
    # hourly across the spring-forward gap: every real hour, local 02:00 does not exist
    r = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "16", "--format", "json")
    utc = [e["utc"] for e in r.json()]
    assert utc[-3:] == ["2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z", "2026-03-29T04:00:00Z"]
    assert [e["local"][11:16] for e in r.json()[-5:]] == ["01:00", "03:00", "04:00", "05:00", "06:00"]


def test_history_and_missed_after_downtime(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    bench_id = ctx.bench.bench_id
    assert run(bench, "jobs", "disable", "app1.tasks.other", "--note", "broken API").code == 0
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 1
    drain(bench_id, conn)
    # down from 11:00 to 15:00: one catch-up run covers 12:00 .. 15:00; the stopped job's skip row grows
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 15, 0, 30)).fired == 1
    drain(bench_id, conn)

    r = run(bench, "jobs", "history", "app1.tasks.ok", "--format", "json")
    assert r.code == 0, r.err
    rows = r.json()
    assert [(x["trigger"], x["status"], x["slots"]) for x in rows] == [("catch-up", "complete", 4),
                                                                      ("schedule", "complete", 1)]
    assert rows[0]["scheduled_for"] == "2026-01-05T15:00:00Z"
    assert rows[0]["first_slot"] == "2026-01-05T12:00:00Z" and rows[0]["rq_job_id"]
    assert {"enqueued_at", "started_at", "finished_at", "duration", "worker", "reason", "error"} <= set(rows[0])

    r = run(bench, "jobs", "history", "--since", "2026-01-05T12:00", "--format", "json")
    assert [(x["job_name"], x["status"]) for x in r.json()] == [("app1.tasks.ok", "complete"),
                                                                 ("app1.tasks.other", "skipped")]
    r = run(bench, "jobs", "history", "--status", "skipped", "--format", "json")
    assert [(x["reason"], x["slots"]) for x in r.json()] == [("job stopped", 5)]
    assert len(run(bench, "jobs", "history", "--limit", "1", "--format", "json").json()) == 1

    text = run(bench, "jobs", "history").out
    header = text.splitlines()[0].split()
    assert header[:5] == ["JOB", "SLOT", "TRIGGER", "STATUS", "SLOTS"]
    assert "2026-01-05 15:00:00 UTC" in text and "catch-up" in text and "missed slots coalesced" in text

    r = run(bench, "jobs", "missed", "--format", "json")
    groups = {g["job_name"]: g for g in r.json()}
    assert groups["app1.tasks.ok"]["caught_up_slots"] == 4 and groups["app1.tasks.ok"]["missed_slots"] == 0
    entry = groups["app1.tasks.ok"]["entries"][0]
    assert entry["outcome"].startswith("one run for 4 slots, complete")
    assert groups["app1.tasks.other"]["skipped_slots"] == 5
    assert groups["app1.tasks.other"]["entries"][0]["reason"] == "job stopped"
    text = run(bench, "jobs", "missed").out
    assert "app1.tasks.ok: 0 missed, 0 skipped, 4 run late" in text
    assert "2026-01-05 12:00:00 UTC .. 15:00:00" in text
    assert "app1.tasks.other: 0 missed, 5 skipped" in text
    assert run(bench, "jobs", "missed", "app1.tasks.other", "--format", "json").json()[0]["job_name"] \
        == "app1.tasks.other"
    assert run(bench, "jobs", "missed", "--since", "2026-01-05T16:00", "--format", "json").json() == []


def test_history_shows_the_error_of_a_failed_run(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.boom"]}})
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    drain(ctx.bench.bench_id, conn)
    r = run(bench, "jobs", "history", "app1.tasks.boom", "--status", "failed", "--format", "json")
    assert r.json()[0]["error"] == "RuntimeError: boom: the task failed on purpose"
    assert "Traceback" in r.json()[0]["traceback"]
    assert "RuntimeError: boom" in run(bench, "jobs", "history", "app1.tasks.boom").out


def test_jobs_run_logs_manual_and_respects_overlap(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    r = run(bench, "jobs", "run", "app1.tasks.ok")
    assert r.code == 0, r.err
    assert r.out.startswith("queued app1.tasks.ok (site default) on queue default as RQ job ")
    ctx.database()
    row = ScheduledJobLog.get()
    assert (row.trigger, row.status, row.slots) == ("manual", "queued", 1)
    assert row.enqueued_at is not None and row.rq_job_id in r.out and "jobs run" in row.reason

    # the first run is still queued: the second request is logged as skipped and exits 1
    r = run(bench, "jobs", "run", "app1.tasks.ok")
    assert_one_line_error(r, 1, "not enqueued", "still queued", "--force")
    ctx.database()
    assert [lg.status for lg in ScheduledJobLog.select().order_by(ScheduledJobLog.id)] == ["queued", "skipped"]
    assert run(bench, "jobs", "run", "app1.tasks.ok", "--force").code == 0
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert sorted(lg.status for lg in ScheduledJobLog.select()) == ["complete", "complete", "skipped"]
    assert [o["trigger"] for o in read_out(bench)] == ["manual", "manual"]
    recent = run(bench, "jobs", "history", "--since", "1h", "--format", "json").json()
    assert [x["trigger"] for x in recent] == ["manual"] * 3
    assert run(bench, "jobs", "history", "--since", "+1h", "--format", "json").json() == []
    assert ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").last_execution is not None

    # a stopped job is refused unless --force
    run(bench, "jobs", "disable", "app1.tasks.other", "--note", "vendor down")
    r = run(bench, "jobs", "run", "app1.tasks.other")
    assert_one_line_error(r, 1, "is stopped", "vendor down", "--force")
    assert run(bench, "jobs", "run", "app1.tasks.other", "--force").code == 0


def test_skip_next(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    with time_machine.travel(datetime(2026, 1, 5, 10, 7, 5, tzinfo=timezone.utc), tick=False):  # before the slot
        r = run(bench, "jobs", "skip-next", "app1.tasks.ok")
    assert r.code == 0, r.err
    assert "run at 2026-01-05 11:00:00 UTC" in r.out and "next run 2026-01-05 12:00:00 UTC" in r.out
    ctx.database()
    assert ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").next_execution == datetime(2026, 1, 5, 12)
    skipped = ScheduledJobLog.get()
    assert (skipped.status, skipped.scheduled_for) == ("skipped", datetime(2026, 1, 5, 11))
    assert "skip-next" in skipped.reason
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 0
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).fired == 1


def test_skip_next_of_an_overdue_job_skips_its_pending_catch_up(bench_factory, db_kind):
    """Slots 11:00 .. 15:00 passed with no scheduler running: the next pass would run one catch-up for all five.
    Skipping only 11:00 (hours ago) would leave the other four to run; skip-next skips what the pass would run."""
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    with time_machine.travel(datetime(2026, 1, 5, 15, 20, tzinfo=timezone.utc), tick=False):
        r = run(bench, "jobs", "skip-next", "app1.tasks.ok")
    assert r.code == 0, r.err
    assert ("skipped the pending catch-up of 5 slot(s) of app1.tasks.ok from 2026-01-05 11:00:00 UTC to "
            "2026-01-05 15:00:00 UTC (site default); next run 2026-01-05 16:00:00 UTC") in r.out, r.out
    ctx.database()
    assert ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").next_execution == datetime(2026, 1, 5, 16)
    [row] = ScheduledJobLog.select().where(ScheduledJobLog.job_name == "app1.tasks.ok")
    assert (row.status, row.scheduled_for, row.slots, row.first_slot, row.last_slot) == (
        "skipped", datetime(2026, 1, 5, 15), 5, datetime(2026, 1, 5, 11), datetime(2026, 1, 5, 15))
    assert "(jobs skip-next): the pending catch-up of 5 slot(s)" in row.reason
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 15, 20, 1))
    assert (r.fired, r.skipped, r.missed) == (0, 0, 0)  # nothing left to catch up
    assert ScheduledJobLog.select().where(ScheduledJobLog.job_name == "app1.tasks.ok").count() == 1
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 16, 0, 1)).fired == 1


def test_unknown_job_and_bad_input(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, datetime(2026, 1, 5, 10, 7))
    for args in (["jobs", "run", "nope"], ["jobs", "next", "nope"], ["jobs", "history", "nope"],
                 ["jobs", "skip-next", "nope"], ["jobs", "explain", "nope"]):
        assert_one_line_error(run(bench, *args), 1, "job 'nope' not found")
    # a near miss is suggested
    assert "did you mean 'app1.tasks.ok'" in run(bench, "jobs", "run", "tasks.ok").err
    assert_one_line_error(run(bench, "jobs", "history", "--since", "last tuesday"), 2, "--since", "2h")
    assert run(bench, "jobs", "history", "--status", "bogus").code == 2
    assert run(bench, "jobs", "next", "app1.tasks.ok", "-n", "0").code == 2
    # the same through a real process
    assert_one_line_error(sub(bench, "jobs", "run", "nope"), 1, "job 'nope' not found")


def test_maintenance_mode_refuses_manual_event_and_backfill_runs_unless_forced(bench_factory, db_kind):
    """As Frappe's wrapper of scheduled runs refuses every run in maintenance mode: nothing is recorded or sent."""
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(days=2))
    assert run(bench, "set-config", "maintenance_mode", "1").code == 0
    for args in (("jobs", "run", "app1.tasks.ok"), ("trigger-scheduler-event", "hourly"),
                 ("trigger-scheduler-event", "app1.tasks.ok"),
                 ("jobs", "backfill", "app1.tasks.ok", "--from", "30h", "--to", "2h", "--yes")):
        assert_one_line_error(run(bench, *args), 1, "maintenance mode", "--force", "set-config maintenance_mode 0")
    ctx.database()
    assert ScheduledJobLog.select().count() == 0  # nothing written
    assert conn.keys(f"*{ctx.bench.bench_id}*queue*") == []  # nothing sent
    assert run(bench, "jobs", "run", "app1.tasks.ok", "--force").code == 0
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [(lg.trigger, lg.status) for lg in ScheduledJobLog.select()] == [("manual", "complete")]
    assert run(bench, "set-config", "maintenance_mode", "0").code == 0
    assert run(bench, "trigger-scheduler-event", "daily").code == 0


def test_a_long_history_streams_the_same_listing_in_json_and_text(bench_factory, db_kind):
    """`jobs history --limit 100000` reads the ledger a page at a time (it held every row and its traceback:
    300-600 MB for 100,000 rows). The listing must be the one the whole read gave: the same JSON, byte for byte,
    and a text table aligned over every page."""
    from hookscheduler.cli.output import to_json
    from hookscheduler.ops import history as history_lib

    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    ctx, _ = migrated(bench, datetime(2026, 1, 5, 10, 7))
    jobs = list(ScheduledJobType.select().order_by(ScheduledJobType.id))
    t0 = datetime(2026, 1, 5, 11, 0)
    ScheduledJobLog.insert_many([
        {"job": jobs[i % 2].id, "job_name": jobs[i % 2].name, "scheduled_for": t0 - timedelta(hours=i // 4),
         "trigger": "schedule", "status": "failed" if i % 5 == 0 else "complete", "slots": 1,
         "traceback": f"Traceback (most recent call last):\n  ...\nRuntimeError: run {i}" if i % 5 == 0 else None,
         "reason": "x" * (i % 90) if i % 7 == 0 else None, "created_at": t0, "modified_at": t0}
        for i in range(2_500)]).execute()
    expected = history_lib.history(limit=100_000)  # the whole listing, read at once
    ctx.close()
    r = run(bench, "jobs", "history", "--limit", "100000", "--format", "json")
    assert r.code == 0, r.err
    assert r.out == to_json(expected) + "\n"
    assert len(r.json()) == 2_500
    text = run(bench, "jobs", "history", "--limit", "100000").out.splitlines()
    header, rows, footer = text[0], text[1:-1], text[-1]
    assert len(rows) == 2_500 and footer.startswith("2500 row(s)")
    starts = [header.index(col) for col in ("SLOT", "TRIGGER", "STATUS", "REASON / ERROR")]
    for line in rows:  # every column starts where its header does, on every page
        assert all(line[s - 2:s] == "  " and line[s] != " " for s in starts if len(line) > s), line
        assert len(line) > starts[2]
    assert rows[0].split()[0] == "app1.tasks.other" and "RuntimeError: run 0" not in rows[0]
    assert sum("RuntimeError: run" in line for line in rows) == 500
    assert run(bench, "jobs", "history", "nope", "--format", "json").code != 0  # an unknown job: an error, no "["
