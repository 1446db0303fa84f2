"""The sites of one bench, opened once and used one at a time by a long-running server.

The models are bound to one database per process at a time (:func:`hookscheduler.db.bind`), so a server that
answers for several sites -- the dashboard, the metrics exporter -- must not let two requests bind different
sites at once. :meth:`BenchSites.use` serialises that under one lock: requests are short (a page reads one
page of rows), so the lock costs nothing that matters, and the library calls stay exactly the CLI's.

Serving every site, the list follows the bench's sites folder: a site created (or deleted) while the server runs
is served (or dropped) from the next request on, found by the folder's modification time, so a request costs
one ``stat`` and the folder is listed again only when it changed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ..broker.connection import redis_for
from ..config import ALL_SITES, load_bench, load_site
from ..context import SiteContext, open_sites
from ..exceptions import HookSchedulerError

log = logging.getLogger(__name__)

#: Seconds after a change of the sites folder during which it is listed again at every request (a new site's
#: ``site_config.json`` is written after its folder is made).
SETTLING = 2.0


@dataclass
class BenchSites:
    """Every site of a bench (or the one named), each opened on first use."""

    bench: str | None = None
    site: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _contexts: dict[str, SiteContext] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    #: the sites folder followed (None: one site was chosen, the list is fixed) and its mtime when last listed
    _folder: str | None = field(default=None, repr=False)
    _listed: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for ctx in open_sites(self.bench, self.site, self.overrides):
            self._contexts[ctx.name] = ctx
        chosen = self.site or os.environ.get("HOOKSCHEDULER_SITE")
        if not chosen or chosen == ALL_SITES:
            self._folder = str(next(iter(self._contexts.values())).bench.sites_path)
            self._listed = _settled(self._mtime())

    @property
    def names(self) -> list[str]:
        self._follow()
        return sorted(self._contexts)

    def _mtime(self) -> int | None:
        try:
            return os.stat(self._folder).st_mtime_ns if self._folder else None
        except OSError:
            return None

    def _follow(self) -> None:
        """List the sites folder again if it changed since it was last listed: open the new sites, close and
        drop the ones gone. A change less than :data:`SETTLING` old is listed again at the next request too: a
        site's folder is made before its ``site_config.json``, which changes only the site's own folder."""
        if self._folder is None:
            return
        mtime = self._mtime()
        if mtime == self._listed:
            return
        with self._lock:
            bench = load_bench(str(Path(self._folder).parent))
            names = bench.site_names()
            for gone in set(self._contexts) - set(names):
                self._contexts.pop(gone).close()
            listed = _settled(mtime)
            for name in names:
                if name in self._contexts:
                    continue
                try:
                    self._contexts[name] = SiteContext(load_site(bench, name, self.overrides))
                except (HookSchedulerError, OSError) as exc:  # a half-written config: the other sites are served
                    log.warning("site %s is not served yet: %s", name, exc)
                    listed = None  # tried again at the next request
            self._listed = listed

    @property
    def bench_id(self) -> str:
        return self.first().bench.bench_id

    def first(self) -> SiteContext:
        return self._contexts[self.names[0]]

    def get(self, name: str) -> SiteContext:
        """The site (its settings as last read: :meth:`use` reads them afresh)."""
        self._follow()
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


def _settled(mtime: int | None) -> int | None:
    """``mtime`` to remember as listed, or None (list again next time) while it is less than :data:`SETTLING`
    old."""
    if mtime is None or time.time_ns() - mtime < SETTLING * 1_000_000_000:
        return None
    return mtime


class UnknownSite(HookSchedulerError):
    """A site name the server does not serve (a URL typed by hand)."""

    exit_code = 2


__all__ = ["SETTLING", "BenchSites", "UnknownSite"]
