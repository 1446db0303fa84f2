"""Push notifications of job progress: one Redis pub/sub channel per site, one JSON message per event.

A web front end (or any script) subscribes to ``naming.events_channel(bench_id, site)``, i.e.
``hookscheduler:<bench_id>:<site>:events``, and receives, for every background job and scheduled run of the
site, a message when it starts and one when it ends::

    {"event": "started" | "finished" | "failed",
     "site": "site1", "job_id": "<the RQ job id>", "job_name": "...", "method": "app.tasks.run",
     "kind": "scheduled" | "background", "trigger": "schedule" | "manual" | "event" | "catch-up" | "enqueue",
     "queue": "default", "slot": "2026-01-05T11:00:00" | null, "worker": "<RQ worker name>",
     "at": "2026-01-05T11:00:00.123456Z", "duration": 0.25 (finished / failed only),
     "error": "RuntimeError: ..." (failed only), "timed_out": true (failed by timeout only)}

A job whose work horse dies without reporting (killed, out of memory, ``os._exit``) gets its ``failed`` event
from the worker instead, with the same fields read from the job and ``error`` saying how the horse ended
(``work horse died (exit code 1)``, ``work horse died (killed by signal 9, SIGKILL)``).

Polling works too (``hookscheduler.get_job_status``, ``hookscheduler job-status ID``); pub/sub is for pages
that want to update without polling. Redis does not keep messages for absent subscribers: a page that
reconnects should poll once for the jobs it shows. Publishing is best effort: a Redis error while publishing
is logged and never fails the job.

Every text field but the identifiers is redacted (:func:`~hookscheduler.security.redact.redact`) here, not by
the callers: any client of the site's Redis can subscribe, and a job's error message quoting a connection URL
must not hand it the password the ledger, the logs and the dashboard show as ``***``. The identifiers
(:data:`IDENTIFIERS`: the job's id, name and method, its queue, the worker...) lose only what has the shape of a
password (a URL's, a ``password=``): a subscriber matches them against the ids it enqueued, and the configured
passwords are blanked wherever they appear, so one that is also part of a job's name (``backup`` in
``nightly-backup``) would make the job's events unrecognisable.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis

from ..broker.keys import events_channel
from ..security.redact import redact, redact_patterns
from ..store.models import utcnow

log = logging.getLogger(__name__)

EVENTS = ("started", "finished", "failed")
#: Names and ids a subscriber matches: only what has the shape of a password is taken out of them.
IDENTIFIERS = frozenset({"job_id", "job_name", "method", "kind", "trigger", "queue", "slot", "worker"})


def _iso(value: datetime) -> str:
    return value.isoformat() + "Z"


def _field(value: Any) -> Any:
    """``value`` as published: a datetime in ISO form, text redacted, at any depth of a list or mapping."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _field(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_field(v) for v in value]
    return value


def publish(conn: redis.Redis, bench_id: str, site: str, event: str, **fields: Any) -> None:
    """Publish one event for ``site`` (best effort: never raises), every text field but the identifiers
    redacted."""
    payload: dict[str, Any] = {"event": event, "site": site, "at": _iso(utcnow())}
    payload.update({k: redact_patterns(v) if k in IDENTIFIERS and isinstance(v, str) else _field(v)
                    for k, v in fields.items()})
    try:
        conn.publish(events_channel(bench_id, site), json.dumps(payload, default=lambda v: redact(str(v))))
    except redis.exceptions.RedisError as exc:
        log.warning("could not publish the %s event of %s: %s", event, fields.get("job_id"), exc)


def subscribe(conn: redis.Redis, bench_id: str, site: str) -> redis.client.PubSub:
    """A pub/sub object subscribed to the site's channel (call ``.close()`` when done)."""
    pubsub: redis.client.PubSub = conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(events_channel(bench_id, site))
    return pubsub


def listen(pubsub: redis.client.PubSub, timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Decoded events from ``pubsub`` until ``timeout`` seconds pass without one (None: for ever)."""
    while True:
        started = time.monotonic()
        message = pubsub.get_message(timeout=timeout if timeout is not None else 3600.0)
        if message is None:
            if timeout is not None and time.monotonic() - started >= timeout:
                return
            continue
        if message.get("type") != "message":
            continue
        data = message["data"]
        try:
            yield json.loads(data.decode() if isinstance(data, bytes) else data)
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a malformed event on %s", message.get("channel"))
