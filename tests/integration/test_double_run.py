"""A run that any worker started is never sent again, whatever Redis lost (the chaos run's one double run):
a worker that cannot write the ledger starts a run (its start mark is only in Redis), Redis restarts without
persistence, and the scheduler must not re-send the run as "lost before it started". It cannot know that the run
did not start, so the run is recorded with an unknown outcome. A job Redis lost *without* restarting (its start
mark would still be there) is still re-sent."""

from __future__ import annotations

from datetime import datetime

import pytest
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.reconcile import LOST_UNKNOWN, reconcile_active
from hookscheduler.store.models import ScheduledJobLog, utcnow
from hookscheduler.worker import marks
from tests.integration.test_loop import PrivateRedis
from tests.integration.test_tick import setup_site

ELEVEN = datetime(2026, 1, 5, 11, 0, 1)
pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server without persistence, to restart."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.stop()


def _sent_run(bench_factory, db_kind, url):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, common={"redis_queue": url})
    conn = redis_for(ctx.site)
    [rq_id] = run_pass(ctx, conn, now=ELEVEN).sent_ids
    return ctx, conn, rq_id


def _ids(ctx, conn) -> list[str]:
    return Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).get_job_ids()


def test_a_run_started_without_the_ledger_is_not_sent_again_after_redis_lost_everything(
    bench_factory, db_kind, own_redis
):
    ctx, conn, rq_id = _sent_run(bench_factory, db_kind, own_redis.url)
    # a worker that cannot write the ledger takes the run off the queue and starts it: its mark is in Redis only
    conn.lpop(f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}")
    assert marks.set_start_mark(conn, ctx.bench.bench_id, rq_id)
    own_redis.stop()  # Redis restarts without persistence: the job, the queue and the mark are gone
    own_redis.start()
    conn.connection_pool.disconnect()
    reconcile_active(ctx, conn, now=utcnow())
    [row] = ScheduledJobLog.select()
    assert (row.status, row.reason) == ("failed", LOST_UNKNOWN)
    assert _ids(ctx, conn) == [] and not conn.exists(f"rq:job:{rq_id}")
    reconcile_active(ctx, conn, now=utcnow())  # settled: nothing more happens to it
    assert _ids(ctx, conn) == []


def test_a_run_redis_lost_without_restarting_is_sent_again(bench_factory, db_kind, own_redis):
    ctx, conn, rq_id = _sent_run(bench_factory, db_kind, own_redis.url)
    conn.delete(f"rq:job:{rq_id}", f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}")  # evicted, say
    reconcile_active(ctx, conn, now=utcnow())
    assert _ids(ctx, conn) == [rq_id]
    [row] = ScheduledJobLog.select()
    assert row.status == "queued" and row.enqueued_at is not None
