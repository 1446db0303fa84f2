"""A live worker registers again when Redis lost its registration (a restart without persistence)."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timezone

import pytest
import redis
from rq import Queue, worker_registration
from rq.worker import WorkerStatus

from hookscheduler import enqueue
from hookscheduler.ops.rq_view import list_workers, workers_per_queue
from hookscheduler.worker.process import HookWorker, worker_name
from tests.integration.bgjobs_support import make_bench, out_rows, site, spawn, wait_for
from tests.integration.test_loop import private_redis  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_api")
QUEUES = ["short", "default", "long"]


def test_live_workers_are_listed_again_after_redis_restarts_without_its_data(bench_factory, private_redis):  # noqa: F811
    bench = make_bench(bench_factory, common={"redis_queue": private_redis.url})
    ctx, _ = site(bench)
    bench_id = ctx.bench.bench_id
    conn = redis.Redis(port=private_redis.port)
    idle = spawn(bench, "worker", "--queue", "short,default")
    busy = spawn(bench, "worker", "--queue", "long", HS_TEST_SLOW="2")
    try:
        everyone = dict.fromkeys(QUEUES, 1)
        wait_for(lambda: workers_per_queue(conn, bench_id, QUEUES) == everyone, 30, "both workers to start", idle)
        enqueue("bgapp.tasks.sleeper", queue="long")
        wait_for(lambda: out_rows(bench, "sleeper"), 30, "the long job to start", busy)
        private_redis.stop()  # SIGKILL, no RDB: every key is gone, the workers are alive and one is in a job
        private_redis.start()
        # the idle worker reconnects and registers at its next heartbeat, the busy one at its next after the job
        wait_for(lambda: workers_per_queue(conn, bench_id, QUEUES) == everyone, 30, "the workers to register again",
                 busy)
        listed = {w["pid"]: w for w in list_workers(conn, bench_id, ctx.name)}
        assert set(listed) == {idle.pid, busy.pid}
        assert listed[idle.pid]["queue_type"] == "short, default" and listed[busy.pid]["queue_type"] == "long"
        assert all(w["hostname"] and w["birth_date"] and w["status"] for w in listed.values())
        assert idle.poll() is None and busy.poll() is None
    finally:
        for proc in (idle, busy):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_worker_whose_registration_is_gone_registers_again_at_its_heartbeat(redis_client):
    """In process: the idle loop's heartbeat, and the job-monitoring one (a worker in a long job)."""
    queue = Queue(f"rereg-{os.getpid()}:long", connection=redis_client)
    worker = HookWorker([queue], connection=redis_client, name=worker_name())
    worker.register_birth()
    worker.set_state(WorkerStatus.BUSY)
    born = worker.birth_date
    try:
        assert worker.key in worker_registration.get_keys(queue=queue)
        for in_a_job in (False, True):
            job = queue.enqueue("builtins.len", "abc")
            execution = worker.prepare_execution(job)
            worker.heartbeat()  # registered: nothing to do
            redis_client.delete(worker.key, worker.redis_workers_keys, worker_registration.WORKERS_BY_QUEUE_KEY
                                % queue.name)  # what a restart without persistence leaves of it
            if in_a_job:
                worker.maintain_heartbeats(job, execution)
            else:
                worker.heartbeat()
            assert worker.key in worker_registration.get_keys(queue=queue)
            assert worker.key in worker_registration.get_keys(connection=redis_client)
            saved = {k.decode(): v.decode() for k, v in redis_client.hgetall(worker.key).items()}
            assert saved["queues"] == queue.name and saved["pid"] == str(os.getpid()) and saved["state"] == "busy"
            assert saved["birth"].startswith(born.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
            assert 0 < redis_client.ttl(worker.key) <= worker.worker_ttl + 60
            job.delete()
    finally:
        worker.register_death()
        redis_client.delete(worker.key, worker.executions_key)
        queue.delete(delete_jobs=True)
    assert isinstance(born, datetime)
