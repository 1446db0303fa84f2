"""Lazy imports: a command imports only its own modules (``migrate`` neither RQ nor redis-py), the root
``--help`` lists every command exactly as when all were imported, and ``hookscheduler``'s public API still
imports as before. The table of commands (``cli.base.COMMANDS``) is checked against the commands themselves.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from hookscheduler.cli import cli
from hookscheduler.cli.base import COMMANDS
from tests.helpers import env_for

ROOT = Path(__file__).resolve().parent.parent.parent
HEAVY = ("rq", "redis")


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


#: ``python -m hookscheduler ARGS`` that reports, on stderr at exit, every module it imported. (``-X importtime``
#: does not list the command modules: ``importlib.import_module`` bypasses the import statement it times.)
RUN_AND_REPORT = ("import atexit, json, runpy, sys; "
                  "atexit.register(lambda: print('MODULES', json.dumps(sorted(sys.modules)), file=sys.stderr)); "
                  "sys.argv[0] = 'hookscheduler'; "
                  "runpy.run_module('hookscheduler', run_name='__main__', alter_sys=True)")


def run_and_report(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """(stdout, the modules imported) of ``python -m hookscheduler ARGS``."""
    proc = python("-c", RUN_AND_REPORT, *args, env=env)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return proc.stdout, set(json.loads(line.removeprefix("MODULES ")))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".", 1)[0] for m in modules}


def walk(cmd: click.Command) -> list[click.Command]:
    subs = list(cmd.commands.values()) if isinstance(cmd, click.Group) else []
    return [cmd] + [c for sub in subs for c in walk(sub)]


# --- the table -----------------------------------------------------------------------------------------------------

def test_the_table_names_every_command_its_modules_and_its_help():
    cli.load(cli.all_modules())
    assert set(cli.commands) == set(COMMANDS)
    for name, spec in COMMANDS.items():
        cmd = cli.commands[name]
        assert not cmd.hidden and not cmd.deprecated and cmd.short_help is None, name
        assert cmd.help is not None
        assert " ".join(inspect.cleandoc(cmd.help).split("\n\n")[0].split()) == spec.help, name
        stand_in = click.Command(name, help=spec.help)
        for limit in range(20, 200, 7):
            assert stand_in.get_short_help_str(limit) == cmd.get_short_help_str(limit), (name, limit)
        # a group's subcommands too: importing the listed modules gives the whole command
        for part in walk(cmd):
            assert part.callback is not None
            assert part.callback.__module__ in {f"hookscheduler.cli.{m}" for m in spec.modules}, (name, part.name)


@pytest.mark.parametrize("columns", ["80", "150"])
def test_root_help_is_the_same_lazy_and_with_every_command_imported(columns):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS=columns)
    lazy, modules = run_and_report("--help", env=env)
    loaded = python("-c", "from hookscheduler.cli import cli, main; cli.load(cli.all_modules()); main(['--help'])",
                    env=env)
    assert lazy == loaded.stdout
    for name in COMMANDS:
        assert f"\n  {name} " in lazy
    assert not top_level(modules) & set(HEAVY)
    assert not {m for m in modules if m.startswith("hookscheduler.cli.")} - {"hookscheduler.cli.base",
                                                                             "hookscheduler.cli.lazy"}


def test_an_unknown_command_still_suggests_every_command(bench_factory):
    bench = bench_factory.make({})
    proc = subprocess.run([sys.executable, "-m", "hookscheduler", "job"], env=env_for(bench), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "No such command 'job'. (Did you mean one of: 'jobs', 'rq-jobs'?)" in proc.stderr


# --- what a command imports ----------------------------------------------------------------------------------------

def test_migrate_imports_neither_rq_nor_redis(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    env = env_for(bench)
    for args in (["migrate", "--help"], ["migrate"], ["migrate", "--dry-run", "--format", "json"]):
        _, modules = run_and_report(*args, env=env)
        assert "hookscheduler.cli.migrate_cmd" in modules, args
        assert not top_level(modules) & set(HEAVY), (args, sorted(m for m in modules if m.startswith(HEAVY)))
    out = python("-m", "hookscheduler", "migrate", env=env).stdout
    assert ": 0 added, 0 updated, 0 removed, 0 pruned, 2 unchanged" in out


def test_the_public_api_imports_on_first_use():
    code = """
import sys
import hookscheduler
assert not {"rq", "redis", "hookscheduler.background.api", "hookscheduler.worker.runner"} & set(sys.modules), \
    sorted(sys.modules)
assert set(hookscheduler.__all__) <= set(dir(hookscheduler))
import hookscheduler.cli.worker_cmd  # imports hookscheduler.background.api before the function is used
from hookscheduler import JobContext, QueueNotFound, enqueue, enqueue_batches, job_context
from hookscheduler.background.api import enqueue as defined
from hookscheduler.exceptions import QueueNotFound as qnf
from hookscheduler.worker.runner import JobContext as jc
assert enqueue is defined and hookscheduler.enqueue is defined, (enqueue, hookscheduler.enqueue)
assert (QueueNotFound, JobContext, callable(enqueue_batches), callable(job_context)) == (qnf, jc, True, True)
from hookscheduler import *
try:
    hookscheduler.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("no AttributeError")
print("ok")
"""
    assert python("-c", code).stdout == "ok\n"
