"""``hookscheduler.enqueue`` and friends on real Redis (and the site database where a transaction matters)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rq import Queue
from rq.job import JobStatus

import hookscheduler
from hookscheduler import enqueue, enqueue_batches, enqueue_doc, get_job_status, is_job_enqueued
from hookscheduler.broker.keys import queue_name, site_prefix
from hookscheduler.exceptions import BenchError, QueueNotFound
from tests.helpers import drain, env_for
from tests.integration.bgjobs_support import create_invoice_table, make_bench, out_rows, site

pytestmark = pytest.mark.usefixtures("fresh_api")  # the API forgets the bench a previous test chose


def _queue(ctx, conn, name="default"):
    return Queue(queue_name(ctx.bench.bench_id, name), connection=conn)


def test_dotted_path_and_callable_run_in_a_worker_with_the_job_context(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    from bgapp.tasks import add  # type: ignore[import-not-found]

    j1 = enqueue("bgapp.tasks.add", a=1, b=2)
    j2 = enqueue(add, a=3, b=4, job_name="adding")
    assert _queue(ctx, conn).count == 2
    drain(ctx.bench.bench_id, conn)
    assert j1.return_value(refresh=True) == 3 and j2.return_value(refresh=True) == 7
    rows = out_rows(bench, "add")
    assert [(r["a"], r["site"], r["kind"], r["trigger"], r["queue"]) for r in rows] == [
        (1, "default", "background", "enqueue", "default"), (3, "default", "background", "enqueue", "default")]
    assert rows[1]["job"] == "adding" and rows[0]["job"] == "bgapp.tasks.add"
    assert rows[0]["rq_job_id"] == j1.id


def test_now_and_is_async_false_run_inline_and_return_the_result(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    assert enqueue("bgapp.tasks.add", now=True, a=2, b=3) == 5
    assert enqueue("bgapp.tasks.add", is_async=False, a=2, b=5) == 7
    assert enqueue("bgapp.tasks.ctx_info", now=True) == {"site": "default", "job": "bgapp.tasks.ctx_info",
                                                         "trigger": "inline", "kind": "background"}
    assert enqueue(lambda x: x * 2, now=True, x=21) == 42  # inline needs no importable path
    assert enqueue("bgapp.tasks.add", a=1, b=1, **{"async": False}) == 2  # Frappe's legacy spelling
    assert _queue(ctx, conn).count == 0


def test_timeout_defaults_per_queue_including_custom_queues(bench_factory):
    make_bench(bench_factory, common={"workers": {"bulk": {"timeout": 5000, "background_workers": 2}}})
    assert enqueue("bgapp.tasks.ok").timeout == 300
    assert enqueue("bgapp.tasks.ok", queue="short").timeout == 300
    assert enqueue("bgapp.tasks.ok", queue="long").timeout == 1500
    job = enqueue("bgapp.tasks.ok", queue="bulk")
    assert job.timeout == 5000 and job.origin.endswith(":bulk")
    assert enqueue("bgapp.tasks.ok", queue="long", timeout=42).timeout == 42


def test_unknown_queue_is_refused_listing_the_valid_ones(bench_factory):
    make_bench(bench_factory, common={"workers": {"bulk": {"timeout": 60}}})
    with pytest.raises(QueueNotFound) as err:
        enqueue("bgapp.tasks.ok", queue="nope")
    assert "'nope'" in str(err.value) and "short, default, long, bulk" in str(err.value)
    assert err.value.exit_code == 2


def test_a_lambda_is_refused_for_a_background_job(bench_factory):
    make_bench(bench_factory)
    with pytest.raises(ValueError, match="module-level function"):
        enqueue(lambda: None)


def test_job_id_is_namespaced_per_site(bench_factory):
    bench = make_bench(bench_factory, sites={"one.local": {}, "two.local": {}})
    hookscheduler.init(bench=bench, site="one.local")
    a = enqueue("bgapp.tasks.ok", job_id="sync:customers")
    assert get_job_status("sync:customers") == JobStatus.QUEUED
    hookscheduler.init(bench=bench, site="two.local")
    assert get_job_status("sync:customers") is None  # the other site's job is not ours
    b = enqueue("bgapp.tasks.ok", job_id="sync:customers")
    bench_id = bench_factory.bench_ids[-1]
    assert a.id.startswith(site_prefix(bench_id, "one.local")) and b.id.startswith(site_prefix(bench_id, "two.local"))
    assert a.id != b.id
    assert get_job_status(b.id) == JobStatus.QUEUED  # the full id works too


def test_deduplicate(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    with pytest.raises(ValueError, match="job_id"):
        enqueue("bgapp.tasks.ok", deduplicate=True)
    first = enqueue("bgapp.tasks.add", job_id="dedup", deduplicate=True, a=1, b=1)
    assert first is not None and is_job_enqueued("dedup")
    assert enqueue("bgapp.tasks.add", job_id="dedup", deduplicate=True, a=2, b=2) is None  # twin queued
    assert _queue(ctx, conn).count == 1
    drain(ctx.bench.bench_id, conn)
    assert get_job_status("dedup") == JobStatus.FINISHED and not is_job_enqueued("dedup")
    again = enqueue("bgapp.tasks.add", job_id="dedup", deduplicate=True, a=3, b=3)  # finished twin: replaced
    assert again is not None and again.id == first.id and get_job_status("dedup") == JobStatus.QUEUED
    drain(ctx.bench.bench_id, conn)
    enqueue("bgapp.tasks.fail_with", job_id="dedup-f", deduplicate=True)
    drain(ctx.bench.bench_id, conn)
    assert get_job_status("dedup-f") == JobStatus.FAILED
    assert enqueue("bgapp.tasks.add", job_id="dedup-f", deduplicate=True, a=0, b=0) is not None  # failed: replaced
    drain(ctx.bench.bench_id, conn)
    assert get_job_status("dedup-f") == JobStatus.FINISHED
    assert [r["a"] for r in out_rows(bench, "add")] == [1, 3, 0]


def test_enqueue_after_commit_waits_for_the_transaction_and_is_dropped_on_rollback(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    db = ctx.database()
    q = _queue(ctx, conn)
    with db.atomic():
        assert enqueue("bgapp.tasks.add", enqueue_after_commit=True, a=1, b=1) is None
        with db.atomic():  # a savepoint commits into the outer transaction: still waiting
            enqueue("bgapp.tasks.add", enqueue_after_commit=True, a=2, b=2)
        assert q.count == 0
    assert q.count == 2
    with pytest.raises(RuntimeError), db.atomic():
        enqueue("bgapp.tasks.add", enqueue_after_commit=True, a=3, b=3)
        raise RuntimeError("roll back")
    assert q.count == 2
    assert enqueue("bgapp.tasks.add", enqueue_after_commit=True, a=4, b=4) is not None  # no transaction: at once
    assert q.count == 3
    drain(ctx.bench.bench_id, conn)
    assert sorted(r["a"] for r in out_rows(bench, "add")) == [1, 2, 4]


def test_enqueue_after_commit_inside_a_job_follows_the_jobs_transaction(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    enqueue("bgapp.tasks.enqueue_after_commit_then", fail=True)
    drain(ctx.bench.bench_id, conn)
    assert out_rows(bench, "add") == []  # the failed job's transaction was rolled back: nothing was sent
    enqueue("bgapp.tasks.enqueue_after_commit_then")
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [99]


def test_at_front(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    enqueue("bgapp.tasks.add", a=1, b=0)
    enqueue("bgapp.tasks.add", a=2, b=0)
    enqueue("bgapp.tasks.add", a=3, b=0, at_front=True)
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [3, 1, 2]


def test_on_success_and_on_failure_callbacks(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    from bgapp.tasks import on_fail  # type: ignore[import-not-found]

    ok = enqueue("bgapp.tasks.add", a=20, b=22, on_success="bgapp.tasks.on_ok", on_failure=on_fail)
    bad = enqueue("bgapp.tasks.fail_with", message="nope", on_success="bgapp.tasks.on_ok", on_failure=on_fail)
    drain(ctx.bench.bench_id, conn)
    assert [(r["job_id"], r["result"]) for r in out_rows(bench, "on_success")] == [(ok.id, 42)]
    assert [(r["job_id"], r["error"]) for r in out_rows(bench, "on_failure")] == [(bad.id, "nope")]


def test_failure_reaches_rqs_failed_registry(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    job = enqueue("bgapp.tasks.fail_with", message="visible in RQ")
    drain(ctx.bench.bench_id, conn)
    registry = _queue(ctx, conn).failed_job_registry
    assert job.id in registry.get_job_ids()
    assert "ValueError: visible in RQ" in job.latest_result().exc_string


def test_enqueue_doc_commits_on_success_and_rolls_back_on_failure(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    invoice = create_invoice_table(ctx)
    invoice.create(name="INV-1")
    invoice.create(name="INV-2")
    enqueue_doc(invoice, "INV-1", "submit", note_text="by the worker")
    enqueue_doc("bgapp.tasks.Invoice", "INV-2", "submit_then_fail")
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert invoice.get_by_id("INV-1").status == "submitted: by the worker"
    assert invoice.get_by_id("INV-2").status == "new"  # the failed method's write was rolled back
    assert enqueue_doc(invoice, "INV-2", "submit", now=True, note_text="inline") == "submitted: inline"


def test_background_job_commits_its_writes_and_rolls_back_on_failure(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    invoice = create_invoice_table(ctx)
    enqueue("bgapp.tasks.write_row", name="kept")
    enqueue("bgapp.tasks.write_row_then_fail", name="dropped")
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [r.name for r in invoice.select()] == ["kept"]


def test_batches_split_a_large_iterable(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    jobs = enqueue_batches("bgapp.tasks.process", (f"item{i}" for i in range(25)), batch_size=10, tag="t",
                           job_name="invoices")
    assert len(jobs) == 3 and _queue(ctx, conn).count == 3
    assert enqueue_batches("bgapp.tasks.process", [], batch_size=10) == []
    drain(ctx.bench.bench_id, conn)
    rows = out_rows(bench, "process")
    assert [len(r["items"]) for r in rows] == [10, 10, 5]
    assert [i for r in rows for i in r["items"]] == [f"item{i}" for i in range(25)]
    assert {r["tag"] for r in rows} == {"t"} and rows[2]["job"] == "invoices (batch 3)"
    assert [j.return_value(refresh=True) for j in jobs] == [10, 10, 5]


def test_job_status_and_is_job_enqueued(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    assert get_job_status("never") is None and not is_job_enqueued("never")
    enqueue("bgapp.tasks.ok", job_id="poll-me")
    assert get_job_status("poll-me") == JobStatus.QUEUED and is_job_enqueued("poll-me")
    drain(ctx.bench.bench_id, conn)
    assert get_job_status("poll-me") == JobStatus.FINISHED and not is_job_enqueued("poll-me")


def test_a_job_enqueues_for_its_own_site(bench_factory):
    bench = make_bench(bench_factory, sites={"one.local": {}, "two.local": {}})
    hookscheduler.init(bench=bench, site="two.local")
    enqueue("bgapp.tasks.fan_out", n=2)
    ctx, conn = site(bench, "two.local")
    hookscheduler.init(bench=bench, site="one.local")  # the caller's choice does not leak into the worker
    drain(ctx.bench.bench_id, conn)
    assert [(r["a"], r["site"]) for r in out_rows(bench, "add")] == [(0, "two.local"), (1, "two.local")]


def test_the_api_finds_its_bench_from_the_environment_or_init(bench_factory, monkeypatch, tmp_path):
    bench = make_bench(bench_factory)
    monkeypatch.delenv("HOOKSCHEDULER_BENCH")
    monkeypatch.chdir(tmp_path)
    hookscheduler.init(bench=bench)
    assert enqueue("bgapp.tasks.ok").id.startswith(site_prefix(bench_factory.bench_ids[-1], "default"))
    monkeypatch.chdir(bench)  # as the CLI: the current directory
    hookscheduler.init()
    assert enqueue("bgapp.tasks.ok").id.startswith(site_prefix(bench_factory.bench_ids[-1], "default"))


API_SCRIPT = """
import sys
import hookscheduler
if len(sys.argv) > 1:
    hookscheduler.init(bench=sys.argv[1])
    import bgapp.tasks  # the app's own modules import once init has chosen the bench
