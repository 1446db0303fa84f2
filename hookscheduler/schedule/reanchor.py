"""Re-anchoring every row when the site's calendar changes (``time_zone``, ``scheduler_tick_interval``, or the
site name behind the maintenance offset).

``next_execution`` is stored in UTC, computed in the zone of the moment. If an operator moves a site from
UTC to Europe/Berlin, the stored slots are an hour off; without this every job would fire once more at the old
time. The calendar's signature is kept in ``scheduler_state`` (key ``clock_signature``, a stored name); when it
differs, every active row whose slot still lies ahead is recomputed forward from now, or from the last slot its
ledger already stands for when that is later (a slot skipped ahead, runs claimed ahead of their slot): never
backwards, so an edit cannot replay the past nor offer a decided slot again.

A row whose slot is already due at ``now`` (the scheduler was down, or paused and holding its slots) keeps that
slot: the next pass decides the due slots under the job's ``catchup`` policy, as after any downtime, and takes
the slot after them from the new calendar. Moving such a row forward would drop its due slots without a trace.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..context import SiteContext
from ..store import store_for
from ..store.database import get_state, set_state
from ..store.models import utcnow
from ..timing.calendar import SiteCalendar, next_slot

log = logging.getLogger(__name__)
STATE_KEY = "clock_signature"


def signature(calendar: SiteCalendar) -> str:
    base = f"{calendar.tz.key}|{calendar.tick_interval}|{calendar.maintenance_offset}"
    return base if calendar.all_cron is None else f"{base}|all={calendar.all_cron}"


def reanchor_if_calendar_changed(ctx: SiteContext, now: datetime | None = None) -> int:
    """Recompute next slots if the site's calendar changed since the last check; returns rows re-anchored."""
    now = now or utcnow()
    store = store_for(ctx.database())
    calendar = ctx.calendar
    current = signature(calendar)
    stored = get_state(STATE_KEY)
    if stored == current:
        return 0
    moved = 0
    with store.transaction():
        if get_state(STATE_KEY) == current:  # another process did it meanwhile
            return 0
        if stored is not None:
            rows = store.job_slots()
            # a slot already decided after now (a skip-next, runs claimed ahead of their slot) is not offered
            # again: the new calendar's first slot after it, as the pass itself would decide (I9)
            decided = store.covered_after([job_id for job_id, *_ in rows], now)
            for job_id, frequency, cron_format, slot in rows:
                if job_id not in decided and isinstance(slot, datetime) and slot <= now:
                    continue  # due: the pass decides it under the job's catchup policy
                nxt = next_slot(frequency, cron_format, decided.get(job_id, now), calendar)
                if nxt != slot:
                    store.set_slot(job_id, nxt)
                    moved += 1
        set_state(STATE_KEY, current)
    if moved:
        log.warning("site %s: the calendar changed (%s -> %s); %d job(s) re-anchored forward from now "
                    "(slots already due are kept for the next pass)",
                    ctx.name, stored, current, moved)
    return moved
