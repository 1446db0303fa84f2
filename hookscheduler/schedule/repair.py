"""Repair: a job with no next slot gets one, forward from now (part of the sweep's first half, :mod:`.step`).

A row whose ``next_execution`` is NULL (an operator's SQL, a restore from an old dump) would otherwise never
fire again, silently: the pass selects due rows by that column.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..context import SiteContext
from ..store import store_for
from ..store.models import utcnow
from ..timing.calendar import next_slot

log = logging.getLogger(__name__)


def repair_missing_slots(ctx: SiteContext, now: datetime | None = None) -> int:
    """Give a next slot to active jobs that have none, forward from ``now``; returns how many were repaired."""
    now = now or utcnow()
    store = store_for(ctx.database())
    repaired = 0
    with store.transaction():
        for job_id, frequency, cron_format in store.jobs_without_slot():
            repaired += store.set_missing_slot(job_id, next_slot(frequency, cron_format, now, ctx.calendar))
    if repaired:
        log.warning("site %s: %d job(s) had no next_execution; rescheduled forward from now", ctx.name, repaired)
    return repaired
