"""Re-using an application's ``job_id`` on real Redis: concurrent callers, a dead worker's leftovers."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
import zlib
from typing import Any

import pytest
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus

import hookscheduler
from hookscheduler import enqueue, enqueue_batches, get_job_status
from hookscheduler.background import api
from hookscheduler.broker.keys import queue_name
from hookscheduler.ops import rq_view
from tests.helpers import drain
from tests.integration.bgjobs_support import cli, make_bench, out_rows, site

pytestmark = pytest.mark.usefixtures("fresh_api")

IDS = 20
RACERS = 3


def _racer(bench: str, tag: int, barrier: Any, results: Any) -> None:
    """One process re-using every id at the same moment as the others."""
    hookscheduler.init(bench=bench)
    api.current_site()
    outcome = []
    barrier.wait(timeout=60)
    for i in range(IDS):
        try:
            job = enqueue("bgapp.tasks.add", job_id=f"race-{i}", deduplicate=True, a=i, b=tag)
            outcome.append("J" if job is not None else "N")
        except Exception as exc:  # reported to the test, which fails on it
            outcome.append(f"{type(exc).__name__}: {exc}")
    results.put((tag, outcome))


def test_processes_reusing_the_ids_of_finished_jobs_at_once_queue_each_once(bench_factory):
    """Each of several processes deleted the twin it had seen finished, which could be the job another had
    just queued: the id was queued two or three times and ran as often. Exactly one replaces it now."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    for i in range(IDS):
        enqueue("bgapp.tasks.add", job_id=f"race-{i}", a=i, b=0)
    drain(ctx.bench.bench_id, conn)
    assert {get_job_status(f"race-{i}") for i in range(IDS)} == {JobStatus.FINISHED}
    mp = multiprocessing.get_context("fork")
    barrier, results = mp.Barrier(RACERS), mp.Queue()
    procs = [mp.Process(target=_racer, args=(str(bench), tag, barrier, results)) for tag in range(1, RACERS + 1)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    errors = [o for out in outcomes.values() for o in out if o not in ("J", "N")]
    assert errors == []
    for i in range(IDS):
        assert sorted(outcomes[tag][i] for tag in outcomes) == ["J", "N", "N"], i
    queued = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).job_ids
    assert len(queued) == IDS and len(set(queued)) == IDS
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "add")) == 2 * IDS  # the first round, then once per id


def test_a_twin_rewritten_between_the_read_and_the_replacement_is_not_deleted(bench_factory, monkeypatch):
    """The interleaving of the race, in one process: another caller queues the id right after this one read
    the twin as finished. The replacement is abandoned (the other's job stays, queued once)."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    enqueue("bgapp.tasks.add", job_id="twin", a=1, b=0)
    drain(ctx.bench.bench_id, conn)
    real = Job.fetch_many
    cut_in: list[Job] = []

    def fetch_then_someone_cuts_in(ids, connection, **kwargs):
        jobs = real(ids, connection=connection, **kwargs)
        if not cut_in and jobs[0] is not None and jobs[0].get_status(refresh=False) == JobStatus.FINISHED:
            monkeypatch.setattr(Job, "fetch_many", real)
            other = enqueue("bgapp.tasks.add", job_id="twin", a=2, b=0)  # replaces it (round 1, no cut-in)
            cut_in.append(other)
        return jobs

    monkeypatch.setattr(Job, "fetch_many", staticmethod(fetch_then_someone_cuts_in))
    assert enqueue("bgapp.tasks.add", job_id="twin", deduplicate=True, a=3, b=0) is None
    assert len(cut_in) == 1
    q = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn)
    assert q.job_ids == [cut_in[0].id]
    with pytest.raises(DuplicateJobError, match="already queued"):
        enqueue("bgapp.tasks.add", job_id="twin", a=4, b=0)
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1, 2]


def _abandon(conn: Any, job: Job) -> None:
    """What a worker killed mid-job leaves once RQ's cleanup has failed the job: the job failed, its
    execution still listed in ``rq:executions:<id>`` (and the started registry), the execution's hash expired."""
    execution_id = "deadbeef" * 4
    registry = ExecutionRegistry(job.id, conn)
    conn.zadd(registry.key, {execution_id: time.time() + 60})
    conn.zadd(job.started_job_registry.key, {f"{job.id}:{execution_id}": time.time() + 60})
    assert not conn.exists(Execution(execution_id, job.id, conn).key)


