"""``hookscheduler.enqueue`` and friends on real Redis (and the site database where a transaction matters)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest
import redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus

import hookscheduler
from hookscheduler import enqueue, enqueue_batches, enqueue_doc, get_job_status, is_job_enqueued
from hookscheduler.broker.keys import queue_name, site_prefix
from hookscheduler.exceptions import BenchError, QueueNotFound
from tests.helpers import drain, env_for, redis_cleanup
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


def test_batches_at_the_front_keep_their_order(bench_factory):
    """Each pushed to the front in turn, they ran last batch first."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    waiting = enqueue("bgapp.tasks.add", a=1, b=0)
    jobs = enqueue_batches("bgapp.tasks.process", range(5), batch_size=2, at_front=True)
    assert [j.kwargs["job_name"] for j in jobs] == [f"bgapp.tasks.process (batch {i})" for i in (1, 2, 3)]
    assert _queue(ctx, conn).job_ids == [*(j.id for j in jobs), waiting.id]
    drain(ctx.bench.bench_id, conn)
    assert [r["items"] for r in out_rows(bench, "process")] == [[0, 1], [2, 3], [4]]


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


def _deferred_pair(ctx, invoice, bad_kwargs):
    """A transaction that writes a row and defers a job with ``bad_kwargs``, then a valid one."""
    db = ctx.database()
    with db.atomic():
        invoice.create(name="INV-AC")
        enqueue("bgapp.tasks.ok", job_id="ac-bad", enqueue_after_commit=True, **bad_kwargs)
        enqueue("bgapp.tasks.add", job_id="ac-good", enqueue_after_commit=True, a=1, b=2)


@pytest.mark.parametrize("after_commit", [False, True])
def test_arguments_that_cannot_be_serialised_are_refused_at_the_call(bench_factory, db_kind, after_commit):
    """Refused by the call that passed them, deferred or not: found at the commit, the error came out of a
    transaction that had committed and dropped the transaction's other deferred jobs."""
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    invoice = create_invoice_table(ctx)
    db = ctx.database()
    with db.atomic():
        invoice.create(name="INV-1")
        with pytest.raises(TypeError) as err:
            enqueue("bgapp.tasks.ok", job_id="ac-bad", enqueue_after_commit=after_commit, lock=threading.Lock(),
                    order=1)
        enqueue("bgapp.tasks.add", job_id="ac-good", enqueue_after_commit=after_commit, a=1, b=2)
    message = str(err.value)
    assert "\n" not in message and "'bgapp.tasks.ok'" in message and "argument 'lock'" in message
    assert "cannot pickle" in message and "nothing was queued" in message
    assert [r.name for r in invoice.select()] == ["INV-1"]
    assert get_job_status("ac-bad") is None and get_job_status("ac-good") == JobStatus.QUEUED
    drain(ctx.bench.bench_id, conn)
    assert [(r["a"], r["b"]) for r in out_rows(bench, "add")] == [(1, 2)]


