"""Re-anchoring every row when the site's calendar changes (``time_zone``, ``scheduler_tick_interval``, or the
site name behind the maintenance offset).

``next_execution`` is stored in UTC, computed in the zone of the moment. If an operator moves a site from
UTC to Europe/Berlin, the stored slots are an hour off; without this every job would fire once more at the old
time. The calendar's signature is kept in ``scheduler_state`` (key ``clock_signature``, a stored name); when it
differs, the moment it was seen is kept next to it (key ``clock_changed_at``), and every active row whose slot
still lies ahead is recomputed forward from now, or from the last slot its ledger already stands for when that
is later (a slot skipped ahead, runs claimed ahead of their slot): never backwards, so an edit cannot replay the
past nor offer a decided slot again.

A row whose slot is already due at ``now`` (the scheduler was down, or paused and holding its slots) keeps that
slot: the next pass decides the due slots under the job's ``catchup`` policy, as after any downtime, and takes
the slot after them from the new calendar. Moving such a row forward would drop its due slots without a trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..context import SiteContext
from ..store import store_for
from ..store.base import Store
from ..store.database import get_state, set_state
from ..store.models import utcnow
from ..timing.calendar import SiteCalendar, next_slot

log = logging.getLogger(__name__)
STATE_KEY = "clock_signature"
#: When the last calendar change was seen (ISO, naive UTC) and the signature it replaced: ``jobs backfill``
#: refuses a range reaching back before it (its slots were computed in another calendar).
CHANGED_AT_KEY = "clock_changed_at"
PREVIOUS_KEY = "clock_previous_signature"


def last_change() -> tuple[datetime, str | None, str | None] | None:
    """``(when, old signature, new signature)`` of the site's last calendar change (the bound database), or
    None when its calendar never changed since this was recorded."""
    raw = get_state(CHANGED_AT_KEY)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return when.replace(tzinfo=None), get_state(PREVIOUS_KEY), get_state(STATE_KEY)


def signature(calendar: SiteCalendar) -> str:
    base = f"{calendar.tz.key}|{calendar.tick_interval}|{calendar.maintenance_offset}"
    return base if calendar.all_cron is None else f"{base}|all={calendar.all_cron}"


_PARTS = ("time_zone", "tick interval", "maintenance offset", "all")


def describe(old: str, new: str) -> str:
    """What changed between two calendar signatures, as an operator reads it: ``Europe/Berlin ->
    America/New_York`` when only the zone changed, else each changed part by name."""
    a, b = old.split("|"), new.split("|")
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    changed = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if changed == [0]:
        return f"{a[0]} -> {b[0]}"
    return ", ".join(f"{_PARTS[i] if i < len(_PARTS) else 'part ' + str(i)} {a[i] or '-'} -> {b[i] or '-'}"
                     for i in changed)


@dataclass(frozen=True)
class Reanchor:
    """What a re-anchor of one site does (or would do): the stored calendar signature (None: never recorded),
    the current one, and each moved row as ``(job id, old slot, new slot)``."""

    old: str | None
    new: str
    moves: tuple[tuple[int, datetime | None, datetime], ...] = ()

    @property
    def changed(self) -> bool:
        return self.old is not None and self.old != self.new

    def summary(self, conditional: bool = False) -> str | None:
        """``N re-anchored (calendar changed: OLD -> NEW)``; None when the calendar did not change."""
        if not self.changed or self.old is None:
            return None
        verb = "would be re-anchored" if conditional else "re-anchored"
        return f"{len(self.moves)} {verb} (calendar changed: {describe(self.old, self.new)})"

    def as_dict(self) -> dict[str, Any] | None:
        if not self.changed:
            return None
        return {"jobs": len(self.moves), "from": self.old, "to": self.new}


def plan_reanchor(ctx: SiteContext, now: datetime | None = None) -> Reanchor:
    """The re-anchor the site's calendar calls for at ``now``, read only (``migrate --dry-run`` shows it)."""
    now = now or utcnow()
    store = store_for(ctx.database())
    return _plan(store, ctx.calendar, get_state(STATE_KEY), now)


def _plan(store: Store, calendar: SiteCalendar, stored: str | None, now: datetime) -> Reanchor:
    current = signature(calendar)
    if stored is None or stored == current:
        return Reanchor(stored, current)
    rows = store.job_slots()
    # a slot already decided after now (a skip-next, runs claimed ahead of their slot) is not offered
    # again: the new calendar's first slot after it, as the pass itself would decide (I9)
    decided = store.covered_after([job_id for job_id, *_ in rows], now)
    moves = []
    for job_id, frequency, cron_format, slot in rows:
        if job_id not in decided and isinstance(slot, datetime) and slot <= now:
            continue  # due: the pass decides it under the job's catchup policy
        nxt = next_slot(frequency, cron_format, decided.get(job_id, now), calendar)
        if nxt != slot:
            moves.append((job_id, slot, nxt))
    return Reanchor(stored, current, tuple(moves))


def reanchor_if_calendar_changed(ctx: SiteContext, now: datetime | None = None) -> int:
    """Recompute next slots if the site's calendar changed since the last check; returns rows re-anchored."""
    return len(reanchor(ctx, now).moves)


def reanchor(ctx: SiteContext, now: datetime | None = None) -> Reanchor:
    """Re-anchor the site's rows if its calendar changed since the last check (see the module's docstring);
    returns what it moved (nothing when another process did it meanwhile)."""
    now = now or utcnow()
    store = store_for(ctx.database())
    current = signature(ctx.calendar)
    stored = get_state(STATE_KEY)
    if stored == current:
        return Reanchor(stored, current)
    with store.transaction():
        stored = get_state(STATE_KEY)
        if stored == current:  # another process did it meanwhile
            return Reanchor(stored, current)
        plan = _plan(store, ctx.calendar, stored, now)
        for job_id, _old, nxt in plan.moves:
            store.set_slot(job_id, nxt)
        set_state(STATE_KEY, current)
        if plan.changed:
            set_state(CHANGED_AT_KEY, now.isoformat())
            set_state(PREVIOUS_KEY, stored)
    if plan.moves:
        log.warning("site %s: the calendar changed (%s -> %s); %d job(s) re-anchored forward from now "
                    "(slots already due are kept for the next pass)",
                    ctx.name, stored, current, len(plan.moves))
    return plan
