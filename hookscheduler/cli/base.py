"""The root ``click`` group, the shared state it passes down, and the one place errors become exit codes."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import click
import peewee as pw

from .. import __version__
from ..config import Site
from ..context import SiteContext, open_site, open_sites
from ..db import redact
from ..exceptions import HookSchedulerError
from ..logsafe import install_log_redaction


@dataclass
class CliState:
    """What the root options chose: the bench and the site (``None``: the env var, else all / the only one)."""

    bench: str | None = None
    site: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def one(self) -> SiteContext:
        return open_site(self.bench, self.site, self.overrides)

    def each(self) -> list[SiteContext]:
        return open_sites(self.bench, self.site, self.overrides)

    def site_config(self) -> Site:
        return self.one().site


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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
    try:
        result = cli.main(args=argv, prog_name="hookscheduler", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except HookSchedulerError as exc:
        click.echo(f"Error: {redact(str(exc))}", err=True)
        return exc.exit_code
    except pw.OperationalError as exc:
        click.echo(f"Error: database: {redact(_first_line(exc))}; check db_url and that the server is up", err=True)
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


def echo(text: str = "") -> None:
    click.echo(redact(text))


def stderr(text: str) -> None:
    click.echo(redact(text), err=True)


__all__ = ["CliState", "cli", "echo", "fail", "pass_state", "run_cli", "stderr", "sys"]
