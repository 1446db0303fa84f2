"""``scheduler status|pause|resume|enable|disable``, ``enable-scheduler``, ``disable-scheduler``, ``set-config``."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..config import ALL_SITES, Site, load_bench, load_site
from ..context import SiteContext
from ..exceptions import BadInput, HookSchedulerError, SchemaError, ServiceUnavailable
from ..ops import scheduler as sched
from ..ops.jobs import actor
from ..ops.notes import automatic_end
from ..store.models import utcnow
from .base import SITE_PROBLEMS, CliState, cli, echo, fail, for_each_site, pass_state, problem_text, stderr
from .common import ago, connect
from .output import format_option, local, one_line_text, table, to_json


@cli.group("scheduler")
def scheduler() -> None:
    """The site's scheduler: status, pause / resume (deploys), enable / disable."""


@scheduler.command("status")
@click.option("-v", "--verbose", is_flag=True, help="Also the scheduler processes and per-queue counts.")
@click.option("--check", is_flag=True,
              help="Exit 1 unless every site's scheduler is enabled and served: a `schedule` process serving it "
                   "is alive or, on a bench driven by `hookscheduler tick` from cron, its last pass is recent and "
                   "was made by `tick` (for health checks and scripts).")
@format_option
@pass_state
def status_cmd(state: CliState, verbose: bool, check: bool, fmt: str) -> None:
    """Enabled, disabled or paused (and why), last tick, whether a `schedule` process is alive, pending and
    failed jobs. Without --site: every site (JSON: a list). With --check: exit 1 when a site's jobs would not
    run. A site whose database cannot be reached is one `Error: site NAME: ...` line (JSON: its entry has an
    `error`) and exit 1; the other sites are still reported."""
    contexts = state.each()
    statuses: list[tuple[SiteContext, sched.SiteStatus]] = []
    broken: dict[str, str] = {}  # site -> its problem: the other sites are still reported
    for ctx in contexts:
        try:
            statuses.append((ctx, _status(ctx)))
        except SITE_PROBLEMS as exc:
            broken[ctx.name] = problem_text(exc)
    if fmt == "json":
        answered = {st.site: st.as_dict(verbose) for _, st in statuses}
        data = [answered.get(ctx.name) or {"site": ctx.name, "error": broken[ctx.name]} for ctx in contexts]
        echo(to_json(data[0] if len(data) == 1 else data))
    else:
        now = utcnow()
        for ctx, st in statuses:
            _print_status(ctx, st, verbose, now)
    for name, problem in broken.items():  # one line per broken site, naming it, as `tick` and `doctor` do
        stderr(f"Error: site {name}: {problem}")
    errors = [s.redis_error for _, s in statuses if s.redis_error]
    if errors:  # the database half was printed; the command still failed (exit 1, one line)
        fail(errors[0])
    if check:
        now = utcnow()
        failing = [why for _ctx, s in statuses if (why := not_running(s, now))]
        if failing:
            fail("; ".join(failing))
    if broken:
        raise click.exceptions.Exit(1)


def not_running(st: sched.SiteStatus, now: datetime) -> str | None:
    """Why the site's scheduled jobs would not run now (for ``--check``), or None. As ``doctor`` judges it: a
    live `schedule` process, or recent passes made by ``hookscheduler tick`` (cron)."""
    if st.status != sched.ENABLED:
        return f"site {st.site}: scheduler {st.status}" + (f" ({st.reason})" if st.reason else "")
    by = st.driver(now)
    if by == sched.Driver.STOPPED:
        return (f"site {st.site}: the `hookscheduler schedule` process that made its last pass "
                f"({ago(st.last_tick, now)}) has stopped, and no `hookscheduler tick` runs")
    if by not in (sched.Driver.PROCESS, sched.Driver.TICK):
        return (f"site {st.site}: no `hookscheduler schedule` process is alive and no recent scheduling pass "
                "(`hookscheduler tick`)")
    return None


def _status(ctx: SiteContext) -> sched.SiteStatus:
    try:
        conn = connect(ctx)
    except ServiceUnavailable as exc:
        return sched.site_status(ctx, None, str(exc))
    return sched.site_status(ctx, conn)


