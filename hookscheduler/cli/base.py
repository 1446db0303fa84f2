"""The root ``click`` group, the shared state it passes down, and the one place errors become exit codes."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import peewee as pw

from .. import __version__
from ..config import Site
from ..context import SiteContext, open_site, open_sites
from ..exceptions import HookSchedulerError, SchemaError, ServiceUnavailable
from ..security.logs import install_log_redaction
from ..security.redact import redact
from .lazy import LazyCommand, LazyGroup


@dataclass
class CliState:
    """What the root options chose: the bench and the site (``None``: the env var, else all / the only one)."""

    bench: str | None = None
    site: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def one(self) -> SiteContext:
        ctx = open_site(self.bench, self.site, self.overrides)
        _OPENED.append(ctx)
        return ctx

    def each(self) -> list[SiteContext]:
        contexts = open_sites(self.bench, self.site, self.overrides)
        _OPENED.extend(contexts)
        return contexts

    def targets(self) -> list[SiteContext]:
        """The site a one-site command acts on, or every site with ``--site all`` (as Frappe's bench does for
        ``set-config``, ``scheduler pause`` and the like)."""
        from ..config import ALL_SITES

        return self.each() if self.site == ALL_SITES else [self.one()]

    def site_config(self) -> Site:
        return self.one().site


#: The sites this command opened: a database error that ends it names the one whose database raised it.
_OPENED: list[SiteContext] = []

_SCHED = ("scheduler_cmd",)
_QUEUES = ("queues_cmd",)
_WORKER = ("worker_cmd",)

#: Every root command: the modules that define it (imported on first use) and the first paragraph of its help.
#: tests/integration/test_cli_lazy.py checks this against the commands themselves.
COMMANDS: dict[str, LazyCommand] = {
    "dashboard": LazyCommand(("web_cmd",), "The web dashboard: jobs, timelines, explain, missed and failed runs, "
                             "scheduler, queues, workers, RQ jobs, and /metrics. Localhost only unless --auth-file; "
                             "without it, open the URL it prints (it holds an access token made at each start)."),
    "disable-scheduler": LazyCommand(_SCHED, "Disable the site's scheduler (as `scheduler disable`)."),
    "doctor": LazyCommand(("doctor_cmd",), "Check Redis, the database and its schema, the scheduler (state, process, "
                          "last tick), overdue jobs, failed runs, and the workers and depth of every queue. Exit 1 "
                          "when a problem is found. Without --site: every site."),
    "enable-scheduler": LazyCommand(_SCHED, "Enable the site's scheduler (as `scheduler enable`)."),
    "job-status": LazyCommand(_WORKER, "Status of a background job or scheduled run: JOB_ID as enqueue returned it, "
                              "or as the app chose it."),
    "jobs": LazyCommand(("jobs", "jobs_run", "jobs_history", "jobs_backfill"),
                        "Scheduled jobs: list, toggle, run, inspect."),
    "metrics": LazyCommand(("web_cmd",), "Serve Prometheus metrics for every site of the bench (or --site) at "
                           "/metrics. No sign-in: keep it on loopback, or behind a proxy that authenticates."),
    "migrate": LazyCommand(("migrate_cmd",), "Sync every installed app's scheduler_events into the table "
                           "(added / updated / removed / unchanged)."),
    "purge-jobs": LazyCommand(_QUEUES, "Delete the site's queued jobs; their scheduled runs are logged as skipped "
                              "(purged)."),
    "ready-for-migration": LazyCommand(_QUEUES, "Exit 0 when no job of the site is queued or running (in RQ or the "
                                       "outbox), else 1. Without --site (or with --site all): every site, ready "
                                       "only when each one is."),
    "rq-jobs": LazyCommand(_QUEUES, "The site's RQ jobs (the RQ Job view): list, show, cancel, stop, delete."),
    "schedule": LazyCommand(("schedule_cmd",), "Run the scheduler loop in the foreground (SIGTERM / Ctrl-C stop it "
                            "cleanly)."),
    "scheduler": LazyCommand(_SCHED, "The site's scheduler: status, pause / resume (deploys), enable / disable."),
    "set-config": LazyCommand(_SCHED, "Set KEY to VALUE in the site's site_config.json (or, with --global, "
                              "common_site_config.json)."),
    "show-pending-jobs": LazyCommand(_QUEUES, "Per queue: the site's queued, started, failed and scheduled jobs, and "
                                     "the totals."),
    "start": LazyCommand(_WORKER, "Development: the scheduler and workers for every queue (and a private "
                         "redis-server if no Redis answers), with prefixed logs; Ctrl-C stops them all."),
    "tick": LazyCommand(("schedule_cmd",), "One scheduling step per site (or --site), then exit: for system "
                        "cron or a Kubernetes CronJob."),
    "trigger-scheduler-event": LazyCommand(_QUEUES, "Enqueue now (trigger `event`) every job of EVENT (e.g. `daily`: "
                                           "every Daily, Daily Long and Daily Maintenance job), or the job a name or "
                                           "METHOD designates. Stopped jobs are left out unless --force."),
    "worker": LazyCommand(_WORKER, "Run an RQ worker for every site of the bench (Ctrl-C: finish the current job and "
                          "stop)."),
    "worker-pool": LazyCommand(_WORKER, "Run RQ's WorkerPool: N workers, respawned if one dies."),
    "workers": LazyCommand(_QUEUES, "RQ workers of the bench."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--bench", metavar="PATH", help="Bench folder (default: $HOOKSCHEDULER_BENCH, else the current folder).")
@click.option("--site", metavar="NAME", help="Site (default: $HOOKSCHEDULER_SITE, else every site / the only one).")
@click.version_option(__version__, prog_name="hookscheduler")
@click.pass_context
def cli(ctx: click.Context, bench: str | None, site: str | None) -> None:
    """hookscheduler: Frappe-style scheduler_events on Redis + RQ, exactly once per slot."""
    ctx.obj = CliState(bench=bench, site=site)


pass_state = click.make_pass_decorator(CliState)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every error into one line and an exit status (0 / 1 / 2)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    _OPENED.clear()
    try:
        result = cli.main(args=argv, prog_name="hookscheduler", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.UsageError as exc:
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # a group alone: its help
            exc.show()
        else:
            click.echo(usage_error_line(exc), err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except HookSchedulerError as exc:
        click.echo(f"Error: {redact(str(exc))}", err=True)
        return exc.exit_code
    except (pw.DatabaseError, sqlite3.DatabaseError) as exc:  # sqlite3's: a damaged file, read past peewee's wrapper
        click.echo(f"Error: {redact(_database_problem(exc, name_site=True))}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: still one line, still no secret
        if _is_redis_error(exc):
            click.echo(f"Error: Redis: {redact(_first_line(exc))}; check redis_queue and that Redis is up", err=True)
            return 1
        click.echo(f"Error: internal error {type(exc).__name__}: {redact(_first_line(exc))} "
                   "(please report it; set HOOKSCHEDULER_DEBUG=1 for the traceback)", err=True)
        if _debug():  # the traceback, redacted (an exception's message may quote a URL with its password)
            import traceback

            click.echo(redact(traceback.format_exc()).rstrip(), err=True)
        return 1
    return int(result) if isinstance(result, int) else 0


#: A usage error's message is cut to this many characters: an argument of 10,000 characters quoted by ``click``
#: must not become an error of 10,000 characters.
USAGE_MESSAGE_MAX = 300
#: The root command's own options, and their metavar: given after a subcommand they are unknown there.
_ROOT_OPTIONS = {"--bench": "PATH", "--site": "NAME"}


def usage_error_line(exc: click.UsageError) -> str:
    """A usage error as the one line every other error is, instead of ``click``'s four (usage, a "Try" line, a
    blank line, the error): the error itself, then which ``--help`` shows the right usage."""
    if isinstance(exc, click.NoSuchOption) and exc.ctx is not None and exc.ctx.parent is not None:
        name = exc.option_name.split("=", 1)[0]
        if name in _ROOT_OPTIONS:  # ``jobs list --site x``: the most common slip, given its own fix
            root, _, rest = exc.ctx.command_path.partition(" ")
            return (f"Error: {name} is an option of {root} itself and goes before the command: "
                    f"'{root} {name} {_ROOT_OPTIONS[name]} {rest} ...' (see '{root} --help')")
    lines = redact(exc.format_message()).splitlines()
    message = " ".join(line.strip() for line in lines if line.strip()).rstrip(".")
    if len(message) > USAGE_MESSAGE_MAX:
        message = message[:USAGE_MESSAGE_MAX - 3] + "..."
    command = exc.ctx.command_path if exc.ctx is not None else "hookscheduler"
    return f"Error: {message} (see '{command} --help')"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, redis.exceptions.RedisError)


def _debug() -> bool:
    import os

    return os.environ.get("HOOKSCHEDULER_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = 1) -> None:
    """Stop a command with one line and an exit status."""
    err = HookSchedulerError(message)
    err.exit_code = code
    raise err


#: What one broken site raises: its database or Redis unreachable, missing or refusing us. Caught per site so
#: that the healthy sites still answer; bad input (:class:`BadInput`) or a broken bench is not about one site.
SITE_PROBLEMS: tuple[type[BaseException], ...] = (ServiceUnavailable, SchemaError, pw.DatabaseError,
                                                  sqlite3.DatabaseError)


def _database_problem(exc: BaseException, name_site: bool = False) -> str:
    """A database error as one line with its fix: a database that refuses writes (which one, and what makes
    it read-only), a server or file that cannot be used (check db_url), or a damaged database (``doctor`` says
    what to do). ``name_site``: start with the site whose database raised it (when the command opened it)."""
    from ..store import database as dbmod
    from ..store.models import database_proxy

    if dbmod.is_read_only_error(exc):
        db = database_proxy.obj  # the database the models were bound to when it raised
        site = next((ctx.name for ctx in _OPENED if ctx.owns(db)), None)
        if site is None and len({ctx.name for ctx in _OPENED}) == 1:  # one site: its database, closed since
            site = _OPENED[0].name
        return (f"site {site}: " if name_site and site else "") + dbmod.read_only_problem(db, exc)
    return f"database: {_first_line(exc)}; {_database_fix(exc, database_proxy.obj)}"


def _database_fix(exc: BaseException, db: pw.Database | None) -> str:
    """What to check for a database error: a name a schema step wants taken by an object hookscheduler did not
    make; a SQLite file that cannot be used (there is no server to be up); a server that cannot be reached; or,
    for anything else, what ``doctor`` finds."""
    text = str(exc)
    # SQLite's and PostgreSQL's words for a name taken; not a duplicate key (an IntegrityError), whose detail says
    # "already exists" too, and which is no object in the way
    if not isinstance(exc, pw.IntegrityError) and ("there is already a" in text or "already exists" in text):
        return ("an object of that name that hookscheduler did not make is in the way in the database: rename or "
                "drop it (after checking what uses it), then run `hookscheduler migrate` again")
    if not isinstance(exc, pw.OperationalError):
        return "run `hookscheduler doctor`"
    if isinstance(db, pw.SqliteDatabase):
        return "check db_url, the database file and its folder (`hookscheduler doctor` checks them)"
    return "check db_url and that the server is up"


def problem_text(exc: BaseException) -> str:
    """One site's problem (:data:`SITE_PROBLEMS`) as one line, redacted, worded as :func:`run_cli` words the
    same error when it ends a command."""
    if isinstance(exc, HookSchedulerError):
        return redact(_first_line(exc))
    if isinstance(exc, (pw.DatabaseError, sqlite3.DatabaseError)) or is_driver_error(exc):
        return redact(_database_problem(exc))
    return redact(f"{type(exc).__name__}: {_first_line(exc)}")


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg2's own error (one raised past peewee's wrapper), without importing it."""
    driver = getattr(pw, "psycopg2", None)
    return driver is not None and isinstance(exc, driver.Error)


