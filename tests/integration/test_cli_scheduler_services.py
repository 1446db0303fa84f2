"""Every operator command when a service is down or refuses us: one clear line, exit 1, no traceback, no secret."""

from __future__ import annotations

import json
import uuid

import pytest

from hookscheduler.store.models import utcnow
from tests.integration.opcli_support import assert_one_line_error, migrated, run, sub

APPS = {"app1": {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"]}}

REDIS_COMMANDS = [
    ["scheduler", "status"],
    ["show-pending-jobs"],
    ["purge-jobs"],
    ["ready-for-migration"],
    ["workers", "list"],
    ["rq-jobs", "list"],
    ["rq-jobs", "show", "x"],
    ["jobs", "run", "app1.tasks.ok"],
    ["trigger-scheduler-event", "daily"],
]

DB_COMMANDS = [
    ["jobs", "list"],
    ["jobs", "history"],
    ["jobs", "missed"],
    ["jobs", "next", "app1.tasks.ok"],
    ["jobs", "explain", "app1.tasks.ok"],
    ["jobs", "skip-next", "app1.tasks.ok"],
    ["scheduler", "status"],
    ["scheduler", "disable"],
    ["jobs", "run", "app1.tasks.ok"],
]


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=lambda a: " ".join(a))
def test_redis_unreachable(bench_factory, monkeypatch, args):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    monkeypatch.setenv("HOOKSCHEDULER_REDIS_URL", "redis://:secret-pw@127.0.0.1:1/0")
    assert_one_line_error(run(bench, *args), 1, "cannot reach Redis at redis://:***@127.0.0.1:1/0",
                          secret="secret-pw")


def test_status_still_answers_the_database_half_when_redis_is_down(bench_factory, monkeypatch):
    """During a Redis outage an operator still learns whether the scheduler is on; what only Redis knows is
    reported as unknown (null), never as 0, and the command still exits 1 with one line."""
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    assert run(bench, "scheduler", "disable", "--note", "deploy").code == 0
    monkeypatch.setenv("HOOKSCHEDULER_REDIS_URL", "redis://:secret-pw@127.0.0.1:1/0")
    r = run(bench, "scheduler", "status")
    assert_one_line_error(r, 1, "cannot reach Redis", secret="secret-pw")
    assert "Scheduler is disabled for site default (scheduler disabled: deploy" in r.out
    assert "Redis unreachable" in r.out
    r = run(bench, "scheduler", "status", "--format", "json")
    assert_one_line_error(r, 1, "cannot reach Redis", secret="secret-pw")
    data = json.loads(r.out)
    assert data["status"] == "disabled" and data["scheduler_alive"] is None and data["pending"] is None
    assert "cannot reach Redis" in data["redis_error"] and "secret-pw" not in r.out


def test_status_counts_the_runs_claimed_while_redis_was_down(bench_factory, monkeypatch, db_kind):
    """RQ's counts cannot show runs the scheduler claimed and could not send: status reads the outbox too."""
    from datetime import datetime, timedelta

    import redis

    from hookscheduler.schedule.claim import run_pass

    bench = bench_factory.make(APPS, db=db_kind)
    # fixed times: with the real clock the daily job falls due too when the test runs just after midnight
    t0 = datetime(2026, 1, 5, 10, 7)
    ctx, _ = migrated(bench, t0)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    result = run_pass(ctx, down, now=t0 + timedelta(hours=2))
    assert result.send_error and result.fired == 1
    ctx.close()
    shown = "1 run(s) claimed but not yet sent to Redis"
    with monkeypatch.context() as m:
        m.setenv("HOOKSCHEDULER_REDIS_URL", "redis://:secret-pw@127.0.0.1:1/0")
        r = run(bench, "scheduler", "status")
        assert r.code == 1 and "Redis unreachable" in r.out and shown in r.out
    r = run(bench, "scheduler", "status")
    assert r.code == 0 and "0 pending" in r.out and shown in r.out
    assert json.loads(run(bench, "scheduler", "status", "-v", "--format", "json").out)["unsent"] == 1
    assert "unsent" not in json.loads(run(bench, "scheduler", "status", "--format", "json").out)  # only -v shows it


def test_redis_unreachable_through_a_process(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    for args in (["show-pending-jobs"], ["jobs", "run", "app1.tasks.ok"], ["purge-jobs", "--event", "daily"]):
        r = sub(bench, *args, HOOKSCHEDULER_REDIS_URL="redis://:secret-pw@127.0.0.1:1/0")
        assert_one_line_error(r, 1, "cannot reach Redis", "HOOKSCHEDULER_REDIS_URL", secret="secret-pw")


@pytest.fixture
def acl_user(redis_client):
    """A Redis ACL user with a known password (removed afterwards)."""
    name = f"hs_test_{uuid.uuid4().hex[:8]}"
    redis_client.acl_setuser(name, enabled=True, passwords=["+right-pw"], keys=["*"], channels=["*"],
                             commands=["+@all"])
    yield name
    redis_client.acl_deluser(name)


def test_wrong_redis_password(bench_factory, acl_user, redis_url):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    hostpart = redis_url.split("://", 1)[1]
    bad = f"redis://{acl_user}:wrong-pw@{hostpart}"
    for args in (["show-pending-jobs"], ["scheduler", "status"], ["jobs", "run", "app1.tasks.ok"]):
        r = sub(bench, *args, HOOKSCHEDULER_REDIS_URL=bad)
        assert_one_line_error(r, 1, "refused the credentials", "rq_username/rq_password", secret="wrong-pw")
    r = sub(bench, "doctor", HOOKSCHEDULER_REDIS_URL=bad)
    assert r.code == 1 and "wrong-pw" not in r.out + r.err and "refused the credentials" in r.out
    # the right password works, and is not printed either
    good = f"redis://{acl_user}:right-pw@{hostpart}"
    r = sub(bench, "show-pending-jobs", "--format", "json", HOOKSCHEDULER_REDIS_URL=good)
    assert r.code == 0 and "right-pw" not in r.out + r.err


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a))
def test_database_missing(bench_factory, args):
    bench = bench_factory.make(APPS)  # never migrated: no database file
    assert_one_line_error(run(bench, *args), 1, "does not exist yet", "hookscheduler migrate")


def test_database_unreachable_is_redacted(bench_factory):
    bench = bench_factory.make(APPS)
    url = "postgresql://postgres:db-secret@127.0.0.1:5432/hs_no_such_db_x"
    for args in (["jobs", "history"], ["scheduler", "status"]):
        r = sub(bench, *args, HOOKSCHEDULER_DB_URL=url)
        assert_one_line_error(r, 1, "postgresql://postgres:***@127.0.0.1:5432/hs_no_such_db_x", secret="db-secret")