def test_a_deferred_argument_is_taken_as_it_was_at_the_call(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    items = ["a"]
    with ctx.database().atomic():
        enqueue("bgapp.tasks.process", enqueue_after_commit=True, items=items)
        items.append("b")  # changed after the call, before the commit
    drain(ctx.bench.bench_id, conn)
    assert [r["items"] for r in out_rows(bench, "process")] == [["a"]]


def test_a_deferred_send_that_fails_after_the_commit_is_logged_and_the_others_are_sent(bench_factory, db_kind,
                                                                                      monkeypatch, caplog):
    """Redis refusing one job at the commit: the transaction stands (no exception from its end), the other
    deferred jobs are still sent, and the lost one is logged at ERROR with its id, method and (redacted)
    keyword arguments, to enqueue it again from the log."""
    bench = make_bench(bench_factory, db_kind)
    ctx, _conn = site(bench)
    invoice = create_invoice_table(ctx)
    real = Queue.enqueue_job

    def flaky(self, job, *args, **kwargs):
        if job.id.endswith("ac-bad"):
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return real(self, job, *args, **kwargs)

    monkeypatch.setattr(Queue, "enqueue_job", flaky)
    with caplog.at_level(logging.ERROR, logger="hookscheduler.background.api"):
        _deferred_pair(ctx, invoice, {"order": 1, "password": "hunter22"})
    assert [r.name for r in invoice.select()] == ["INV-AC"]
    assert get_job_status("ac-bad") is None and get_job_status("ac-good") == JobStatus.QUEUED
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "ac-bad" in errors[0] and "bgapp.tasks.ok" in errors[0]
    assert "Connection refused" in errors[0] and "committed" in errors[0]
    assert "keyword arguments {'order': 1, 'password': '***'}" in errors[0] and "hunter22" not in errors[0]


def test_enqueue_outside_a_bench_is_refused(bench_factory, monkeypatch, tmp_path, redis_url):
    """A folder without apps/ is no bench: its jobs would go to a bench id that no worker serves."""
    bench_factory.make()  # the test Redis for the environment; the bench itself is not used
    monkeypatch.delenv("HOOKSCHEDULER_BENCH")
    monkeypatch.setenv("HOOKSCHEDULER_REDIS_URL", redis_url)  # before the fix the job went there, not to db 0
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    hookscheduler.init()
    with pytest.raises(BenchError) as err:
        enqueue("badapp.tasks.ok")
    message = str(err.value)
    assert "\n" not in message and f"{folder} is not a bench (it has no apps/ folder)" in message
    assert "hookscheduler.init(bench=" in message and "$HOOKSCHEDULER_BENCH" in message
    with pytest.raises(BenchError, match="is not a bench"):
        hookscheduler.init(bench=folder)


@pytest.mark.parametrize("timeout", [-5, 0, 0.5, 1.5, "abc", "1h", True, 2**31, [60]])
def test_a_timeout_that_is_not_a_whole_number_of_seconds_is_refused(bench_factory, timeout):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    for call in (lambda: enqueue("bgapp.tasks.ok", timeout=timeout),
                 lambda: enqueue_batches("bgapp.tasks.process", [1], timeout=timeout),
                 lambda: enqueue_doc("bgapp.tasks.Invoice", "INV-1", "submit", timeout=timeout)):
        with pytest.raises(ValueError) as err:
            call()
        assert "\n" not in str(err.value)
        assert "timeout must be a whole number of seconds from 1 to 2147483647" in str(err.value)
    assert _queue(ctx, conn).count == 0
    assert enqueue("bgapp.tasks.ok", timeout=2**31 - 1).timeout == 2**31 - 1


@pytest.mark.parametrize(("options", "expected"), [
    ({"job_name": 42}, "job_name must be a non-empty string"),
    ({"job_name": ""}, "job_name must be a non-empty string"),
    ({"job_id": 7}, "job_id must be a non-empty string"),
    ({"job_id": " "}, "job_id must be a non-empty string"),
    ({"job_name": "nice\n2026-12-07 22:00:00,000 INFO rq.worker: FORGED"},
     "job_name contains the control character '\\n'"),
    ({"job_name": "red \x1b[31m"}, "job_name contains the control character '\\x1b'"),
    ({"job_name": "txt.exe\u202e"}, "job_name contains the control character '\\u202e'"),
    ({"job_name": "tab\tbed", "now": True}, "job_name contains the control character '\\t'"),
    ({"job_id": "one\rtwo"}, "job_id contains the control character '\\r'"),
    ({"now": "false"}, "now must be True or False"),
    ({"at_front": "yes"}, "at_front must be True or False"),
    ({"enqueue_after_commit": 2}, "enqueue_after_commit must be True or False"),
    ({"deduplicate": "no", "job_id": "x"}, "deduplicate must be True or False"),
    ({"is_async": "false"}, "is_async must be True or False"),
    ({"queue": ["default"]}, "queue must be a queue's name"),
])
def test_bad_options_are_refused_at_the_call(bench_factory, options, expected):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    with pytest.raises(ValueError) as err:
        enqueue("bgapp.tasks.ok", **options)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert _queue(ctx, conn).count == 0 and out_rows(bench) == []
    assert enqueue("bgapp.tasks.ok", now=None, at_front=0, job_name="fine") is not None  # Frappe's falsy flags


@pytest.mark.parametrize(("options", "expected"), [
    ({"batch_size": "10"}, "batch_size must be a whole number from 1"),
    ({"batch_size": True}, "batch_size must be a whole number from 1"),
    ({"batch_size": 0}, "batch_size must be a whole number from 1"),
    ({"arg_name": "my items"}, "arg_name must be the name of the method's parameter"),
    ({"job_name": 3}, "job_name must be a non-empty string"),
    ({"job_name": "batch\nFORGED"}, "job_name contains the control character '\\n'"),
    ({"at_front": "no"}, "at_front must be True or False"),
])
def test_bad_batch_options_are_refused_at_the_call(bench_factory, options, expected):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    with pytest.raises(ValueError) as err:
        enqueue_batches("bgapp.tasks.process", [1, 2], **options)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert _queue(ctx, conn).count == 0


@pytest.mark.parametrize("call", [
    lambda: enqueue("bgapp.tasks.nope"),
    lambda: enqueue("nomod.tasks.nope"),
    lambda: enqueue("bgapp.tasks.nope", enqueue_after_commit=True),
    lambda: enqueue_batches("bgapp.tasks.nope", [1]),
    lambda: enqueue("bgapp.tasks.ok", on_success="nonexistent.fn"),
    lambda: enqueue("bgapp.tasks.ok", on_failure="bgapp.tasks.nope"),
    lambda: enqueue_doc("bgapp.tasks.NoSuchModel", "INV-1", "submit"),
], ids=["attribute", "module", "after-commit", "batches", "on_success", "on_failure", "doc-model"])
def test_a_dotted_path_that_does_not_import_is_refused_at_the_call(bench_factory, call):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "does not import" in message and "nothing was queued" in message
    assert _queue(ctx, conn).count == 0


def test_a_method_the_model_does_not_have_is_refused_by_enqueue_doc(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    invoice = create_invoice_table(ctx)
    with pytest.raises(ValueError, match="has no method 'sbumit'"):
        enqueue_doc(invoice, "INV-1", "sbumit")
    with pytest.raises(ValueError) as err:  # the model as a dotted path is checked as its class is
        enqueue_doc("bgapp.tasks.Invoice", "INV-1", "nope")
    assert "model bgapp.tasks.Invoice has no method 'nope'" in str(err.value) and "\n" not in str(err.value)
    assert _queue(ctx, conn).count == 0
    assert enqueue_doc("bgapp.tasks.Invoice", "INV-1", "submit", note_text="n") is not None


def test_reusing_the_job_id_of_a_pending_job_is_refused(bench_factory):
    """RQ would queue the id twice, overwrite the first call's arguments and run the second call's twice."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    first = enqueue("bgapp.tasks.add", job_id="once", a=1, b=1)
    with pytest.raises(DuplicateJobError) as err:
        enqueue("bgapp.tasks.add", job_id="once", a=2, b=2)
    message = str(err.value)
    assert "\n" not in message and "'once' is already queued" in message and "deduplicate=True" in message
    with ctx.database().atomic(), pytest.raises(DuplicateJobError):
        enqueue("bgapp.tasks.add", job_id="once", enqueue_after_commit=True, a=3, b=3)
    assert _queue(ctx, conn).count == 1
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1]
    again = enqueue("bgapp.tasks.add", job_id="once", a=4, b=4)  # finished: the id is free again
    assert again.id == first.id
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1, 4]


def test_a_batch_that_cannot_be_serialised_is_named_and_none_is_sent(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    items = [1, 2, 3, threading.Lock()]
    with pytest.raises(TypeError) as err:
        enqueue_batches("bgapp.tasks.process", items, batch_size=2)
    message = str(err.value)
    assert "\n" not in message and "argument 'items (batch 2)' cannot be serialised" in message
    assert "nothing was queued" in message
    assert _queue(ctx, conn).count == 0


def test_a_long_lived_process_follows_a_redis_queue_change_in_the_site_config(bench_factory, redis_url, caplog):
    """An application process lives as long as a worker: after ``set-config redis_queue`` its jobs go to the
    Redis the workers now read, not to the one named when the process first enqueued (where they would wait for
    ever). A config that no longer loads keeps the last one, logged once."""
    from hookscheduler.config import update_site_config

    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    first = enqueue("bgapp.tasks.add", a=1, b=1)
    assert _queue(ctx, conn).job_ids == [first.id]
    other_url = redis_url.rsplit("/", 1)[0] + "/12"
    other = redis.Redis.from_url(other_url)
    try:
        update_site_config(ctx.site, {"redis_queue": other_url})
        second = enqueue("bgapp.tasks.add", a=2, b=2)
        assert _queue(ctx, other).job_ids == [second.id] and _queue(ctx, conn).job_ids == [first.id]
        config = bench / "sites" / "default" / "site_config.json"
        good = config.read_text()
        config.write_text("{not json")
        with caplog.at_level("ERROR", logger="hookscheduler.background.api"):
            third, fourth = enqueue("bgapp.tasks.add", a=3, b=3), enqueue("bgapp.tasks.add", a=4, b=4)
        assert _queue(ctx, other).job_ids == [second.id, third.id, fourth.id]
        assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["site default: its config no longer loads"]
        config.write_text(good.replace(other_url, redis_url))
        fifth = enqueue("bgapp.tasks.add", a=5, b=5)
        assert _queue(ctx, conn).job_ids == [first.id, fifth.id]
    finally:
        redis_cleanup(other, ctx.bench.bench_id)


@pytest.mark.parametrize("method", ["bgapp.tasks.ok\nFORGED LINE", "bgapp.tasks.ok\x1b[2K"])
def test_a_method_path_with_a_control_character_is_refused(bench_factory, method):
    """A dotted path reaches the worker's log lines as the job's description: it must be one printable line."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    for now in (False, True):
        with pytest.raises(ValueError) as err:
            enqueue(method, now=now)
        assert "is not a dotted path" in str(err.value) and "\n" not in str(err.value)
    assert _queue(ctx, conn).count == 0


def test_frappes_event_keyword_is_kept_by_the_call_not_passed_to_the_method(bench_factory):
    """``frappe.enqueue(..., event="daily")`` keeps ``event`` for itself: passed on, the method got an
    unexpected keyword and failed with a TypeError."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    job = enqueue("bgapp.tasks.add", event="daily", a=1, b=1)
    assert job.kwargs["kwargs"] == {"a": 1, "b": 1} and job.meta["hookscheduler"]["event"] == "daily"
    doc = enqueue_doc("bgapp.tasks.Invoice", "INV-1", "submit", event="hourly", note_text="n")
    assert doc.kwargs["kwargs"]["doc_kwargs"] == {"note_text": "n"}
    assert enqueue("bgapp.tasks.add", now=True, event="daily", a=2, b=2) == 4
    with pytest.raises(ValueError, match="event must be a non-empty string"):
        enqueue("bgapp.tasks.add", event=5, a=1, b=1)
    drain(ctx.bench.bench_id, conn)
    assert job.return_value(refresh=True) == 2


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: enqueue("add"), "enqueue: method 'add' is not a dotted path such as 'my_app.tasks.run'"),
    (lambda: enqueue("bgapp.tasks.ok", on_failure=5), "enqueue: on_failure must be a dotted path or an importable "
                                                      "function, not int"),
    (lambda: enqueue("bgapp.tasks.ok", on_success="ok"), "enqueue: on_success 'ok' is not a dotted path"),
    (lambda: enqueue(lambda: None), "enqueue: method: cannot enqueue"),
    (lambda: enqueue_batches("process", [1]), "enqueue_batches: method 'process' is not a dotted path"),
], ids=["method", "on_failure", "on_success", "lambda", "batches"])
def test_a_bad_method_or_callback_is_refused_naming_the_parameter(bench_factory, call, expected):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    with pytest.raises((TypeError, ValueError)) as err:
        call()
    message = str(err.value)
    assert message.startswith(expected) and message.endswith("nothing was queued") and "\n" not in message
    assert _queue(ctx, conn).count == 0


def test_a_second_deferred_job_with_the_same_id_in_a_transaction_is_refused_at_the_call(bench_factory, db_kind):
    """Both were accepted, and the second was refused after the commit, logged at ERROR far from the call."""
    bench = make_bench(bench_factory, db_kind)
    ctx, conn = site(bench)
    with ctx.database().atomic():
        assert enqueue("bgapp.tasks.add", enqueue_after_commit=True, job_id="dupdef", a=1, b=1) is None
        with pytest.raises(DuplicateJobError) as err:
            enqueue("bgapp.tasks.add", enqueue_after_commit=True, job_id="dupdef", a=2, b=2)
        assert enqueue("bgapp.tasks.add", enqueue_after_commit=True, job_id="dupdef", deduplicate=True,
                       a=3, b=3) is None
        enqueue("bgapp.tasks.add", enqueue_after_commit=True, job_id="other", a=4, b=4)
    message = str(err.value)
    assert "'dupdef' is already deferred by this transaction" in message and "nothing was queued" in message
    with ctx.database().atomic(), pytest.raises(DuplicateJobError, match="already queued"):  # a new transaction
        enqueue("bgapp.tasks.add", enqueue_after_commit=True, job_id="dupdef", a=5, b=5)
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1, 4]
