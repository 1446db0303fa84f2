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


# --- psycopg2 only for PostgreSQL (hookscheduler._peewee) -----------------------------------------------------------

def test_a_sqlite_migrate_never_imports_psycopg2_or_ssl(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    for args in (["--help"], ["migrate"], ["migrate", "--format", "json"]):
        _, modules = run_and_report(*args, env=env_for(bench))
        assert "peewee" in modules or args == ["--help"], args
        assert not top_level(modules) & {"psycopg2", "ssl"}, args


@pytest.mark.postgres
def test_a_postgresql_migrate_in_the_same_kind_of_process_gets_the_driver(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres")
    env = env_for(bench)
    out, modules = run_and_report("migrate", "--format", "json", env=env)
    assert "psycopg2" in modules
    assert json.loads(out)[0]["added"] == ["app1.tasks.ok", "hookscheduler.retention.prune_logs"]
    out, _ = run_and_report("migrate", env=env)  # and reads back what it wrote
    assert ": 0 added, 0 updated, 0 removed, 0 pruned, 2 unchanged" in out


#: In a process whose peewee the command line imported, any PostgreSQL database object (here peewee's own
#: class, as an app's job would make it) gets peewee exactly as its own import would have left it.
DEFERRED_THEN_USED = """
import sys
import hookscheduler.cli
import peewee
assert "psycopg2" not in sys.modules and peewee.psycopg2 is None
original = peewee.PostgresqlDatabase.__dict__["init"].__wrapped__
db = peewee.PostgresqlDatabase(sys.argv[1])
assert peewee.PostgresqlDatabase.__dict__["init"] is original  # nothing of hookscheduler's left in the way
assert db.execute_sql("SELECT 41 + 1").fetchone() == (42,)
with db.atomic():
    db.execute_sql("SELECT 1")
db.close()
import psycopg2, psycopg2.extensions as ext, psycopg2.extras as extras
a = peewee.Psycopg2Adapter
print(peewee.psycopg2 is psycopg2, peewee.pg_extensions is ext, peewee.Json_pg2 is extras.Json,
      peewee.pg_register_uuid is extras.register_uuid,
      (a.txn_idle, a.txn_inerror, a.txn_unknown) == (ext.TRANSACTION_STATUS_IDLE, ext.TRANSACTION_STATUS_INERROR,
                                                      ext.TRANSACTION_STATUS_UNKNOWN),
      type(db._adapter).__name__)
"""


@pytest.mark.postgres
def test_any_postgresql_database_made_after_the_deferred_import_gets_the_driver(bench_factory):
    url = bench_factory.pg_url()
    proc = python("-c", DEFERRED_THEN_USED, url)
    assert proc.stdout.split() == ["True"] * 5 + ["Psycopg2Adapter"]


def test_peewee_imported_first_elsewhere_is_left_alone():
    code = ("import sys, peewee, hookscheduler.cli, hookscheduler._peewee as d; "
            "print('psycopg2' in sys.modules, peewee.psycopg2 is not None, "
            "getattr(peewee, '_hs_deferred_psycopg2', None), d.provide_psycopg2())")
    assert python("-c", code).stdout.split() == ["True", "True", "None", "True"]


#: A peewee that keeps its driver in some other way than the release this package hands it to (no
#: ``Psycopg2Adapter``): the deferred import must not leave it without psycopg2.
OLD_PEEWEE = """
try:
    import psycopg2
except ImportError:
    psycopg2 = None
"""


def test_a_peewee_without_the_known_adapter_is_imported_normally(tmp_path):
    (tmp_path / "peewee.py").write_text(OLD_PEEWEE)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hookscheduler._peewee as d; "
            "p = d.import_deferred(); print(p.__file__ == sys.argv[1] + '/peewee.py', p.psycopg2 is not None, "
            "'psycopg2' in sys.modules, sys.modules['peewee'] is p)")
    assert python("-c", code, str(tmp_path)).stdout.split() == ["True"] * 4


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
