"""Small helpers shared by the operator commands: a checked Redis connection, moments, time cells."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import redis

from ..broker.connection import check_redis, redis_for
from ..context import SiteContext
from ..store.models import utcnow
from ..timing.moments import parse_moment


def connect(ctx: SiteContext) -> redis.Redis:
    """The site's Redis, pinged first so that an unreachable server or a wrong password is one clear line
    (with the password redacted) instead of an error halfway through a command."""
    conn = redis_for(ctx.site)
    check_redis(conn, ctx.site.redis_url)
    return conn


def moment(ctx: SiteContext, text: str | None, what: str, now: datetime | None = None) -> datetime | None:
    """``--since`` / ``--at`` as naive UTC (relative forms count back from now; bare ISO is site-local)."""
    if text is None:
        return None
    return parse_moment(text, now or utcnow(), ctx.site.time_zone, what)


def local_iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    """Naive UTC -> ISO 8601 in the site's zone with its offset (``2026-03-29T03:00:00+02:00``)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(tz).isoformat()


def when(value: datetime | None, ref: datetime | None, tz: ZoneInfo) -> str:
    """A compact local time for a table cell: the time of day when it is on ``ref``'s local day."""
    if value is None:
        return "-"
    local = value.replace(tzinfo=timezone.utc).astimezone(tz)
    if ref is not None and local.date() == ref.replace(tzinfo=timezone.utc).astimezone(tz).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``12s ago`` / ``in 3m`` for a naive-UTC moment."""
    if value is None:
        return "never"
    from .output import humanize_seconds

    delta = ((now or utcnow()) - value).total_seconds()
    return f"{humanize_seconds(delta)} ago" if delta >= 0 else f"in {humanize_seconds(-delta)}"


__all__ = ["ago", "connect", "local_iso", "moment", "when"]