def _print_status(ctx: SiteContext, st: sched.SiteStatus, verbose: bool, now: Any) -> None:
    echo(f"Scheduler is {st.status} for site {st.site}" + (f" ({st.reason})" if st.reason else ""))
    unsent = (f"; {st.unsent} run(s) claimed but not yet sent to Redis (the scheduler sends them when it can)"
              if st.unsent else "")
    if st.redis_error:
        echo("  Redis unreachable: last tick, scheduler processes and job counts unknown" + unsent)
        return
    alive = _process_line(st, now)
    tick = f"{local(st.last_tick, ctx.site.time_zone)} ({ago(st.last_tick, now)})" if st.last_tick else "never"
    echo(f"  last tick {tick}; "
         f"scheduler process {alive}; {st.pending} pending, {st.failed} failed job(s)" + unsent)
    if verbose:
        for p in st.processes:
            echo(f"  process {p.host}:{p.pid}, heartbeat {ago(p.at, now)}, sites "
                 f"{', '.join(p.sites) if p.sites is not None else 'all'}")
        body = [[q, c["queued"], c["started"], c["failed"], c["scheduled"]] for q, c in st.queues.items()]
        echo("  " + table(body, ["queue", "queued", "started", "failed", "scheduled"]).replace("\n", "\n  "))


def _process_line(st: sched.SiteStatus, now: datetime) -> str:
    """The ``schedule`` process part of the status line. A bench driven by ``hookscheduler tick`` from cron has
    no process and needs none: with recent passes made by ``tick`` that is what the line says (as ``--check``
    and ``doctor`` judge it). NOT RUNNING, with what to start, is kept for when nothing schedules the site, and
    says so when a `schedule` process made the last pass and has stopped since."""
    by = st.driver(now)
    if by == sched.Driver.PROCESS:
        return "alive"
    if by == sched.Driver.TICK:
        return "none (driven by `hookscheduler tick`)"
    if by == sched.Driver.STOPPED:
        return ("NOT RUNNING (the `schedule` process that made the last pass has stopped; start "
                "`hookscheduler schedule`, or run `hookscheduler tick` from cron)")
    return "NOT RUNNING (start `hookscheduler schedule`, or run `hookscheduler tick` from cron)"


def _still_inactive(ctx: SiteContext) -> None:
    """After a switch, say so if the scheduler stays inactive for another reason (read afresh)."""
    status, reason = sched.scheduler_state(ctx)
    if status != sched.ENABLED:
        echo(f"note: the scheduler is still {status}: {reason}")


@scheduler.command("pause")
@click.option("--until", "until_text", metavar="T",
              help="Resume by itself at T: an ISO time (site zone unless it has an offset) or a duration ahead "
                   "(20m, 2h).")
@pass_state
def pause_cmd(state: CliState, until_text: str | None) -> None:
    """Pause (sets pause_scheduler in site_config.json) until resume, or until T. Slots due meanwhile are held:
    on resume each job's catchup policy applies (default: one catch-up run); stopped jobs stay skipped."""
    contexts = state.targets()
    ends = [automatic_end(until_text, ctx, utcnow()) for ctx in contexts]  # a bad --until: refused before any write
    until_of = dict(zip((ctx.name for ctx in contexts), ends, strict=True))

    def pause(ctx: SiteContext) -> None:
        until = until_of[ctx.name]
        sched.set_paused(ctx, True, until)
        end = f" until {local(until, ctx.site.time_zone)}" if until else ""
        echo(f"Scheduler is paused for site {ctx.name}{end}")

    for_each_site(contexts, pause)


@scheduler.command("resume")
@pass_state
def resume_cmd(state: CliState) -> None:
    """Resume after pause: slots held during the pause are caught up per each job's catchup policy (one run by
    default), then every job fires on its schedule.

    The site's own pause_scheduler is removed, so a later bench-wide pause applies to it; while the bench is
    paused in common_site_config.json it is set to false instead: this site runs, the others stay paused."""
    def resume(ctx: SiteContext) -> None:
        sched.set_paused(ctx, False)
        echo(f"Scheduler is resumed for site {ctx.name}")
        if sched.bench_paused(ctx):
            echo(f"note: site {ctx.name} resumed although the bench is paused in common_site_config.json "
                 "(its site_config.json sets pause_scheduler false, which overrides the bench's)")
        _still_inactive(ctx)

    for_each_site(state.targets(), resume)


def _enable(state: CliState, enabled: bool, note: str | None, message: str) -> None:
    """Switch every target site; a broken one is named and the others are still switched (exit 1)."""
    def switch(ctx: SiteContext) -> None:
        sched.set_enabled(ctx, enabled, note, who=actor())
        echo(message.format(site=ctx.name))
        if enabled:
            _still_inactive(ctx)

    for_each_site(state.targets(), switch)


@scheduler.command("enable")
@pass_state
def enable_cmd(state: CliState) -> None:
    """Enable the site's scheduler (scheduler_state.scheduler_enabled = 1)."""
    _enable(state, True, None, "Scheduler is enabled for site {site}")


