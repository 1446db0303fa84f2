"""A site kept open by a long-running process that acts for it, following edits to its config files.

A worker runs for weeks, and so does an application process that calls ``hookscheduler.enqueue``: a site kept
as first read would go on sending jobs to the Redis it named then, and writing into the database it named then,
after a ``set-config redis_queue`` or ``set-config db_url`` + ``migrate`` (while the scheduler and the CLI use the
new ones). So each use compares the ``stat`` of the site's two config files with those of the last read (two
``stat`` calls, the loop's own check: :mod:`hookscheduler.schedule._watch`) and reads them again only when they
differ; a new ``db_url`` closes the old database (:meth:`~hookscheduler.context.SiteContext.replace_site`).

Two things are never done under the caller: a config that no longer loads (a hand edit in progress) does not
stop the process, the previous one is kept and the problem is logged once, until the files load again; and a
transaction open on the site's database is never closed under it, the re-read waits for the next use after it
ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .config import load_bench, load_site
from .context import SiteContext
from .exceptions import one_line
from .schedule._watch import Fingerprint, site_fingerprint


@dataclass
class FollowedSite:
    """One site as this process last read it, and the ``stat`` of its config files then."""

    ctx: SiteContext
    #: the bench as the process names it (``load_bench``'s argument: None means the environment's)
    bench: str | None
    #: who keeps the old config when the new one does not load, for the log ("this worker")
    who: str
    log: logging.Logger
    seen: Fingerprint | None = None
    failing: bool = False

    @classmethod
    def start(cls, ctx: SiteContext, bench: str | None, who: str, log: logging.Logger) -> FollowedSite:
        return cls(ctx, bench, who, log, site_fingerprint(ctx.bench.path, ctx.name))

    def current(self, on_moved: Callable[[str], None] | None = None) -> SiteContext:
        """The site with the config its files hold now. ``on_moved(old_db_url)`` runs when the database changed
        (the worker lets go of what it kept warm for the old one)."""
        seen = site_fingerprint(self.ctx.bench.path, self.ctx.name)
        if (seen is None or seen != self.seen) and not self.ctx.in_transaction:
            self._reread(seen, on_moved)
        return self.ctx

    def _reread(self, seen: Fingerprint | None, on_moved: Callable[[str], None] | None) -> None:
        ctx = self.ctx
        try:
            site = load_site(load_bench(self.bench), ctx.name)
        except Exception as exc:  # any failure to load (bad JSON, a bad value, a missing site): keep the last one
            if not self.failing:
                self.log.error("site %s: its config no longer loads (%s); %s keeps the config it read before",
                               ctx.name, one_line(exc), self.who)
            self.failing, self.seen = True, seen
            return
        if self.failing:
            self.log.warning("site %s: its config loads again; %s uses it", ctx.name, self.who)
        old_url = ctx.site.db_url
        if ctx.replace_site(site):
            self.log.info("site %s: its database changed; %s uses the new one", ctx.name, self.who)
            if on_moved is not None:
                on_moved(old_url)
        self.failing, self.seen = False, seen


__all__ = ["FollowedSite"]