def test_the_id_of_a_job_whose_worker_was_killed_is_free_again(bench_factory):
    """RQ's delete raised ``ValueError: Execution ... not found in Redis`` for a minute after such a job
    failed, out of every enqueue re-using its id."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    enqueue("bgapp.tasks.fail_with", job_id="rebuild")
    drain(ctx.bench.bench_id, conn)
    job = api.get_job("rebuild")
    assert job is not None and job.get_status() == JobStatus.FAILED
    _abandon(conn, job)
    again = enqueue("bgapp.tasks.add", job_id="rebuild", deduplicate=True, a=1, b=1)
    assert again is not None and get_job_status("rebuild") == JobStatus.QUEUED
    assert conn.zcard(ExecutionRegistry(job.id, conn).key) == 0
    assert conn.zcard(job.started_job_registry.key) == 0
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1]


def test_rq_jobs_delete_removes_a_job_whose_worker_was_killed(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    enqueue("bgapp.tasks.fail_with", job_id="rebuild")
    drain(ctx.bench.bench_id, conn)
    job = api.get_job("rebuild")
    assert job is not None
    _abandon(conn, job)
    assert rq_view.delete(ctx, conn, "rebuild", "tester") == job.id
    assert get_job_status("rebuild") is None
    assert conn.zcard(ExecutionRegistry(job.id, conn).key) == 0


def test_long_ids_that_share_their_first_160_characters_are_distinct_jobs(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    base = "reindex-" + "customer-segment-" * 10
    a = enqueue("bgapp.tasks.add", job_id=base + "A", deduplicate=True, a=1, b=0)
    b = enqueue("bgapp.tasks.add", job_id=base + "B", deduplicate=True, a=2, b=0)
    assert a is not None and b is not None and a.id != b.id
    assert rq_view.resolve_job(conn, ctx.bench.bench_id, ctx.name, base + "B").id == b.id
    drain(ctx.bench.bench_id, conn)
    assert [r["a"] for r in out_rows(bench, "add")] == [1, 2]


def _in_main(monkeypatch, obj):
    """``obj`` as a script's own class or function: ``__main__.<name>`` (found there by pickle, here only)."""
    obj.__module__, obj.__qualname__ = "__main__", obj.__name__
    monkeypatch.setattr(sys.modules["__main__"], obj.__qualname__, obj, raising=False)
    return obj


def test_arguments_a_worker_cannot_unpickle_are_refused_at_the_call(bench_factory, monkeypatch):
    """A script's dataclass or function pickles (by reference to ``__main__``) but the worker's ``__main__`` is
    not the script: the job failed there with a DeserializationError and no failed event."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)

    @dataclasses.dataclass
    class Payload:
        n: int

    def local_fn() -> None:
        pass

    payload, fn = _in_main(monkeypatch, Payload), _in_main(monkeypatch, local_fn)
    for call, named in [(lambda: enqueue("bgapp.tasks.add", a=1, b=payload(1)), "argument 'b' holds __main__.Payload"),
                        (lambda: enqueue("bgapp.tasks.add", a=fn, b=1), "argument 'a' holds __main__.local_fn"),
                        (lambda: enqueue("bgapp.tasks.process", items={"x": [payload(2)]}, tag="t",
                                         enqueue_after_commit=True), "argument 'items' holds __main__.Payload"),
                        (lambda: enqueue_batches("bgapp.tasks.process", [1, 2, payload(3)], batch_size=2),
                         "argument 'items (batch 2)' holds __main__.Payload")]:
        with pytest.raises(TypeError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and named in message and "nothing was queued" in message
    assert enqueue("bgapp.tasks.process", items=["__main__"]) is not None  # the word alone is fine
    assert Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).count == 1


def test_job_status_copes_with_a_job_whose_arguments_cannot_be_decoded(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    job = enqueue("bgapp.tasks.add", job_id="undecodable", a=1, b=1)
    conn.hset(job.key, "data", zlib.compress(b"c__main__\nNoSuchPayload\n."))  # as a script's class reads there
    info = api.describe_job("undecodable", ctx)
    assert info is not None and info["status"] == "queued" and info["method"] == "bgapp.tasks.add"
    done = cli(bench, "job-status", "undecodable")
    assert done.returncode == 0, done.stderr
    assert "queued" in done.stdout and "bgapp.tasks.add" in done.stdout