@scheduler.command("disable")
@click.option("--note", callback=one_line_text, help="Why (shown by status and in the skipped rows).")
@pass_state
def disable_cmd(state: CliState, note: str | None) -> None:
    """Disable the site's scheduler (scheduler_state.scheduler_enabled = 0)."""
    _enable(state, False, note, "Scheduler is disabled for site {site}")


@cli.command("enable-scheduler")
@pass_state
def enable_scheduler_cmd(state: CliState) -> None:
    """Enable the site's scheduler (as `scheduler enable`)."""
    _enable(state, True, None, "Enabled for {site}")


@cli.command("disable-scheduler")
@click.option("--note", callback=one_line_text, help="Why (shown by status and in the skipped rows).")
@pass_state
def disable_scheduler_cmd(state: CliState, note: str | None) -> None:
    """Disable the site's scheduler (as `scheduler disable`)."""
    _enable(state, False, note, "Disabled for {site}")


def parse_value(raw: str) -> Any:
    """A JSON value when the text is one (``true``, ``300``, ``{"q": {...}}``), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
    except RecursionError:
        raise BadInput("set-config: VALUE is JSON nested too deeply to be a setting") from None


def parse_literal(raw: str) -> Any:
    """``set-config -p``: VALUE as JSON, else as a Python literal (``True``, ``None``, ``{'q': {'timeout': 900}}``),
    as Frappe's ``set-config --parse`` reads it; a value that is neither, or that JSON cannot hold, is refused."""
    import ast

    try:
        return json.loads(raw)
    except ValueError:
        pass
    except RecursionError:
        raise BadInput("set-config: VALUE is JSON nested too deeply to be a setting") from None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise BadInput("set-config --parse: VALUE is neither JSON nor a Python literal; quote a text value "
                       "or leave out --parse") from None
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise BadInput(f"set-config --parse: VALUE is a Python {type(value).__name__}, which a config file "
                       "cannot hold; use a number, text, true/false, null, a list or an object") from None


def _shown(key: str, value: Any) -> str:
    return "***" if "password" in key else json.dumps(value)


