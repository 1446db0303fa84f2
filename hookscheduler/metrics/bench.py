"""The sites of one bench, opened once and used one at a time by a long-running server.

The models are bound to one database per process at a time (:func:`hookscheduler.db.bind`), so a server that
answers for several sites -- the dashboard, the metrics exporter -- must not let two requests bind different
sites at once. :meth:`BenchSites.use` serialises that under one lock: requests are short (a page reads one
page of rows), so the lock costs nothing that matters, and the library calls stay exactly the CLI's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from ..broker.connection import redis_for
from ..config import load_bench, load_site
from ..context import SiteContext, open_sites
from ..exceptions import HookSchedulerError


@dataclass
class BenchSites:
    """Every site of a bench (or the one named), each opened on first use."""

    bench: str | None = None
    site: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _contexts: dict[str, SiteContext] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        for ctx in open_sites(self.bench, self.site, self.overrides):
            self._contexts[ctx.name] = ctx

    @property
    def names(self) -> list[str]:
        return sorted(self._contexts)

    @property
    def bench_id(self) -> str:
        return self.first().bench.bench_id

    def first(self) -> SiteContext:
        return self._contexts[self.names[0]]

    def get(self, name: str) -> SiteContext:
        """The site (its settings as last read: :meth:`use` reads them afresh)."""
        ctx = self._contexts.get(name)
        if ctx is None:
            raise UnknownSite(f"site {name!r} is not served here; sites: {', '.join(self.names)}")
        return ctx

    @contextmanager
    def use(self, name: str) -> Iterator[SiteContext]:
        """The site with its database bound, held exclusively for the block."""
        ctx = self.get(name)
        with self._lock:
            self._refresh(ctx)
            ctx.database()
            yield ctx

    def _refresh(self, ctx: SiteContext) -> None:
        """Re-read the site's config files: a long-running server must see ``scheduler pause`` made by the CLI,
        or by itself, as each CLI run does. The database connection is kept unless ``db_url`` changed (``set-config
        db_url`` + ``migrate``): then the next use opens the new database, so pages and counters never go on
        reading the one the site left."""
        ctx.replace_site(load_site(load_bench(str(ctx.bench.path)), ctx.name, self.overrides))

    def redis(self, name: str) -> redis.Redis:
        return redis_for(self.get(name).site)

    def close(self) -> None:
        for ctx in self._contexts.values():
            ctx.close()


class UnknownSite(HookSchedulerError):
    """A site name the server does not serve (a URL typed by hand)."""

    exit_code = 2


__all__ = ["BenchSites", "UnknownSite"]