print(hookscheduler.enqueue("bgapp.tasks.add", now=True, a=2, b=3))
"""


@pytest.mark.parametrize("chosen_by", ["init", "environment"])
def test_a_script_outside_the_bench_can_use_its_apps_dotted_paths(bench_factory, tmp_path, chosen_by):
    """A fresh process, not in the bench: the bench's apps/ goes on sys.path as the API opens it, as the CLI
    and the workers do."""
    bench = make_bench(bench_factory, migrate=False)
    env = env_for(bench)
    if chosen_by == "init":
        del env["HOOKSCHEDULER_BENCH"]
    proc = subprocess.run([sys.executable, "-c", API_SCRIPT, *([str(bench)] if chosen_by == "init" else [])],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "5\n"), proc.stderr
    assert [(r["a"], r["b"]) for r in out_rows(bench, "add")] == [(2, 3)]


def test_init_refuses_a_bench_that_does_not_exist(tmp_path):
    with pytest.raises(BenchError, match=f"bench {tmp_path / 'nowhere'} does not exist"):
        hookscheduler.init(bench=tmp_path / "nowhere")


def test_enqueue_works_on_a_site_that_was_never_migrated(bench_factory):
    bench = make_bench(bench_factory, migrate=False)
    ctx, conn = open_site_and_redis(bench)
    job = enqueue("bgapp.tasks.add", a=1, b=1)
    drain(ctx.bench.bench_id, conn)
    assert job.return_value(refresh=True) == 2


def open_site_and_redis(bench):
    from hookscheduler.broker.connection import redis_for
    from hookscheduler.context import open_site

    ctx = open_site(str(bench))
    return ctx, redis_for(ctx.site)