class ValueArgumentCommand(click.Command):
    """A command whose second argument (VALUE) may start with ``-``: ``set-config log_retention_days -1`` must
    reach the setting's own check (and its one-line error), not die as the unknown option ``-1``. Anywhere
    else an unknown option is still refused as one, so that a mistyped option is not silently taken as KEY or
    as an extra argument. (``--`` before KEY still works and lets any text through.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {})["ignore_unknown_options"] = True
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {name for param in self.get_params(ctx) for name in (*param.opts, *param.secondary_opts)}
        position = 0  # how many arguments came before this token
        for token in args:
            if token == "--":
                break
            if token.split("=", 1)[0] in known:
                continue
            if token.startswith("-") and len(token) > 1 and position != 1:
                raise click.NoSuchOption(token, ctx=ctx)
            position += 1
        return super().parse_args(ctx, args)


@cli.command("set-config", cls=ValueArgumentCommand)
@click.argument("key")
@click.argument("value")
@click.option("-g", "--global", "common", is_flag=True, help="Write common_site_config.json (every site).")
@click.option("-p", "--parse", "literal", is_flag=True,
              help="VALUE must parse: as JSON, or as a Python literal (True, None, {'a': 1}), as Frappe's --parse.")
@pass_state
def set_config_cmd(state: CliState, key: str, value: str, common: bool, literal: bool) -> None:
    """Set KEY to VALUE in the site's site_config.json (or, with --global, common_site_config.json).

    VALUE is read as JSON when it is JSON (true, 300, "text", {"q": {"timeout": 900}}), else as text;
    with -p/--parse it must be JSON or a Python literal (True, {'q': {'timeout': 900}}), else it is refused.
    `null` (or None with -p) removes the key; a VALUE may start with '-' (-1). Misspelt keys and wrong types
    are refused.
    """
    from ..config import update_site_config

    parsed = parse_literal(value) if literal else parse_value(value)
    verb = "removed" if parsed is None else f"set to {_shown(key, parsed)}"
    sites = [_target_site(state, common)] if common else [ctx.site for ctx in state.targets()]
    if key in CALENDAR_KEYS:  # refused before any file is written: nothing half-done
        _require_current_schemas(state, key, [s.name for s in sites] if not common else None)
    if key == "pause_scheduler" and not common:
        _forget_pause_ends(state, [s.name for s in sites])
    for site in sites:
        before = _file_mode(site.bench.sites_path / "common_site_config.json" if common else site.config_path)
        path = update_site_config(site, {key: parsed}, common=common)
        echo(f"{key} {verb} in {path}")
        after = _file_mode(path)
        if before is not None and after is not None and after != before:
            echo(f"{path} was {before:04o}, open to other users, and now holds a password: made it {after:04o} "
                 "(owner only); `chmod g+r` it if a worker of your group must read it")
    if key in CALENDAR_KEYS:
        _reanchor_now(state, [s.name for s in sites] if not common else None)


def _forget_pause_ends(state: CliState, names: list[str]) -> None:
    """A ``pause_scheduler`` written by hand is a pause without an end: forget the end an earlier ``scheduler
    pause --until T`` left, before the file is written. Otherwise a pass that finds T passed would lift the
    new pause as the old one's (the file looks the same). Forgotten first, so that a pass meanwhile has no end
    to act on; a site whose database cannot be reached is told on stderr."""
    from ..context import open_site
    from ..schedule.inactivity import PAUSE_UNTIL
    from ..store.database import set_state, write_txn

    for name in names:
        try:
            ctx = open_site(state.bench, name, state.overrides)
        except HookSchedulerError:
            continue  # its config does not load: the write below says so
        try:
            db = ctx.existing_database()
            if db is not None:
                with write_txn(db):
                    set_state(PAUSE_UNTIL, None)
        except SITE_PROBLEMS as exc:
            stderr(f"Note: site {name}: could not clear the end of an earlier `scheduler pause --until` "
                   f"({problem_text(exc)}); if it had one, `hookscheduler scheduler pause` sets a pause without one")
        finally:
            ctx.close()


def _file_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


#: The settings a site's calendar is made of: changing one moves every job's next slot (docs/dst.md).
CALENDAR_KEYS = frozenset({"time_zone", "scheduler_tick_interval", "scheduler_interval"})


def _require_current_schemas(state: CliState, key: str, names: list[str] | None) -> None:
    """Refuse a calendar change for sites whose database's schema is not this hookscheduler's (older: not
    migrated yet; newer: a newer hookscheduler migrated it): the re-anchor that follows the change rewrites
    every job's next slot and the stored calendar, which no other command writes into such a schema either.
    A site without a database yet (a SQLite file not made, a PostgreSQL database without the tables) has
    nothing to re-anchor; one that cannot be reached is re-anchored by its next pass, which checks the schema
    itself (:func:`_reanchor_now` says so)."""
    from ..context import open_site
    from ..store.database import SCHEMA_VERSION, schema_mismatch, schema_version

    bench = load_bench(state.bench)
    for name in names if names is not None else bench.site_names():
        try:
            ctx = open_site(state.bench, name, state.overrides)
        except HookSchedulerError:  # another site's own config is broken: _reanchor_now notes it
            continue
        try:
            db = ctx.existing_database()
            version = schema_version(db) if db is not None else 0
        except SITE_PROBLEMS:
            continue
        finally:
            ctx.close()
        if version not in (0, SCHEMA_VERSION):
            raise SchemaError(f"site {name}: {schema_mismatch(version)}; {key} not set (a calendar change "
                              "re-anchors the site's jobs)")


def _reanchor_now(state: CliState, names: list[str] | None) -> None:
    """Re-anchor at once the sites whose calendar a ``set-config`` just changed (``names``; None: every site of
    the bench, after ``-g``), so that ``jobs list``, ``next`` and ``explain`` show the new calendar's slots
    before the next pass. A site whose database cannot be reached is re-anchored by its next pass; one without
    a database yet has nothing to move."""
    from ..context import open_site
    from ..schedule.reanchor import reanchor
    from ..store.database import require_schema, schema_version

    bench = load_bench(state.bench)
    for name in names if names is not None else bench.site_names():
        try:
            ctx = open_site(state.bench, name, state.overrides)
        except HookSchedulerError as exc:  # another site's own config is broken: its passes say so
            stderr(f"Note: site {name}: not re-anchored now ({problem_text(exc)}); its next pass does it")
            continue
        try:
            db = ctx.existing_database()
            if db is None or schema_version(db) == 0:  # never migrated: nothing to move
                continue
            require_schema(db)  # changed since the check before the config was written: its next pass does it
            done = reanchor(ctx)
        except SITE_PROBLEMS as exc:
            stderr(f"Note: site {name}: database not reachable, so its jobs are re-anchored at its next pass "
                   f"({problem_text(exc)})")
            continue
        finally:
            ctx.close()
        summary = done.summary()
        if summary is not None:
            echo(f"site {name}: {summary}")


def _target_site(state: CliState, common: bool) -> Site:
    """The site to write; for --global any site of the bench will do (only its bench path is used)."""
    if not common:
        return state.one().site
    bench = load_bench(state.bench)
    named = state.site if state.site and state.site != ALL_SITES else None
    return load_site(bench, named or bench.site_names()[0], state.overrides)
