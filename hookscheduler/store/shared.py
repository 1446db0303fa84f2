"""Sites that name one database. A site is one tenant with its own database: two sites on one database
read and write each other's jobs and ledger (a ``migrate`` of one re-anchors the other's schedule, and
``schedule`` serves both from one table). ``migrate`` refuses such a bench, ``doctor`` fails it and
``schedule`` serves only the first of them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..exceptions import ConfigError, HookSchedulerError
from ..security.redact import redact
from .database import database_key

if TYPE_CHECKING:
    from ..config import Site


def shared_databases(sites: list[Site]) -> list[list[Site]]:
    """Groups of two or more of ``sites`` whose ``db_url`` names one database, each in the sites' order."""
    groups: dict[tuple[str, ...], list[Site]] = {}
    for site in sites:
        key = database_key(site.db_url, site.bench.path)
        if key is not None:
            groups.setdefault(key, []).append(site)
    return [group for group in groups.values() if len(group) > 1]


def with_bench_sites(chosen: list[Site]) -> list[Site]:
    """``chosen`` and the bench's other sites (a command given ``--site`` must still see the site it shares a
    database with); a site whose config cannot be read is left out (its own command reports it)."""
    from ..config import load_site

    if not chosen:
        return []
    bench, named = chosen[0].bench, {s.name for s in chosen}
    names = bench.site_names()
    others: list[Site] = []
    for name in names:
        if name not in named:
            try:
                others.append(load_site(bench, name, names=names))
            except HookSchedulerError:
                continue
    order = {name: i for i, name in enumerate(names)}
    return sorted([*chosen, *others], key=lambda s: order.get(s.name, len(order)))


def describe_shared(group: list[Site]) -> str:
    """One line: which sites share which database (its URL redacted), and how to fix it."""
    what, fix = shared_problem(group)
    return f"{what}; {fix}"


def shared_problem(group: list[Site]) -> tuple[str, str]:
    """What is wrong with ``group`` (the sites, the database, its URL redacted) and how to fix it."""
    first = group[0]
    key = database_key(first.db_url, first.bench.path) or ("?",)
    where = (f"SQLite database {key[1]}" if key[0] == "sqlite"
             else f"PostgreSQL database {key[3]} on {key[1]}:{key[2]}")
    fix = "a site is one tenant with its own database: give each site its own db_url in its site_config.json"
    if os.environ.get("HOOKSCHEDULER_DB_URL"):
        fix += " ($HOOKSCHEDULER_DB_URL is set and gives every site the same one: unset it)"
    return (f"sites {', '.join(s.name for s in group)} share one database, {where} "
            f"(db_url {redact(first.db_url)})"), fix


def refuse_shared(chosen: list[Site]) -> None:
    """Raise when one of ``chosen`` shares its database with another site of the bench."""
    names = {s.name for s in chosen}
    for group in shared_databases(with_bench_sites(chosen)):
        if names & {s.name for s in group}:
            raise ConfigError(describe_shared(group))
