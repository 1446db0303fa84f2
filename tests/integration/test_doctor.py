"""`doctor`: each check, each problem with its hint, the exit status, and no secret in the output."""

from __future__ import annotations

import json
from datetime import timedelta

from rq import Queue, Worker

from hookscheduler.broker.keys import heartbeat_key, last_tick_key, queue_name
from hookscheduler.store.database import SCHEMA_VERSION, set_state
from hookscheduler.store.models import utcnow
from tests.helpers import drain
from tests.integration.opcli_support import migrated, run, sub

APPS = {"app1": {"hourly": ["app1.tasks.ok", {"method": "app1.tasks.boom", "name": "hourly-boom"}]}}


def _alive(redis_client, bench_id, site="default"):
    now = utcnow().replace(microsecond=0)
    redis_client.set(heartbeat_key(bench_id, "h:1"), json.dumps({"host": "h", "pid": 1, "at": now.isoformat() + "Z",
                                                                 "sites": [site]}), ex=60)
    redis_client.set(last_tick_key(bench_id, site), now.isoformat() + "Z")


def _problems(result):
    return {p["check"]: p for p in result.json()["problems"]}


def test_healthy_site(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, _ = migrated(bench, utcnow())
    bench_id = ctx.bench.bench_id
    _alive(redis_client, bench_id)
    worker = Worker([Queue(queue_name(bench_id, "default"), connection=redis_client)], connection=redis_client,
                    name=f"{bench_id}-doc")
    worker.register_birth()
    try:
        r = run(bench, "doctor", "--format", "json")
        assert r.code == 0, r.out + r.err
        data = r.json()
        assert data["ok"] is True and data["problems"] == []
        names = [c["check"] for c in data["checks"]]
        for expected in ("redis", "database", "scheduler", "scheduler process", "last tick", "overdue jobs",
                         "failed runs", "queue short", "queue default", "queue long", "failed jobs"):
            assert expected in names
        checks = {c["check"]: c for c in data["checks"]}
        assert checks["redis"]["detail"].startswith("Redis ") and "reachable" in checks["redis"]["detail"]
        assert f"schema version {SCHEMA_VERSION}, 2 job(s)" in checks["database"]["detail"]
        assert "1 worker(s)" in checks["queue default"]["detail"]
        text = run(bench, "doctor")
        assert text.code == 0 and text.out.splitlines()[0] == "-----Site default-----"
        assert text.out.rstrip().endswith("No problems found")
    finally:
        worker.register_death()


def test_every_problem_has_a_hint(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(hours=3))  # the 2 h old slots were never served: overdue
    run(bench, "trigger-scheduler-event", "hourly-boom")
    drain(ctx.bench.bench_id, conn)  # a failed run in the last 24 h
    run(bench, "jobs", "run", "app1.tasks.ok")  # queued, and no worker on its queue
    run(bench, "scheduler", "pause")
    r = run(bench, "doctor", "--format", "json")
    assert r.code == 1
    problems = _problems(r)
    assert set(problems) == {"scheduler", "scheduler process", "last tick", "overdue jobs", "failed runs",
                             "queue default"}
    assert problems["scheduler"]["problem"] == "scheduler paused: pause_scheduler is set"
    assert "scheduler resume" in problems["scheduler"]["hint"]
    assert "hookscheduler schedule" in problems["scheduler process"]["hint"]
    assert problems["overdue jobs"]["problem"].startswith("2 job(s) overdue; oldest ")
    assert "jobs explain" in problems["overdue jobs"]["hint"]
    assert "hourly-boom x1" in problems["failed runs"]["problem"]
    assert "--status failed" in problems["failed runs"]["hint"]
    assert "worker --queue default" in problems["queue default"]["hint"]
    assert all(p["hint"] for p in problems.values())
    text = run(bench, "doctor").out
    assert "FAIL  scheduler process" in text and "hint: start `hookscheduler schedule`" in text
    assert text.rstrip().endswith("6 problem(s) found")


def test_redis_unreachable_is_a_problem_not_a_crash(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    r = sub(bench, "doctor", "--format", "json", HOOKSCHEDULER_REDIS_URL="redis://:supersecret@127.0.0.1:1/0")
    assert r.code == 1 and "Traceback" not in r.out + r.err
    assert "supersecret" not in r.out + r.err
    problems = _problems(r)
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in problems["redis"]["problem"]
    checks = {c["check"]: c for c in r.json()["checks"]}
    assert checks["database"]["ok"] is True  # the other checks still ran
    assert checks["queues"]["detail"] == "not checked: Redis unreachable"
    # a check that could not run is never listed as ok (nor as a second problem)
    assert checks["queues"]["ok"] is None and checks["scheduler process"]["ok"] is None
    assert "queues" not in problems and r.json()["ok"] is False
    text = sub(bench, "doctor", HOOKSCHEDULER_REDIS_URL="redis://127.0.0.1:1/0")
    assert "SKIP  queues" in text.out and "ok    queues" not in text.out
    assert "check(s) could not run" in text.out


def test_database_unreachable_lists_every_check_that_needs_it_as_not_run(bench_factory, redis_client):
    """With the database down every check that reads it is listed as SKIP with why, and counted in the summary,
    as with Redis down; the checks that need only Redis still run; the hint fits a refused connection."""
    bench = bench_factory.make(APPS)
    ctx, _ = migrated(bench, utcnow())
    _alive(redis_client, ctx.bench.bench_id)
    down = "postgresql://postgres@127.0.0.1:1/x"
    r = sub(bench, "doctor", "--format", "json", HOOKSCHEDULER_DB_URL=down)
    assert r.code == 1 and "Traceback" not in r.out + r.err
    checks = {c["check"]: c for c in r.json()["checks"]}
    assert set(_problems(r)) == {"database"}
    hint = checks["database"]["hint"]
    assert "is running" in hint and "host and port" in hint and "migrate" not in hint
    assert checks["database"]["detail"].count(down) == 1  # the URL once, not again inside the connect error
    for name in ("scheduler", "overdue jobs", "job rows", "clock excursion", "failed runs", "queue default"):
        assert checks[name]["ok"] is None and "the database is unavailable" in checks[name]["detail"], name
    assert checks["scheduler process"]["ok"] is True and checks["last tick"]["ok"] is True  # Redis only
    text = sub(bench, "doctor", HOOKSCHEDULER_DB_URL=down).out
    assert "SKIP  overdue jobs" in text and "SKIP  scheduler " in text
    assert text.rstrip().endswith("1 problem(s) found; 8 check(s) could not run")


def test_database_missing_or_outdated(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    r = run(bench, "doctor", "--format", "json")
    assert r.code == 1
    problem = _problems(r)["database"]
    assert "migrate" in problem["hint"]
    if db_kind == "postgres":  # a database the server does not have: migrate cannot create it
        gone = sub(bench, "doctor", "--format", "json", HOOKSCHEDULER_DB_URL="postgresql://postgres@127.0.0.1:5432/"
                   "hs_no_such_db")
        assert _problems(gone)["database"]["hint"].startswith("create the database on the server")
    ctx, _ = migrated(bench, utcnow())
    ctx.database()
    set_state("schema_version", "0")
    problem = _problems(run(bench, "doctor", "--format", "json"))["database"]
    assert f"schema version 0, expected {SCHEMA_VERSION}" in problem["problem"]


def test_doctor_checks_every_site(bench_factory, redis_client):
    bench = bench_factory.make(APPS, sites={"a.example": {}, "b.example": {}})
    ctx, _ = migrated(bench, utcnow(), site="a.example")
    migrated(bench, utcnow(), site="b.example")
    r = run(bench, "doctor", "--format", "json")
    assert {c["site"] for c in r.json()["checks"]} == {"a.example", "b.example"}
    assert {(p["site"], p["check"]) for p in r.json()["problems"]} >= {("a.example", "scheduler process"),
                                                                       ("b.example", "scheduler process")}
    _alive(redis_client, ctx.bench.bench_id, "a.example")
    sites_with_process_problem = {p["site"] for p in run(bench, "doctor", "--format", "json").json()["problems"]
                                  if p["check"] == "scheduler process"}
    assert sites_with_process_problem == {"b.example"}
    assert run(bench, "doctor", site="a.example").out.startswith("-----Site a.example-----")


def test_last_tick_too_old(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    ctx, _ = migrated(bench, utcnow())
    _alive(redis_client, ctx.bench.bench_id)
    redis_client.set(last_tick_key(ctx.bench.bench_id, "default"),
                     (utcnow() - timedelta(minutes=30)).isoformat() + "Z")
    p = _problems(run(bench, "doctor", "--format", "json"))
    assert "over 3 min ago" in p["last tick"]["problem"]
