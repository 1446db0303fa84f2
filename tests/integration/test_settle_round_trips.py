"""Settling active runs asks Redis in two round trips, whatever mix of runs it judges: each run's RQ status and
worker together, then the workers' liveness, the lost runs' start marks with the Redis epoch, and the refusal
marks, in one pipeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from hookscheduler.broker.keys import redis_epoch_key, refused_mark_key, started_mark_key
from hookscheduler.schedule import reconcile
from hookscheduler.states import LedgerStatus

NOW = datetime(2026, 1, 5, 11, 30)


@dataclass
class FakeRun:
    id: int
    job_id: int
    status: str
    rq_job_id: str | None
    enqueued_at: datetime | None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Store:
    def __init__(self) -> None:
        self.settled: list[tuple[int, str]] = []
        self.resend: list[int] = []

    def settle_run(self, row_id, status, reason, now, finish):
        self.settled.append((row_id, status))

    def mark_for_resend(self, row_id, now, reason):
        self.resend.append(row_id)


def test_settle_asks_redis_in_two_round_trips(redis_client, monkeypatch):
    bench = f"hst{uuid.uuid4().hex[:10]}"
    tag = uuid.uuid4().hex[:8]
    ids = {name: f"{bench}-{tag}-{name}" for name in ("alive", "dead", "lost", "began", "over", "refused", "stopped")}
    worker = f"w-{tag}"
    keys = [f"rq:job:{jid}" for jid in ids.values()] + [f"rq:worker:{worker}", f"rq:worker:x-{tag}",
                                                         redis_epoch_key(bench)]
    try:
        redis_client.hset(f"rq:job:{ids['alive']}", mapping={"status": "started", "worker_name": worker})
        redis_client.hset(f"rq:worker:{worker}", mapping={"birth": "2026-01-05T10:00:00Z"})
        # a worker that stopped: RQ keeps its hash a minute, with its death
        redis_client.hset(f"rq:job:{ids['stopped']}", mapping={"status": "started", "worker_name": f"x-{tag}"})
        redis_client.hset(f"rq:worker:x-{tag}", mapping={"birth": "2026-01-05T10:00:00Z",
                                                          "death": "2026-01-05T10:50:00Z"})
        redis_client.hset(f"rq:job:{ids['dead']}", mapping={"status": "started", "worker_name": f"gone-{tag}"})
        redis_client.hset(f"rq:job:{ids['over']}", mapping={"status": "finished"})
        redis_client.hset(f"rq:job:{ids['refused']}", mapping={"status": "finished"})
        redis_client.set(refused_mark_key(bench, ids["refused"]), (NOW - timedelta(minutes=1)).isoformat())
        redis_client.set(started_mark_key(bench, ids["began"]), "1")
        keys += [refused_mark_key(bench, ids["refused"]), started_mark_key(bench, ids["began"])]
        sent = NOW - timedelta(minutes=10)
        runs = [FakeRun(1, 1, LedgerStatus.STARTED, ids["alive"], sent, sent),
                FakeRun(2, 2, LedgerStatus.STARTED, ids["dead"], sent, sent),
                FakeRun(3, 3, LedgerStatus.QUEUED, ids["lost"], sent),
                FakeRun(4, 4, LedgerStatus.QUEUED, ids["began"], sent),
                FakeRun(5, 5, LedgerStatus.STARTED, ids["over"], sent, sent),
                FakeRun(6, 6, LedgerStatus.STARTED, ids["refused"], sent, sent),
                FakeRun(7, 7, LedgerStatus.STARTED, ids["stopped"], sent, sent)]
        trips: list[int] = []
        real = redis.client.Pipeline.execute

        def counted(self, *args, **kwargs):
            trips.append(len(self.command_stack))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
        store = Store()
        verdicts = reconcile.settle(store, runs, redis_client, NOW, {}, bench)
        assert len(trips) == 2, trips  # (the epoch key's first stamp is one SET more, outside the pipelines)
        assert verdicts[1][0].active  # its worker is alive
        assert not verdicts[2][0].active  # its worker is gone from Redis: abandoned
        assert not verdicts[7][0].active  # its worker recorded its death: gone too, whatever its hash's TTL
        # lost before any worker started it, sent before the epoch (stamped now, on first sight): not re-sent
        assert store.resend == []
        assert (4, LedgerStatus.FAILED) in store.settled  # began, then lost: never run again
        assert (5, LedgerStatus.COMPLETE) in store.settled  # RQ's outcome, the worker could not record it
        assert "abandoned" in (verdicts[6][0].reason or "")  # the refused delivery's "finished" is not the run's
        # the same answers as asking one question at a time (the functions settle used before)
        monkeypatch.setattr(redis.client.Pipeline, "execute", real)
        statuses, alive, began, epoch, refused = reconcile._ask_redis(redis_client, runs, bench)
        assert statuses[ids["alive"]] == "started" and statuses[ids["lost"]] is None
        assert alive == {ids["alive"]: True, ids["dead"]: False, ids["stopped"]: False}
        assert began == {ids["began"]}
        assert epoch > datetime(2026, 1, 1) and set(refused) == {ids["refused"]}
    finally:
        redis_client.delete(*keys)
