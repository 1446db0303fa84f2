"""Queues, RQ jobs and mounting, through Starlette's test client on real Redis (the same library calls as
`purge-jobs` and `rq-jobs cancel|delete`, recorded with the actor)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.ops import manual
from hookscheduler.store.models import ScheduledJobLog
from hookscheduler.web.app import create_app
from tests.web.support import client, csrf_of, make_bench


def _rows(bench, **where):
    open_site(str(bench)).database()
    return list(ScheduledJobLog.select().where(*[getattr(ScheduledJobLog, k) == v for k, v in where.items()]))


def test_rq_jobs_cancel_and_delete_and_queue_purge(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    ctx = open_site(str(bench))
    conn = redis_for(ctx.site)
    ids = [manual.run_job(ctx, conn, name, force=True).rq_job_id
           for name in ("app1.tasks.ok", "app1.tasks.boom", "app1.tasks.other")]
    c = client(bench)
    page = c.get("/sites/default/rq-jobs?status=queued")
    assert page.status_code == 200 and all(i in page.text for i in ids)
    assert c.get("/sites/default/queues").text.count("Purge queued") == 1
    r = c.post("/sites/default/rq-jobs/cancel", data={"job_id": ids[0], "csrf": csrf_of(page.text),
                                                      "back": "/sites/default/rq-jobs"}, follow_redirects=True)
    assert f"canceled RQ job {ids[0]}" in r.text
    r = c.post("/sites/default/rq-jobs/delete", data={"job_id": ids[1], "csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert f"deleted RQ job {ids[1]}" in r.text
    r = c.post("/sites/default/rq-jobs/stop", data={"job_id": ids[2], "csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert "is not running" in r.text  # the library's one-line refusal, shown as the message
    r = c.post("/sites/default/queues/purge", data={"queue": "default", "csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert "purged 1 job(s)" in r.text
    skipped = {row.rq_job_id: row.reason for row in _rows(bench, status="skipped")}
    assert set(skipped) == set(ids)
    assert all("(dashboard)" in reason for reason in skipped.values())
    r = c.post("/sites/default/queues/purge", data={"queue": "nosuch", "csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert "nosuch" in r.text and "purged" not in r.text


def test_mounted_under_a_prefix_in_another_app(bench_factory):
    bench = make_bench(bench_factory)
    outer = Starlette(routes=[Mount("/ops/scheduler", create_app(str(bench), live_seconds=0))])
    c = TestClient(outer, base_url="http://127.0.0.1")
    page = c.get("/ops/scheduler/sites/default/jobs")
    assert page.status_code == 200
    assert 'href="/ops/scheduler/sites/default/job?name=app1.tasks.ok"' in page.text
    assert 'action="/ops/scheduler/sites/default/jobs/disable"' in page.text
    assert c.get("/ops/scheduler/static/live.js").status_code == 200
    r = c.post("/ops/scheduler/sites/default/jobs/disable", data={
        "name": "app1.tasks.ok", "csrf": csrf_of(page.text), "back": "/ops/scheduler/sites/default/jobs"},
        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ops/scheduler/sites/default/jobs"


def test_a_long_timeline_shows_its_latest_cells(bench_factory, monkeypatch):
    from datetime import timedelta

    from hookscheduler.store.models import ScheduledJobType, utcnow
    from hookscheduler.web import views

    monkeypatch.setattr(views, "MAX_CELLS", 50)
    bench = make_bench(bench_factory)
    open_site(str(bench)).database()
    job = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    now = utcnow()
    rows = [{"job": job.id, "job_name": job.name, "scheduled_for": now - timedelta(minutes=m), "trigger": "schedule",
             "status": "complete", "slots": 1, "created_at": now, "modified_at": now} for m in range(1, 121)]
    ScheduledJobLog.insert_many(rows).execute()
    newest = ScheduledJobLog.select().order_by(ScheduledJobLog.scheduled_for.desc()).first()
    oldest = ScheduledJobLog.select().order_by(ScheduledJobLog.scheduled_for).first()
    html = client(bench).get("/sites/default/job?name=app1.tasks.ok").text
    assert f"/log/{newest.id}\"" in html and f"/log/{oldest.id}\"" not in html
    assert html.count('<a class="cell c-complete"') == 50 and "Only the latest cells are shown" in html
