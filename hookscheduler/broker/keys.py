"""Names in the shared Redis: queues per bench, job ids per (bench, site, ...).

Several benches and sites can share one Redis, so every key we create is namespaced: queues are
``<bench_id>:<queue>`` (a bench's workers serve all its sites, as in Frappe) and job ids start with
``<bench_id>_<site tag>_``. A scheduled run's id is a pure function of (bench, site, job, slot): that is what
lets Redis refuse a second copy of the same slot (``unique`` enqueue) whoever sends it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from ..states import SLOT_TRIGGERS, Trigger

_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: The longest application job id kept as it is (after the site prefix); a longer one is cut and hashed
USER_JOB_ID_MAX = 160
#: What :func:`user_job_id` makes of an id it had to cut: its first characters, '-', 8 hex digits of a hash.
_SHORTENED = re.compile(rf".{{{USER_JOB_ID_MAX - 9}}}-[0-9a-f]{{8}}")


def queue_name(bench_id: str, queue: str) -> str:
    return f"{bench_id}:{queue}"


def short_queue(full_name: str, bench_id: str) -> str | None:
    """``<bench_id>:default`` -> ``default``; None for another bench's queue."""
    prefix = f"{bench_id}:"
    return full_name[len(prefix):] if full_name.startswith(prefix) else None


def site_tag(site: str) -> str:
    """A short, id-safe, stable tag for a site name (site names may hold dots)."""
    return hashlib.sha1(site.encode()).hexdigest()[:8]


def site_prefix(bench_id: str, site: str) -> str:
    """Every job id of the site starts with this."""
    return f"{bench_id}_{site_tag(site)}_"


def scheduled_job_id(bench_id: str, site: str, job_name: str, slot: datetime, trigger: str = Trigger.SCHEDULE,
                     attempt: int = 0) -> str:
    """Deterministic id of the run of ``job_name`` for ``slot`` (naive UTC) on ``site``. ``attempt`` > 0: the
    id of a later run of a slot whose first id a row that did not run holds (a run skipped in maintenance mode
    or purged from its queue, then backfilled: :func:`hookscheduler.ops.backfill.backfill`)."""
    kind = "slot" if trigger in SLOT_TRIGGERS else trigger  # one id per slot, however it fired
    again = f"\x00again{attempt}" if attempt else ""
    digest = hashlib.sha1(f"{job_name}\x00{slot.isoformat()}\x00{kind}{again}".encode()).hexdigest()[:24]
    return f"{site_prefix(bench_id, site)}sched-{digest}"


def user_job_id(bench_id: str, site: str, job_id: str) -> str:
    """Namespace an application-chosen ``job_id`` (as Frappe's ``create_job_id``), keeping it readable.

    An id that had to be changed ends with a hash of the whole id, so that two ids stay distinct when only
    their unsafe characters differ, or only their ends past :data:`USER_JOB_ID_MAX` characters (cut without a
    hash, two long ids that shared their first 160 characters were one job: the second was dropped as a
    duplicate of the first). An id of safe characters within the limit is kept as it is."""
    safe = _JOB_ID_UNSAFE.sub("-", job_id)
    digest = hashlib.sha1(job_id.encode()).hexdigest()[:8]
    if safe != job_id:
        safe = f"{safe[:80]}-{digest}"
    elif len(safe) > USER_JOB_ID_MAX or _SHORTENED.fullmatch(safe):
        # an id of exactly the shape a cut id takes (151 characters, '-', 8 hex digits) is cut too: kept as it
        # is, it could be the cut form of a longer id, and the two would be one job
        safe = f"{safe[:USER_JOB_ID_MAX - len(digest) - 1]}-{digest}"
    return f"{site_prefix(bench_id, site)}{safe}"


def heartbeat_key(bench_id: str, instance: str) -> str:
    """One key per running ``schedule`` process (``instance`` = host:pid), set with a TTL while it lives.
    Value: JSON ``{"host", "pid", "at" (ISO UTC), "sites": [...]}``."""
    return f"hookscheduler:{bench_id}:scheduler:heartbeat:{instance}"


def heartbeat_pattern(bench_id: str) -> str:
    """SCAN pattern matching every live scheduler process of the bench."""
    return f"hookscheduler:{bench_id}:scheduler:heartbeat:*"


def last_tick_key(bench_id: str, site: str) -> str:
    """ISO UTC time of the site's last completed scheduling pass (by any process)."""
    return f"hookscheduler:{bench_id}:{site_tag(site)}:last_tick"


def tick_command_key(bench_id: str, site: str) -> str:
    """ISO UTC time of the site's last pass made by ``hookscheduler tick`` (system cron, a timer): what tells a
    bench driven by cron, which needs no ``schedule`` process, from one whose ``schedule`` process has stopped
    while its last pass is still recent."""
    return f"hookscheduler:{bench_id}:{site_tag(site)}:tick_command"


def events_channel(bench_id: str, site: str) -> str:
    """Pub/sub channel carrying job started/finished/failed events for one site."""
    return f"hookscheduler:{bench_id}:{site}:events"


def started_mark_key(bench_id: str, rq_job_id: str) -> str:
    """Set (NX) by the work horse that starts a scheduled run: a second delivery of it does not run
    (:mod:`hookscheduler.worker.marks`)."""
    return f"hookscheduler:{bench_id}:started:{rq_job_id}"


def refused_mark_key(bench_id: str, rq_job_id: str) -> str:
    """Set by a delivery of a scheduled run that was refused (the run had already started): the RQ outcome
    of that delivery is not the run's (:mod:`hookscheduler.worker.marks`)."""
    return f"hookscheduler:{bench_id}:refused:{rq_job_id}"


def redis_epoch_key(bench_id: str) -> str:
    """The Redis server's ``run_id`` and when a scheduler first saw it: a run sent before that moment was sent
    to a Redis that has restarted since, and may have lost the marks a run leaves
    (:func:`hookscheduler.worker.marks.redis_epoch`)."""
    return f"hookscheduler:{bench_id}:redis-epoch"


def orphan_suspect_key(bench_id: str, rq_job_id: str) -> str:
    """A queued run first seen in no queue list; a second sighting after the grace re-queues it
    (:mod:`hookscheduler.schedule.orphans`)."""
    return f"hookscheduler:{bench_id}:orphan-suspect:{rq_job_id}"
