"""``hookscheduler migrate``: sync hooks into the Scheduled Job Type table, one transaction per site."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import click
import peewee as pw

from ..config import load_bench
from ..context import SiteContext
from ..declare.hooks import JobSpec, load_job_specs
from ..declare.migrate import Plan, migrate_site, plan_sync
from ..exceptions import HookSchedulerError
from ..schedule.reanchor import Reanchor, plan_reanchor, reanchor
from ..store.database import check_writable
from ..store.shared import refuse_shared
from ..timing.calendar import SiteCalendar
from .base import (
    SITE_PROBLEMS,
    CliState,
    cli,
    echo,
    is_driver_error,
    pass_state,
    print_config_notes,
    site_problem,
    stderr,
)
from .output import format_option, to_json


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@click.option("--prune", is_flag=True, help="Delete jobs no longer in hooks, and their history.")
@format_option
@pass_state
def migrate(state: CliState, dry_run: bool, prune: bool, fmt: str) -> None:
    """Sync every installed app's scheduler_events into the table (added / updated / removed / unchanged)."""
    load_bench(state.bench).require_bench("run migrate")
    contexts = state.each()
    refuse_shared([ctx.site for ctx in contexts])  # before anything is written: one site would move the other's
    print_config_notes([ctx.site for ctx in contexts])
    warnings: list[str] = []
    moved: dict[str, Reanchor] = {}
    failure: PartlyMigrated | None = None
    try:
        with without_cyclic_gc():
            plans = _migrate_all(contexts, dry_run, prune, warnings, moved)
    except PartlyMigrated as exc:  # the sites written before one failed: their plans are shown all the same
        failure, plans = exc, exc.plans
    finally:
        for ctx in contexts:
            ctx.close()
    for line in dict.fromkeys(warnings):
        stderr(f"Warning: {line}")
    _pin_zone(contexts, dry_run)
    if fmt == "json":
        click.echo(to_json([dict(p.as_dict(), dry_run=dry_run, reanchored=_reanchored(moved.get(p.site), dry_run))
                            for p in plans]))  # redacted by to_json (once: a
        # 100,000-job plan is 3 MB of text)
    else:
        for plan in plans:
            _print_plan(plan, dry_run, moved.get(plan.site))
    if failure is not None:
        raise failure


class PartlyMigrated(HookSchedulerError):
    """A site's write failed after the checks passed (its database turned read-only or went away meanwhile):
    the sites before it are migrated (``plans``), it and the ones after it are not. One transaction per site,
    and no transaction spans two databases, so this cannot be undone; a rerun of ``migrate`` finishes the job
    (the migrated sites are then unchanged)."""

    def __init__(self, site: str, exc: BaseException, plans: list[Plan], rest: list[str], dry_run: bool) -> None:
        text = site_problem(site, exc)
        if dry_run:
            message = text
        elif not plans:
            message = f"{text}; no site was migrated"
        else:
            message = (f"{text}; migrated: {', '.join(p.site for p in plans)}; NOT migrated: {', '.join(rest)} "
                       "(each site is written in its own transaction: fix this site, then run `hookscheduler "
                       "migrate` again to finish)")
        super().__init__(message)
        self.plans = plans


def _reanchored(done: Reanchor | None, dry_run: bool) -> dict[str, object] | None:
    """The re-anchor of a site in ``--format json``: null when its calendar did not change."""
    if done is None or (shown := done.as_dict()) is None:
        return None
    return dict(shown, summary=done.summary(conditional=dry_run))


