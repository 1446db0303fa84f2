"""The peers on the same Redis: RQ 3's ``rq.cron.CronScheduler`` and raw ``Queue.enqueue_many`` (the floor).

``CronScheduler.start()`` loops over: ``enqueue_jobs()`` (every registered job's ``should_run()``, and for each
due one a pipeline with the enqueue and its history), ``save()`` when anything was enqueued (the whole job list
serialised into one hash), ``heartbeat()`` and ``calculate_sleep_interval()`` (a scan of every job's next
time). :func:`cron_pass` is exactly that loop body, without the sleep. It reads the real clock (``rq.utils.now``),
so due jobs are made due by setting their ``next_enqueue_time`` in the past, as they would be when the slot
comes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
from rq import Queue
from rq.cron import CronJob, CronScheduler

from hookscheduler.broker.connection import reply_text
from hookscheduler.schedule.send import RUNNER

from .peers import job_kwargs as _kwargs
from .peers import noop
from .tickbench import DUE_CRONS, clear_redis_prefix, cron_pool


class RQCron:
    """A ``CronScheduler`` with ``n`` jobs, ``due`` of them due, on ``prefix``-named queues and jobs."""

    def __init__(self, conn: redis.Redis, prefix: str, n: int, due: int):
        self.conn, self.prefix = conn, prefix
        self.sched = CronScheduler(conn, name=f"{prefix}_cron", logging_level="WARNING")
        pool = cron_pool()
        self.due_jobs: list[CronJob] = []
        self.other_jobs: list[CronJob] = []
        for i in range(n):
            cron = DUE_CRONS[i % len(DUE_CRONS)] if i < due else pool[i % len(pool)]
            job = self.sched.register(noop, f"{prefix}:default", kwargs=_kwargs(i), cron=cron, job_timeout=300,
                                      name=f"{prefix}_job_{i:06d}")
            (self.due_jobs if i < due else self.other_jobs).append(job)
        # It reads the real clock: a benchmark lasting minutes would see "*/2 * * * *" jobs come due. Their
        # next time is put a day ahead (a comparison that costs the same), so only the chosen jobs fire.
        later = datetime.now(timezone.utc) + timedelta(days=1)
        for job in self.other_jobs:
            job.next_enqueue_time = later
        self.sched.register_birth()
        self.make_idle()

    def make_idle(self) -> None:
        later = datetime.now(timezone.utc) + timedelta(days=1)
        for job in self.due_jobs:
            job.next_enqueue_time = later

    def make_due(self) -> None:
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        for job in self.due_jobs:
            job.latest_enqueue_time = None
            job.next_enqueue_time = past

    def cron_pass(self) -> int:
        """One iteration of ``CronScheduler.start()``'s loop; returns how many jobs it enqueued."""
        enqueued = self.sched.enqueue_jobs()
        if enqueued:
            self.sched.save()
        self.sched.heartbeat()
        self.sched.calculate_sleep_interval()
        return len(enqueued)

    def clear_jobs(self) -> None:
        """Delete the jobs the passes enqueued (RQ names them with random ids) and their queue."""
        key = f"rq:queue:{self.prefix}:default"
        ids = [reply_text(i) for i in self.conn.lrange(key, 0, -1)]
        for i in range(0, len(ids), 1000):
            self.conn.delete(*[f"rq:job:{j}" for j in ids[i:i + 1000]])
        self.conn.delete(key)

    def close(self) -> None:
        self.clear_jobs()
        self.conn.zrem("rq:cron_schedulers", self.sched.name)
        names = [j.name for j in self.sched.get_jobs()]
        for i in range(0, len(names), 1000):
            self.conn.zrem("rq:cron_jobs", *names[i:i + 1000])
        clear_redis_prefix(self.conn, self.prefix)


def enqueue_many_floor(conn: redis.Redis, prefix: str, count: int) -> int:
    """Raw RQ: ``count`` jobs of the same function, kwargs, ids and options in one ``enqueue_many``."""
    q = Queue(f"{prefix}:default", connection=conn)
    datas = [Queue.prepare_data(RUNNER, kwargs=_kwargs(i), timeout=300, result_ttl=600, failure_ttl=7 * 86400,
                                job_id=f"{prefix}_raw_{i:06d}", description=f"job_{i:06d} [schedule]",
                                meta={"hookscheduler": {"site": "default", "job": f"job_{i:06d}"}})
             for i in range(count)]
    return len(q.enqueue_many(datas))
