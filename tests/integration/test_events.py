"""Job started / finished / failed events on the site's Redis pub/sub channel."""

from __future__ import annotations

from datetime import datetime

import pytest

import hookscheduler
from hookscheduler import enqueue
from hookscheduler.background.events import listen, publish, subscribe
from hookscheduler.broker.keys import events_channel
from hookscheduler.schedule.claim import run_pass
from tests.helpers import drain
from tests.integration.bgjobs_support import cli, make_bench, site

pytestmark = pytest.mark.usefixtures("fresh_api")  # the API forgets the bench a previous test chose


def test_background_jobs_announce_start_and_outcome(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    ok = enqueue("bgapp.tasks.add", a=1, b=1, job_name="adding")
    bad = enqueue("bgapp.tasks.fail_with", message="nope")
    drain(ctx.bench.bench_id, conn)
    events = list(listen(pubsub, timeout=1))
    pubsub.close()
    assert [(e["event"], e["job_id"]) for e in events] == [
        ("started", ok.id), ("finished", ok.id), ("started", bad.id), ("failed", bad.id)]
    finished, failed = events[1], events[3]
    assert (finished["site"], finished["kind"], finished["job_name"], finished["method"], finished["queue"]) == (
        "default", "background", "adding", "bgapp.tasks.add", "default")
    assert finished["duration"] >= 0 and finished["at"].endswith("Z") and finished["worker"]
    assert failed["error"] == "ValueError: nope" and "timed_out" not in failed


def test_scheduled_runs_announce_their_job_and_slot(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.seen", "bgapp.tasks.boom"]})
    ctx, conn = site(bench)
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    drain(ctx.bench.bench_id, conn)
    events = list(listen(pubsub, timeout=1))
    pubsub.close()
    by_job = {(e["job_name"], e["event"]): e for e in events}
    assert set(by_job) == {("bgapp.tasks.seen", "started"), ("bgapp.tasks.seen", "finished"),
                           ("bgapp.tasks.boom", "started"), ("bgapp.tasks.boom", "failed")}
    done = by_job[("bgapp.tasks.seen", "finished")]
    assert (done["kind"], done["trigger"], done["slot"]) == ("scheduled", "schedule", "2026-01-05T11:00:00Z")
    assert "RuntimeError: boom" in by_job[("bgapp.tasks.boom", "failed")]["error"]


def test_events_are_per_site(bench_factory):
    bench = make_bench(bench_factory, sites={"one.local": {}, "two.local": {}})
    ctx, conn = site(bench, "one.local")
    mine, theirs = subscribe(conn, ctx.bench.bench_id, "one.local"), subscribe(conn, ctx.bench.bench_id, "two.local")
    hookscheduler.init(bench=bench, site="two.local")
    enqueue("bgapp.tasks.ok")
    drain(ctx.bench.bench_id, conn)
    assert [e["event"] for e in listen(theirs, timeout=1)] == ["started", "finished"]
    assert list(listen(mine, timeout=0.2)) == []
    mine.close()
    theirs.close()


def test_the_channel_name_and_json_are_what_a_front_end_subscribes_to(redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("hookscheduler:benchx:site.local:events")
    assert events_channel("benchx", "site.local") == "hookscheduler:benchx:site.local:events"
    publish(redis_client, "benchx", "site.local", "finished", job_id="j1", duration=0.5)
    [payload] = list(listen(pubsub, timeout=0.5))
    pubsub.close()
    assert payload["event"] == "finished" and payload["job_id"] == "j1" and payload["site"] == "site.local"


def test_a_work_horse_that_dies_announces_its_job_and_how_it_ended(bench_factory):
    """A horse that exits or is killed cannot report; the worker announces the failure with the same fields
    as the runner's own events, and says how the horse ended (an exit code, a signal), not a raw wait status."""
    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.exit_now"]})
    ctx, conn = site(bench)
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    killed = enqueue("bgapp.tasks.kill_self", job_name="killing")
    done = cli(bench, "worker", "--burst", timeout=120)
    assert done.returncode == 0, done.stderr
    failed = {e["job_name"]: e for e in listen(pubsub, timeout=1) if e["event"] == "failed"}
    pubsub.close()
    exited, signalled = failed["bgapp.tasks.exit_now"], failed["killing"]
    assert (exited["kind"], exited["trigger"], exited["slot"], exited["queue"], exited["method"]) == (
        "scheduled", "schedule", "2026-01-05T11:00:00Z", "default", "bgapp.tasks.exit_now")
    assert exited["error"] == "work horse died (exit code 1)" and exited["worker"] and exited["duration"] >= 0
    assert (signalled["job_id"], signalled["kind"], signalled["trigger"], signalled["slot"]) == (
        killed.id, "background", "enqueue", None)
    assert signalled["error"] == "work horse died (killed by signal 9, SIGKILL)"


LEAKY = "cannot reach redis://user:s3cretpw@db.example.com:6379/0 nor postgresql://u:pgpass123@h/db"


def test_a_failed_event_shows_no_password_of_the_error(bench_factory):
    """Any client of the site's Redis can subscribe: the error of a failed event is redacted as the ledger's."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    bad = enqueue("bgapp.tasks.fail_with", message=LEAKY)
    drain(ctx.bench.bench_id, conn)
    [failed] = [e for e in listen(pubsub, timeout=1) if e["event"] == "failed"]
    pubsub.close()
    assert failed["job_id"] == bad.id
    assert failed["error"] == ("ValueError: cannot reach redis://user:***@db.example.com:6379/0 "
                               "nor postgresql://u:***@h/db")


def test_publish_redacts_every_text_field_at_any_depth(redis_client):
    """Redacting in ``publish`` itself: no caller, present or future, can put a password on the channel."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events_channel("benchx", "site.local"))
    publish(redis_client, "benchx", "site.local", "failed", job_id="j1", job_name="redis://a:pw1234@h",
            error=LEAKY, extra={"dsn": ["password=hunter22 host=h"]}, other=ValueError("redis://b:pw5678@h"))
    [payload] = list(listen(pubsub, timeout=0.5))
    pubsub.close()
    text = str(payload)
    assert not any(secret in text for secret in ("s3cretpw", "pgpass123", "pw1234", "hunter22", "pw5678")), text
    assert payload["job_name"] == "redis://a:***@h" and payload["extra"] == {"dsn": ["password=*** host=h"]}


def test_a_job_id_holding_a_configured_password_as_a_word_reaches_subscribers_unchanged(redis_client):
    """A subscriber matches the events of the jobs it enqueued by id and name: a configured password that is also
    a word of them (``backup``) must not blank them, while the error's text is still redacted."""
    from hookscheduler.security.redact import register_url_secret

    register_url_secret("postgresql://app:backup@db/app")
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events_channel("benchx", "site.local"))
    publish(redis_client, "benchx", "site.local", "failed", job_id="benchx_1_nightly-backup-2026-12-07",
            job_name="nightly-backup", method="app.tasks.backup", error="cannot reach postgresql://app:backup@db")
    [payload] = list(listen(pubsub, timeout=0.5))
    pubsub.close()
    assert (payload["job_id"], payload["job_name"], payload["method"]) == (
        "benchx_1_nightly-backup-2026-12-07", "nightly-backup", "app.tasks.backup")
    assert "backup" not in payload["error"]
