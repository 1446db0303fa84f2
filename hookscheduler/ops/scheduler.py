"""Is a site's scheduler on, and is anything actually scheduling it? Status, pause/resume, enable/disable.

Two switches, as in Frappe, with different owners and lifetimes:

* ``pause_scheduler`` in ``site_config.json``: a deploy-time switch (``scheduler pause`` / ``resume``), a file
  that config management can also write; ``maintenance_mode`` and ``disable_scheduler`` live there too;
* ``scheduler_enabled`` in the site's ``scheduler_state`` table (``scheduler enable`` / ``disable``, with a
  note): the site's own setting, like Frappe's System Settings ``enable_scheduler``.

Every pass re-reads both (:func:`hookscheduler.schedule.inactivity.inactive_reason`), so a change takes effect
within one pass. Slots that pass meanwhile are held; when the scheduler is active again each job's ``catchup``
policy decides them (one catch-up run by default), and the ledger says they passed while it was inactive. A
pause may end by itself (``scheduler pause --until T``: ``pause_until`` in ``scheduler_state``).

Liveness comes from Redis: each ``schedule`` process's loop writes a heartbeat key with a TTL of three tick
intervals (so up to a tick interval plus a cycle old while the process lives), and each completed
pass writes the site's last tick time, so ``status`` works across hosts and containers (where Frappe's file
lock cannot see).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import peewee as pw
import redis

from ..broker.keys import heartbeat_pattern, last_tick_key, tick_command_key
from ..config import update_site_config
from ..context import SiteContext
from ..exceptions import HookSchedulerError
from ..schedule.inactivity import PAUSE_UNTIL, note_switch, read_pause_until, read_switches
from ..schedule.step import LAST_TICK_TTL
from ..states import SchedulerStatus, StrEnum
from ..store.database import set_state, write_txn
from ..store.models import utcnow
from .queues import outbox_count, pending_counts

ENABLED, DISABLED, PAUSED = SchedulerStatus.ENABLED, SchedulerStatus.DISABLED, SchedulerStatus.PAUSED


@dataclass(frozen=True)
class Heartbeat:
    """One live ``schedule`` process, as its heartbeat key describes it."""

    host: str | None
    pid: int | None
    at: datetime | None
    sites: tuple[str, ...] | None  # None: the process did not say (it serves every site)

    def serves(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "at": self.at,
                "sites": list(self.sites) if self.sites is not None else None}


def _utc(text: str | None) -> datetime | None:
    """ISO text (with or without offset) -> naive UTC; None when absent or unreadable."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def heartbeats(conn: redis.Redis, bench_id: str) -> list[Heartbeat]:
    """Every live scheduler process of the bench (SCAN for the keys, one MGET for their values)."""
    keys = sorted(conn.scan_iter(match=heartbeat_pattern(bench_id), count=1000))
    if not keys:
        return []
    out = []
    for raw in conn.mget(keys):
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            data = json.loads(raw)
        except (ValueError, TypeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        sites = data.get("sites")
        pid = data.get("pid")
        out.append(Heartbeat(host=data.get("host"), pid=int(pid) if isinstance(pid, int) else None,
                             at=_utc(data.get("at")),
                             sites=tuple(str(s) for s in sites) if isinstance(sites, list) else None))
    return out


def last_tick(conn: redis.Redis, bench_id: str, site: str) -> datetime | None:
    raw = conn.get(last_tick_key(bench_id, site))
    return _utc(raw.decode() if isinstance(raw, bytes) else raw)


def scheduler_state(ctx: SiteContext, now: datetime | None = None) -> tuple[str, str | None]:
    """(``enabled`` | ``disabled`` | ``paused``, every reason it is inactive joined, or None), from the switches
    the pass reads (:func:`~hookscheduler.schedule.inactivity.read_switches`). A disabled scheduler reads
    ``disabled`` even when it is also paused: resuming it would not make it run. A pause whose ``--until`` has
    come is over (the next pass clears the flag)."""
    ctx.database()
    now = now or utcnow()
    switches = read_switches(ctx, pause_until=read_pause_until())
    status = DISABLED if switches.stopping() else (PAUSED if switches.pausing(now) else ENABLED)
    return status, "; ".join(switches.causes(now, ctx.site.time_zone)) or None


def activity(ctx: SiteContext, now: datetime | None = None) -> tuple[str | None, datetime | None]:
    """(why the pass holds the site's slots at ``now``, or None; when a pause with an end ends, or None): the
    pass's own reading, for forecasts and verdicts."""
    now = now or utcnow()
    ctx.database()
    switches = read_switches(ctx, pause_until=read_pause_until())
    reason = switches.reason(now)
    return reason, (switches.pause_until if reason and switches.until_applies() else None)


#: A slot (or a tick) this many tick intervals late means nothing is scheduling the site.
OVERDUE_TICKS = 3
MIN_OVERDUE = timedelta(minutes=3)


def overdue_after(tick_interval: int) -> timedelta:
    """How old a site's last pass (or a due slot) may be before nothing is taken to schedule it."""
    return max(timedelta(seconds=OVERDUE_TICKS * tick_interval), MIN_OVERDUE)


class Driver(StrEnum):
    """What schedules a site (:func:`driver`)."""

    PROCESS = "process"  # a live `schedule` process serves it
    TICK = "tick"  # no process, and none needed: `hookscheduler tick` (cron, a timer) made its recent passes
    STOPPED = "stopped"  # its last pass is recent, but the `schedule` process that made it has stopped
    NONE = "none"  # no process, and no recent pass
    UNKNOWN = "unknown"  # Redis unreachable: liveness cannot be read


def fresh(tick: datetime | None, now: datetime, late: timedelta) -> bool:
    """Whether a last pass at ``tick`` is recent at ``now`` (``late``: :func:`overdue_after`)."""
    return tick is not None and now - tick <= late


def driver(alive: bool | None, tick: datetime | None, tick_command: datetime | None, now: datetime,
           late: timedelta) -> Driver:
    """Pure: what schedules the site, from its live processes, its last pass (``tick``) and the last pass
    ``hookscheduler tick`` made (``tick_command``). A recent last pass alone does not say the site is served:
    a `schedule` process killed a moment ago leaves one behind, and the status would call a dead bench
    "driven by cron" until the pass grew old; only passes that the `tick` command made count as cron's."""
    if alive is None:
        return Driver.UNKNOWN
    if alive:
        return Driver.PROCESS
    if fresh(tick, now, late) and fresh(tick_command, now, late):
        return Driver.TICK
    return Driver.STOPPED if fresh(tick, now, late) else Driver.NONE


def last_tick_command(conn: redis.Redis, bench_id: str, site: str) -> datetime | None:
    raw = conn.get(tick_command_key(bench_id, site))
    return _utc(raw.decode() if isinstance(raw, bytes) else raw)


def mark_tick_command(conn: redis.Redis, bench_id: str, site: str, now: datetime) -> None:
    """Record that ``hookscheduler tick`` made a pass of the site at ``now`` (kept as long as the last tick)."""
    conn.set(tick_command_key(bench_id, site), now.isoformat(), ex=LAST_TICK_TTL)


@dataclass
class SiteStatus:
    """``scheduler status`` of one site; :meth:`as_dict` is its JSON shape, which scripts rely on."""

    site: str
    status: str
    reason: str | None
    last_tick: datetime | None
    scheduler_alive: bool | None  # None: unknown (Redis unreachable)
    pending: int | None
    failed: int | None
    processes: list[Heartbeat] = field(default_factory=list)
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    redis_error: str | None = None  # why liveness and counts are unknown
    unsent: int | None = None  # runs claimed and recorded but not yet in Redis (the outbox): from the database
    paused_until: datetime | None = None  # ``scheduler pause --until``: when the pause ends by itself
    tick_command: datetime | None = None  # the last pass ``hookscheduler tick`` made (cron, a timer)
    late: timedelta = MIN_OVERDUE  # how old a last pass may be (:func:`overdue_after` of the tick interval)

    def driver(self, now: datetime) -> Driver:
        """What schedules the site at ``now`` (:func:`driver`)."""
        return driver(self.scheduler_alive, self.last_tick, self.tick_command, now, self.late)

    def as_dict(self, verbose: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"site": self.site, "status": self.status, "reason": self.reason,
                               "last_tick": self.last_tick, "scheduler_alive": self.scheduler_alive,
                               "pending": self.pending, "failed": self.failed}
        if self.tick_command:  # the fixed shape stays as it was for benches that never ran `tick`
            out["last_tick_command"] = self.tick_command
        if self.paused_until:
            out["paused_until"] = self.paused_until
        if self.redis_error:
            out["redis_error"] = self.redis_error
        if verbose:
            out["processes"] = [p.as_dict() for p in self.processes]
            out["queues"] = self.queues
            out["unsent"] = self.unsent
        return out


def site_status(ctx: SiteContext, conn: redis.Redis | None, redis_error: str | None = None) -> SiteStatus:
    """The site's status. ``conn`` None (Redis unreachable, ``redis_error`` says why): the database half is
    still answered -- during a Redis outage an operator still needs to know whether the scheduler is on --
    and liveness, last tick and counts are reported as unknown rather than as zero."""
    status, reason = scheduler_state(ctx)
    until = activity(ctx)[1] if status == PAUSED else None
    unsent = _unsent(ctx)
    if conn is None:
        return SiteStatus(site=ctx.name, status=status, reason=reason, last_tick=None, scheduler_alive=None,
                          pending=None, failed=None, redis_error=redis_error or "Redis unreachable", unsent=unsent,
                          paused_until=until, late=overdue_after(ctx.site.tick_interval))
    bench_id = ctx.bench.bench_id
    procs = [h for h in heartbeats(conn, bench_id) if h.serves(ctx.name)]
    counts = pending_counts(conn, bench_id, ctx.name, list(ctx.site.queues))
    return SiteStatus(site=ctx.name, status=status, reason=reason, last_tick=last_tick(conn, bench_id, ctx.name),
                      scheduler_alive=bool(procs), pending=counts["total"]["queued"],
                      failed=counts["total"]["failed"], processes=procs, queues=counts["queues"], unsent=unsent,
                      paused_until=until, tick_command=last_tick_command(conn, bench_id, ctx.name),
                      late=overdue_after(ctx.site.tick_interval))


def _unsent(ctx: SiteContext) -> int | None:
    """The outbox's size: RQ's counts cannot show runs the scheduler claimed but could not send (Redis down)."""
    try:
        ctx.database()
        return outbox_count()
    except (pw.PeeweeException, HookSchedulerError):
        return None


def set_paused(ctx: SiteContext, paused: bool, until: datetime | None = None, now: datetime | None = None) -> Path:
    """``scheduler pause [--until T]`` / ``resume``: write ``pause_scheduler`` into the site's
    ``site_config.json``, and the pause's end (or none) into ``scheduler_state``. The end is written first and
    its transaction held until the file is written: a pass lifting an old end
    (:func:`~hookscheduler.schedule.inactivity.settle_pause_end`) waits for both, and never lifts the new pause.

    Resuming removes the site's key rather than writing false, so that a later bench-wide pause
    (``set-config -g pause_scheduler 1``) applies to the site too; only while the bench's common config pauses
    is false written (:func:`bench_paused`): the operator resumes this site explicitly, against the bench."""
    db = ctx.database()
    value = True if paused else False if bench_paused(ctx) else None  # None: the key is removed
    with write_txn(db):
        set_state(PAUSE_UNTIL, until.isoformat(sep=" ") if paused and until is not None else None)
        path = update_site_config(ctx.site, {"pause_scheduler": value})
    own = {k: v for k, v in ctx.site.own_config.items() if k != "pause_scheduler"}
    values = {k: v for k, v in ctx.site.values.items() if k != "pause_scheduler"}
    if value is not None:
        own["pause_scheduler"] = values["pause_scheduler"] = value
    elif "pause_scheduler" in ctx.site.bench.common_config:
        values["pause_scheduler"] = ctx.site.bench.common_config["pause_scheduler"]
    ctx.site = replace(ctx.site, values=values, own_config=own)
    note_switch(ctx, now)
    return path


def bench_paused(ctx: SiteContext) -> bool:
    """Does the bench's ``common_site_config.json`` pause every site (``set-config -g pause_scheduler 1``)?"""
    return bool(ctx.site.bench.common_config.get("pause_scheduler"))


def set_enabled(ctx: SiteContext, enabled: bool, note: str | None = None, who: str | None = None,
                now: datetime | None = None) -> None:
    """``scheduler enable`` / ``disable``: the site's own switch in ``scheduler_state`` (with who and why)."""
    db = ctx.database()
    stamp = (now or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    with write_txn(db):
        set_state("scheduler_enabled", "1" if enabled else "0")
        if enabled:
            set_state("scheduler_disabled_note", None)
        else:
            by = f"by {who} " if who else ""
            set_state("scheduler_disabled_note", f"{note + ' ' if note else ''}({by}at {stamp})".strip())
    note_switch(ctx, now)


__all__ = [
    "DISABLED", "ENABLED", "PAUSED", "Driver", "Heartbeat", "SiteStatus", "activity", "bench_paused", "driver",
    "fresh", "heartbeats", "last_tick", "last_tick_command", "mark_tick_command", "overdue_after", "scheduler_state",
    "set_enabled", "set_paused", "site_status",
]
