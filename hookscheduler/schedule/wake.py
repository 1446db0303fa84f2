"""Waking the scheduler loop when the job table changes, instead of at its next scheduled wake-up.

Commands that change what is due (``migrate``, ``jobs enable``, ``scheduler resume``, ...) publish on the bench's
wake channel; every ``schedule`` process listens and re-plans at once. It is only a latency optimisation: a lost
message (Redis down, a direct SQL edit) is covered by the loop's bounded sleep (``scheduler_tick_interval``).
"""

from __future__ import annotations

import logging
import threading

import redis

from ..broker.connection import redis_for
from ..config import Site

log = logging.getLogger(__name__)


def wake_channel(bench_id: str) -> str:
    return f"hookscheduler:{bench_id}:wake"


def announce_change(site: Site) -> None:
    """Best effort: tell running schedulers to look at the table now."""
    try:
        redis_for(site).publish(wake_channel(site.bench.bench_id), site.name)
    except redis.exceptions.RedisError as exc:
        log.debug("could not announce a change (%s); the scheduler will see it within one tick interval", exc)


class WakeListener(threading.Thread):
    """A daemon thread that sets ``event`` whenever a change is announced on the bench's channel."""

    def __init__(self, conn: redis.Redis, bench_id: str, event: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="hookscheduler-wake", daemon=True)
        self.conn, self.channel, self.event, self.stop = conn, wake_channel(bench_id), event, stop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pubsub = self.conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.channel)
                while not self.stop.is_set():
                    if pubsub.get_message(timeout=1.0):
                        self.event.set()
            except (redis.exceptions.RedisError, OSError):
                self.stop.wait(2.0)  # Redis is down: the loop reports it; retry quietly