def _pin_zone(contexts: list[SiteContext], dry_run: bool) -> None:
    """Pin the zone this migrate used into ``common_site_config.json`` when neither a site's own config nor the
    common one sets ``time_zone``. Without it each process's ``$TZ`` is the calendar: a migrate (or a shell, a
    cron job) with another ``$TZ`` re-anchors the site, and the next pass with the usual one re-anchors it back,
    losing a daily run without a trace. Frappe keeps the zone per site, never per process."""
    from ..config import read_config_file, update_site_config

    if not contexts or "time_zone" in read_config_file(contexts[0].bench.sites_path / "common_site_config.json"):
        return
    unset = [ctx.site for ctx in contexts if "time_zone" not in read_config_file(ctx.site.config_path)]
    if not unset:
        return
    zone = unset[0].time_zone.key
    path = unset[0].bench.sites_path / "common_site_config.json"
    how = "change it with `hookscheduler set-config -g time_zone ZONE`"
    if dry_run:
        stderr(f"Note: no time_zone is configured: migrate would pin this process's zone, time_zone {zone!r}, in "
               f"{path} so that every process keeps the same calendar (dry run: not written; {how})")
        return
    update_site_config(unset[0], {"time_zone": zone}, common=True)
    stderr(f"Note: no time_zone was configured: pinned this process's zone, time_zone {zone!r}, in {path} so that "
           f"every process keeps the same calendar ({how})")


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Python's cyclic collector off for the block, back as it was after it. A migrate allocates a few
    containers per job and keeps them to the end (specs, rows, the plan): the collector can free none of them,
    and on a large bench it walks them all again and again (100,000 jobs: three full collections, 0.2 s of the
    parent's 1.4 s of CPU). Whatever a migrate leaves for it (an app module's cycles) is collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _migrate_all(contexts: list[SiteContext], dry_run: bool, prune: bool, warnings: list[str],
                 moved: dict[str, Reanchor]) -> list[Plan]:
    """Check every site before writing to any: a refused or unreachable site leaves all of them untouched.
    ``moved`` gets each site's re-anchor after a calendar change (the one it would do, with ``dry_run``)."""
    # 2. Reach every database that exists. The PostgreSQL ones (a connection writes nothing) while the import
    # probe's children compile the first site's hooks, so that psycopg2's import and the connections overlap
    # them; a failure to reach one is raised once the hooks are checked (a refused hooks set is reported first,
    # as when this came after). SQLite files after the hooks' verdict: opening one makes its -wal and -shm
    # files, and a refused migrate leaves every file as it was.
    # With several sites, a PostgreSQL site's connection is closed once reached (and opened again to write):
    # 1,000 sites must not hold 1,000 connections at once, past the server's max_connections. One site keeps its
    # connection (a new one is a few round trips and an authentication: most of a small migrate's talk with the
    # server).
    dbs: dict[str, pw.Database | None] = {}
    unreachable: list[tuple[str, BaseException]] = []  # (the site, why it could not be reached)

    def reach(servers_only: bool = False) -> None:
        for ctx in contexts:
            if ctx.name in dbs or (servers_only and not ctx.site.on_postgres):
                continue
            try:
                dbs[ctx.name] = db = ctx.existing_database()
                if db is not None and not dry_run:  # one that refuses writes blocks every site, before any is
                    check_writable(db)                # written (a migrate cannot be atomic across databases)
            except Exception as exc:  # raised below, after the hooks' verdict
                unreachable.append((ctx.name, exc))
                return
            if len(contexts) > 1:
                _release(ctx)

    # 1. Everything that can be refused without a database: each site's zone and its hooks (queues and installed
    # apps are per site).
    loaded: dict[tuple[tuple[tuple[str, int], ...], tuple[str, ...]], list[JobSpec]] = {}
    prepared: list[tuple[SiteContext, SiteCalendar, list[JobSpec]]] = []
    for ctx in contexts:
        key = (tuple(ctx.site.queues.items()), ctx.site.apps)
        if key not in loaded:
            loaded[key] = load_job_specs(ctx.bench, ctx.site.queues, builtin=True, apps=ctx.site.apps,
                                         warnings=warnings, imports=False,
                                         meanwhile=None if loaded else lambda: reach(servers_only=True))
        prepared.append((ctx, ctx.calendar, loaded[key]))
    if not unreachable:
        reach()
    if unreachable:
        raise _blocked(*unreachable[0])
    # 3. Only then create the missing SQLite files.
    if not dry_run:
        for ctx in contexts:
            if dbs[ctx.name] is None:
                dbs[ctx.name] = ctx.database(create=True, require_schema=False)
    # 4. Write, one transaction per site. A site that fails now (its database turned read-only or went away
    # since the checks) stops the migrate there, naming it and the sites already written.
    plans: list[Plan] = []
    for i, (ctx, calendar, specs) in enumerate(prepared):
        if dbs[ctx.name] is None:  # --dry-run on a site without a database yet: everything would be added
            plans.append(plan := plan_sync(ctx.name, specs, [], prune))
            plan.schema_from = 0
            continue
        try:
            db = ctx.database(create=False, require_schema=False)
            plan = migrate_site(db, ctx.name, specs, calendar, dry_run=dry_run, prune=prune)
            if not dry_run:
                moved[ctx.name] = reanchor(ctx)
            elif plan.schema_from != 0:  # the tables it reads (and the stored calendar) are there since version 1:
                moved[ctx.name] = plan_reanchor(ctx)  # the re-anchor the real migrate does after its schema steps
        except Exception as exc:
            if not isinstance(exc, SITE_PROBLEMS) and not is_driver_error(exc):
                raise
            raise PartlyMigrated(ctx.name, exc, plans, [c.name for c, _, _ in prepared[i:]], dry_run) from None
        plans.append(plan)
        _release(ctx)
    return plans


def _blocked(site: str, exc: BaseException) -> BaseException:
    """The error of a site that blocks the migrate, naming it and saying that no site was written: a refused
    or unreachable site leaves every site untouched, and with several sites the operator must learn which one
    to fix and that the healthy ones were not migrated either. Anything but a site's problem is kept as it is
    (an internal error is still reported as one)."""
    if not isinstance(exc, SITE_PROBLEMS):
        return exc
    error = HookSchedulerError(f"{site_problem(site, exc)}; no site was migrated")
    error.exit_code = exc.exit_code if isinstance(exc, HookSchedulerError) else 1
    return error


def _release(ctx: SiteContext) -> None:
    """Close a PostgreSQL site's connection (a SQLite file costs the server nothing; it stays open)."""
    if ctx.holds_server_connection:
        ctx.close()


def _print_plan(plan: Plan, dry_run: bool, moved: Reanchor | None = None) -> None:
    prefix = "would be " if dry_run else ""
    shifted = moved.summary(conditional=dry_run) if moved is not None else None
    echo(f"site {plan.site}: {len(plan.added)} {prefix}added, {len(plan.updated)} {prefix}updated, "
         f"{len(plan.removed)} {prefix}removed, {len(plan.pruned)} {prefix}pruned, {len(plan.unchanged)} unchanged"
         + (f", {shifted}" if shifted else "") + (f", {plan.schema_change}" if plan.schema_change else "")
         + (" (dry run: nothing written)" if dry_run else ""))
    for spec in plan.added:
        sched = f"{spec.frequency} {spec.cron_format}" if spec.cron_format else spec.frequency
        echo(f"  + {spec.name}  [{sched}, queue {spec.queue}]")
    for change in plan.updated:
        parts = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in change.fields.items())
        echo(f"  ~ {change.name}  ({parts})")
    for name in plan.removed:
        echo(f"  - {name}  (removed from hooks: stops firing, history kept; --prune deletes it)")
    for name in plan.pruned:
        echo(f"  x {name}  (deleted with its history)")
