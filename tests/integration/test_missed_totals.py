"""`jobs missed` and the dashboard's missed-and-failed page over more rows than they list: the per-job counts
cover the whole window (one grouped query through the trouble index), and the listing says it is cut."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.ops import history
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from hookscheduler.web import views
from tests.integration.opcli_support import migrated, run
from tests.integration.sql_spy import selects
from tests.integration.test_schema_v3 import _plan
from tests.web.support import client

APPS = {"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"], "daily": ["app1.tasks.boom"]}}
H = timedelta(hours=1)


def _seed(now: datetime) -> dict[str, int]:
    """Per job, 40 hourly rows back from ``now``: ``ok`` alternates missed and skipped, ``other`` has catch-up
    runs of 3 slots, ``boom`` fails every slot (plus a manual run, which is a request, not a slot)."""
    ids = {j.name: j.id for j in ScheduledJobType.select()}
    rows = []
    for h in range(1, 41):
        slot = now - h * H
        for name, status, trigger, slots in (("app1.tasks.ok", "missed" if h % 2 else "skipped", "schedule", 1),
                                             ("app1.tasks.other", "complete", "catch-up", 3),
                                             ("app1.tasks.boom", "failed", "schedule", 1)):
            rows.append({"job": ids[name], "job_name": name, "scheduled_for": slot, "trigger": trigger,
                         "status": status, "slots": slots, "first_slot": slot - (slots - 1) * H, "last_slot": slot,
                         "reason": "job stopped" if status == "skipped" else None, "created_at": slot,
                         "modified_at": slot})
    boom = rows[-1]
    rows.append(dict(boom, trigger="manual", status="skipped"))
    ScheduledJobLog.insert_many(rows).execute()
    return ids


def test_missed_counts_the_whole_window_and_says_the_listing_is_cut(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make(APPS, db=db_kind)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    ctx, _ = migrated(bench, now - 50 * H)
    _seed(now)

    r = run(bench, "jobs", "missed", "--limit", "10", "--format", "json")
    assert r.code == 0, r.err
    groups = {g["job_name"]: g for g in r.json()}
    ok, other = groups["app1.tasks.ok"], groups["app1.tasks.other"]
    assert (ok["missed_slots"], ok["skipped_slots"], ok["total"]) == (20, 20, 40)
    assert (other["caught_up_slots"], other["caught_up_runs"], other["total"]) == (120, 40, 40)
    assert "app1.tasks.boom" not in groups  # failed on-time runs are not slots not run on time
    assert ok["truncated"] and other["truncated"] and len(ok["entries"]) + len(other["entries"]) == 10
    assert "showing the newest 10 of 80 rows" in r.err

    text = run(bench, "jobs", "missed", "--limit", "10").out
    assert "app1.tasks.ok: 20 missed, 20 skipped, 0 run late" in text
    assert "app1.tasks.other: 0 missed, 0 skipped, 120 run late in 40 catch-up run(s)" in text
    assert "showing the newest 10 of 80 rows" in text and "narrow --since, name a job" in text

    # a window: the counts are the window's, and the default limit lists all of it, with no notice
    since = (now - 9 * H - H / 2).strftime("%Y-%m-%dT%H:%M")  # the site's zone is UTC
    r = run(bench, "jobs", "missed", "app1.tasks.ok", "--since", since, "--format", "json")
    (ok,) = r.json()
    assert (ok["missed_slots"], ok["skipped_slots"], ok["total"], ok["truncated"]) == (5, 4, 9, False)
    assert len(ok["entries"]) == 9 and r.err == ""
    assert "showing the newest" not in run(bench, "jobs", "missed", "--since", since).out

    # the dashboard page: the same counts, and a notice on each list that is cut
    page = client(bench).get("/sites/default/missed?since=3d").text
    assert "20 missed, 20 skipped, 0 run late" in page and "120 run late in 40 catch-up run(s)" in page
    assert "Showing the newest" not in page  # 80 rows and 40 failed runs: under the page's limits
    monkeypatch.setattr(views, "MISSED_ROWS", 10)
    monkeypatch.setattr(views, "FAILED_ROWS", 5)
    page = client(bench).get("/sites/default/missed?since=3d").text
    assert "Showing the newest 10 of 80 rows" in page and "Showing the newest 5 of 40 failed runs" in page
    assert "20 missed, 20 skipped, 0 run late" in page
    ctx.close()


def test_the_counts_are_read_from_the_trouble_index(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make(APPS, db=db_kind)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    ctx, _ = migrated(bench, now - 50 * H)
    db = ctx.database()
    _seed(now)
    with selects(db, monkeypatch) as sent:
        report = history.missed(now - 24 * H, limit=5)
        assert history.failed_count(now - 24 * H) == 24
    assert (report.total, report.shown, report.truncated) == (48, 5, True)
    assert len(sent) == 3 and any("GROUP BY" in sql for sql, _ in sent)
    for sql, params in sent:
        plan = _plan(db, sql, params)
        assert "scheduled_job_log_trouble" in plan, (sql, plan)
    ctx.close()
