"""The site's scheduler switched off: paused, disabled or in maintenance, and the stretches it spent so.

A pass re-reads the switches every time (:func:`inactive_reason`: the config files and the state table), so a
change takes effect at the next pass without a restart. While inactive, a pass decides nothing: it records the
stretch (one ``scheduler_inactivity`` row, :func:`track_inactivity`) and holds the due slots, which the first
active pass decides with each job's catch-up policy; the stretches word the reasons (:mod:`.decide`). A pause
with an end (``scheduler pause --until T``) ends by itself at T (:func:`settle_pause_end`): the end belongs to
that pause only, so lifting it forgets the end, and a pause set afterwards holds until someone resumes.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import peewee as pw

from ..config import read_config_file, update_site_config
from ..context import SiteContext
from ..exceptions import HookSchedulerError
from ..store import Store, store_for
from ..store.database import clear_state_if, get_state, write_txn
from ..store.models import utcnow
from .decide import Stretch, Switches

log = logging.getLogger(__name__)


#: ``scheduler_state`` key of a pause's end (``scheduler pause --until T``), ISO text of naive UTC.
PAUSE_UNTIL = "pause_until"


def read_switches(ctx: SiteContext, enabled: str | None = None, pause_until: datetime | None = None) -> Switches:
    """The site's switches, re-read (config files and the state table; ``enabled`` and ``pause_until`` are the
    state rows' values when the caller has already read them; ``pause_until`` None: a pause without an end)."""
    settings = ctx.site.settings
    enabled = enabled if enabled is not None else get_state("scheduler_enabled", "1")
    disabled = enabled == "0"
    return Switches(
        maintenance=settings.maintenance_mode,
        paused=settings.pause_scheduler,
        disabled_by_config=settings.disable_scheduler,
        enabled=not disabled,
        disabled_note=get_state("scheduler_disabled_note") if disabled else None,
        pause_until=pause_until,
        own_pause=bool(ctx.site.own_config.get("pause_scheduler")),
        bench_pause=bool(ctx.site.bench.common_config.get("pause_scheduler")),
    )


def inactive_reason(
    ctx: SiteContext, enabled: str | None = None, pause_until: datetime | None = None, now: datetime | None = None
) -> str | None:
    """Why the site's scheduler is not firing, re-read every pass (:func:`read_switches`)."""
    return read_switches(ctx, enabled, pause_until).reason(now or utcnow())


def read_pause_until() -> datetime | None:
    """The end of the current ``scheduler pause --until``, if any (None also for unreadable text)."""
    return parse_stamp(get_state(PAUSE_UNTIL))


def parse_stamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        log.warning("scheduler_state.%s holds %r, not a timestamp: ignored", PAUSE_UNTIL, text)
        return None


def track_inactivity(db: pw.Database, reason: str | None, open_reason: str | None, now: datetime) -> None:
    """Record when and why the scheduler became inactive, and when it became active again: one
    ``scheduler_inactivity`` row per stretch, written only when the state changes (a pass that finds it as it
    was writes nothing)."""
    if reason == open_reason:
        return
    store = store_for(db)
    with store.transaction():
        store.switch_inactivity(reason, now)


def note_switch(ctx: SiteContext, now: datetime | None = None) -> None:
    """After an operator switched the scheduler (pause, resume, enable, disable): record the stretch at the
    moment of the switch rather than at the next pass, with the reason the pass will compute."""
    now = now or utcnow()
    db = ctx.database()
    reason = inactive_reason(ctx, pause_until=read_pause_until(), now=now)
    track_inactivity(db, reason, store_for(db).open_inactivity(), now)


def recent_stretches(store: Store, since: datetime, limit: int = 100) -> list[Stretch]:
    """The stretches of inactivity that ended after ``since`` (or have not ended), newest first."""
    return [Stretch(*row) for row in store.inactive_stretches(since, limit)]


def settle_pause_end(ctx: SiteContext, text: str, now: datetime) -> None:
    """Lift a ``scheduler pause --until T`` whose T has come, or forget an end whose pause is gone (``text``:
    the ``pause_until`` the caller read). The end is forgotten and the site's own ``pause_scheduler`` removed
    in one write transaction that first checks the end is still ``text``: a ``scheduler pause`` writing a new
    end meanwhile wins, and a file that cannot be written keeps the end (logged; the pause counts as over
    anyway). The flag is removed rather than set to false, so that a bench-wide pause (which the end never
    belonged to) applies again instead of being overridden by the site's file."""
    until = parse_stamp(text)
    try:
        with write_txn(ctx.database()):
            own = read_config_file(ctx.site.config_path)  # as it is now, not as the pass read it
            if own.get("pause_scheduler") and until is not None and now < until:
                return  # the pause still runs
            forgotten = clear_state_if(PAUSE_UNTIL, text)
            if not forgotten or not own.get("pause_scheduler"):
                return  # a new pause was set meanwhile, or the end's pause was already gone: nothing to lift
            update_site_config(ctx.site, {"pause_scheduler": None})
    except (OSError, HookSchedulerError) as exc:
        log.warning(
            "site %s: the pause ended at its --until time but site_config.json could not be "
            "updated (%s); the scheduler runs anyway",
            ctx.name,
            exc,
        )
        return
    own.pop("pause_scheduler")
    values = {k: v for k, v in ctx.site.values.items() if k != "pause_scheduler"}
    if "pause_scheduler" in ctx.site.bench.common_config:
        values["pause_scheduler"] = ctx.site.bench.common_config["pause_scheduler"]
    ctx.site = replace(ctx.site, values=values, own_config=own)
    log.info("site %s: scheduler pause ended (--until reached); resumed", ctx.name)