def site_problem(name: str, exc: BaseException) -> str:
    """One site's problem as one line naming the site (``site s5: cannot connect to database ...``): with
    several sites, an error that does not say which one failed sends the operator hunting through all of
    them."""
    return f"site {name}: {problem_text(exc)}"


def for_each_site(contexts: list[SiteContext], action: Callable[[SiteContext], None]) -> None:
    """Run ``action`` on every site; a broken site (:data:`SITE_PROBLEMS`) is one ``Error: site X: ...`` line
    and does not stop the others -- ``--site all`` with one database down must still reach the rest, and say
    which site it could not -- and the command then exits 1. Any other error stops at once, as before."""
    failed = False
    for ctx in contexts:
        try:
            action(ctx)
        except SITE_PROBLEMS as exc:
            failed = True
            stderr(f"Error: {site_problem(ctx.name, exc)}")
    if failed:
        raise click.exceptions.Exit(1)


def echo(text: str = "") -> None:
    click.echo(redact(text))


def stderr(text: str) -> None:
    click.echo(redact(text), err=True)


def print_config_notes(sites: list[Site]) -> None:
    """Say, once per process, which Frappe keys of the sites' config files are ignored although Frappe would
    act on them (see :mod:`hookscheduler.config.frappe_keys`): an ignored key that changes behaviour is never
    silent."""
    from ..config import config_notes

    for line in dict.fromkeys(n for site in sites for n in config_notes(site)):
        stderr(f"Note: {line}")


__all__ = ["COMMANDS", "SITE_PROBLEMS", "CliState", "cli", "echo", "fail", "for_each_site", "is_driver_error",
           "pass_state", "print_config_notes", "problem_text", "run_cli", "site_problem", "stderr", "sys",
           "usage_error_line"]
