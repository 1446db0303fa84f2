"""The foundation's CLI: ``--version``, ``migrate``, ``jobs list/enable/disable``, exit codes, one-line errors, and
no secret in any output. In process through ``run_cli`` (the same error handling as the console script) and, where
the process boundary matters, as a real ``python -m hookscheduler`` subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hookscheduler import __version__
from hookscheduler.cli import cli, run_cli
from hookscheduler.context import open_site
from hookscheduler.ops.jobs import actor
from hookscheduler.security.redact import redact
from hookscheduler.store.database import SCHEMA_VERSION
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.helpers import env_for

#: the built-in maintenance job (hookscheduler.declare.builtin) that every migrate syncs besides the apps' jobs
BUILTIN = "hookscheduler.retention.prune_logs"
SCHEMA = SCHEMA_VERSION  # a new database: "schema created (version N)"
BUILTIN_ADDED = f"  + {BUILTIN}  [Daily Maintenance, queue long]"
DOCUMENTED_COLUMNS = {"name", "app", "method", "frequency", "cron_format", "queue", "timeout", "stopped",
                  "last_execution", "next_execution", "created_at", "modified_at"}
SECRET = "s3cretPW"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def sub(bench: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookscheduler", *args], env=env_for(bench, **env),
                          capture_output=True, text=True, timeout=60)


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def table_dump(bench: Path, site: str | None = None) -> Any:
    ctx = open_site(str(bench), site)
    db = ctx.database()
    try:
        return {t: db.execute_sql(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("scheduled_job_type", "scheduled_job_log", "scheduler_state")}
    finally:
        ctx.close()


# --- version, help --------------------------------------------------------------------------------------------------

def test_version_in_process_and_as_a_subprocess(bench_factory):
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.output) == (0, f"hookscheduler, version {__version__}\n")
    bench = bench_factory.make({})
    proc = sub(bench, "--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"hookscheduler, version {__version__}\n", "")


def test_usage_errors_exit_2(bench_factory, capsys):
    bench_factory.make({})
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and one_line_error(err) == "Error: No such command 'no-such-command' (see 'hookscheduler --help')"
    code, _, err = run(capsys, "migrate", "--format", "xml")
    assert code == 2 and "Invalid value for '-f' / '--format'" in one_line_error(err)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["jobs", "backfill", "X", "--from", "1d", "--to", "1h", "--policy", "bogus"],
         "Error: Invalid value for '--policy': 'bogus' is not one of 'once', 'all' "
         "(see 'hookscheduler jobs backfill --help')"),
        (["worker", "--strategy", "bogus"],
         "Error: Invalid value for '--strategy': 'bogus' is not one of 'default', 'round_robin', 'random' "
         "(see 'hookscheduler worker --help')"),
        (["jobs", "backfill"], "Error: Missing argument 'NAME' (see 'hookscheduler jobs backfill --help')"),
        (["--nope"], "Error: No such option '--nope' (see 'hookscheduler --help')"),
        (["jobs", "list", "--site", "default"],  # the root's own option after a subcommand: where it goes
         "Error: --site is an option of hookscheduler itself and goes before the command: "
         "'hookscheduler --site NAME jobs list ...' (see 'hookscheduler --help')"),
        (["migrate", "--bench=/somewhere"],
         "Error: --bench is an option of hookscheduler itself and goes before the command: "
         "'hookscheduler --bench PATH migrate ...' (see 'hookscheduler --help')"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_help_to_read(bench_factory, capsys, args, expected):
    bench_factory.make({})
    code, out, err = run(capsys, *args)
    assert (code, out, one_line_error(err)) == (2, "", expected)


def test_a_quoted_argument_in_a_usage_error_is_escaped_and_shortened(bench_factory, capsys):
    bench_factory.make({})
    code, _, err = run(capsys, "jobs", "backfill", "X", "--policy", "a\nb" + "x" * 5000)
    line = one_line_error(err)
    assert code == 2 and "'a\\nb" in line and len(line) < 400
    assert line.endswith("... (see 'hookscheduler jobs backfill --help')")


def test_help_and_a_bare_group_still_show_the_usage(bench_factory, capsys):
    bench_factory.make({})
    code, out, _ = run(capsys, "jobs", "backfill", "--help")
    assert code == 0 and out.startswith("Usage: hookscheduler jobs backfill [OPTIONS] NAME\n\n  Run NAME")
    code, _, err = run(capsys, "jobs")  # a group without its command: its help, on stderr, exit 2 (click's rule)
    assert code == 2 and err.startswith("Usage: hookscheduler jobs [OPTIONS] COMMAND") and "backfill" in err


def test_help_names_every_case_force_overrides_and_check_counts_tick_driven_passes(bench_factory, capsys):
    bench_factory.make({})
    for command in (("jobs", "run"), ("trigger-scheduler-event",)):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0 and "maintenance mode" in " ".join(out.split()), out
    code, out, _ = run(capsys, "scheduler", "status", "--help")
    assert code == 0 and "last pass is recent and was made by `tick`" in " ".join(out.split()), out


# --- migrate --------------------------------------------------------------------------------------------------------

def test_migrate_text_then_unchanged_then_changes(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"], "cron": {"0 3 * * *": ["app1.tasks.other"]}}},
                               db=db_kind)
    code, out, err = run(capsys, "migrate")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"site default: 3 added, 0 updated, 0 removed, 0 pruned, 0 unchanged, schema created (version {SCHEMA})",
        "  + app1.tasks.ok  [Hourly, queue default]",
        "  + app1.tasks.other  [Cron 0 3 * * *, queue default]",
        BUILTIN_ADDED,
    ]
    code, out, _ = run(capsys, "migrate")
    assert out.splitlines() == ["site default: 0 added, 0 updated, 0 removed, 0 pruned, 3 unchanged"]
    (bench / "apps" / "app1" / "hooks.py").write_text('scheduler_events = {"hourly_long": ["app1.tasks.ok"]}\n')
    code, out, _ = run(capsys, "migrate", "--dry-run")
    assert out.splitlines() == [
        "site default: 0 would be added, 1 would be updated, 1 would be removed, 0 would be pruned, 1 unchanged"
        " (dry run: nothing written)",
        "  ~ app1.tasks.ok  (frequency: 'Hourly' -> 'Hourly Long', queue: 'default' -> 'long', timeout: 300 -> 1500)",
        "  - app1.tasks.other  (removed from hooks: stops firing, history kept; --prune deletes it)",
    ]
    code, out, _ = run(capsys, "migrate", "--prune")
    assert out.splitlines()[0] == "site default: 0 added, 1 updated, 0 removed, 1 pruned, 1 unchanged"
    assert out.splitlines()[-1] == "  x app1.tasks.other  (deleted with its history)"


def test_migrate_json(bench_factory, db_kind, capsys):
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    code, out, _ = run(capsys, "migrate", "--format", "json")
    assert code == 0
    assert json.loads(out) == [{"site": "default", "added": ["app1.tasks.ok", BUILTIN], "updated": [],
                                "removed": [], "pruned": [], "unchanged": 0, "dry_run": False,
                                "reanchored": None, "schema": {"from": 0, "to": SCHEMA}}]
    code, out, _ = run(capsys, "migrate", "--format", "json", "--dry-run")
    assert json.loads(out)[0]["unchanged"] == 2 and json.loads(out)[0]["dry_run"] is True
    assert json.loads(out)[0]["schema"] is None  # already current


def test_prints_in_app_modules_do_not_corrupt_json_output(bench_factory, capsys):
    hooks = 'print("hello from hooks")\nscheduler_events = {"hourly": ["app1.tasks.ok"]}\n'
    bench = bench_factory.make({"app1": hooks}, tasks='print("loading tasks")\ndef ok():\n    pass\n')
    proc = sub(bench, "migrate", "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["added"] == ["app1.tasks.ok", BUILTIN]
    assert "hello from hooks" in proc.stderr and "loading tasks" in proc.stderr


def test_dry_run_on_a_fresh_site_creates_no_sqlite_file(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    code, out, _ = run(capsys, "migrate", "--dry-run")
    assert code == 0 and "2 would be added" in out
    assert not (bench / "sites" / "default").exists()
    proc = sub(bench, "migrate", "--dry-run")
    assert proc.returncode == 0 and not (bench / "sites" / "default").exists()


def test_migrate_several_sites(bench_factory, db_kind, capsys):
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind, sites={"a.site": {}, "b.site": {}})
    code, out, _ = run(capsys, "migrate")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("site")] == [
        f"site a.site: 2 added, 0 updated, 0 removed, 0 pruned, 0 unchanged, schema created (version {SCHEMA})",
        f"site b.site: 2 added, 0 updated, 0 removed, 0 pruned, 0 unchanged, schema created (version {SCHEMA})",
    ]
    code, out, _ = run(capsys, "--site", "b.site", "migrate")
    assert out.splitlines() == ["site b.site: 0 added, 0 updated, 0 removed, 0 pruned, 2 unchanged"]


@pytest.mark.postgres
def test_one_postgresql_site_is_connected_once_several_are_released_between_phases(bench_factory, capsys,
                                                                                 monkeypatch):
    from hookscheduler.store import database as dbmod

    connects: list[str] = []
    real = dbmod.connect

    def counting(url: str, *args: Any, **kwargs: Any) -> Any:
        connects.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(dbmod, "connect", counting)
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres")
    assert run(capsys, "migrate")[0] == 0
    assert len(connects) == 1
    connects.clear()
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres", sites={"a.site": {}, "b.site": {}})
    assert run(capsys, "migrate")[0] == 0
    assert len(connects) == 4  # each site reached, released, then opened again to write


def test_refused_migrate_exits_2_and_leaves_every_table_as_it_was(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    assert run(capsys, "migrate")[0] == 0
    assert run(capsys, "jobs", "disable", "app1.tasks.ok", "--note", "x")[0] == 0
    before = table_dump(bench)
    sqlite_files = {p: p.read_bytes() for p in (bench / "sites" / "default").glob("*")} if db_kind == "sqlite" else {}
    (bench / "apps" / "app1" / "hooks.py").write_text(
        'scheduler_events = {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"], "dayly": ["x.y"],'
        ' "cron": {"* * *": ["app1.tasks.ok"]}}\n')
    proc = sub(bench, "migrate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3
    assert lines[0] == "Error: 2 problem(s) in scheduler_events; nothing was written:"
    hooks = bench / "apps" / "app1" / "hooks.py"
    assert lines[1] == (f"  - app1: {hooks}: scheduler_events['dayly']: unknown section; did you mean 'daily'?")
    assert lines[2].startswith(f"  - app1: {hooks}: scheduler_events['cron']['* * *']: cron '* * *' has 3 field(s)")
    if sqlite_files:
        assert {p: p.read_bytes() for p in (bench / "sites" / "default").glob("*")} == sqlite_files
    assert table_dump(bench) == before


def test_refused_migrate_across_several_sites_writes_to_none(bench_factory, db_kind, capsys):
    """The hooks are valid for a.site (it has the custom queue) and not for b.site: neither is written."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind,
                               sites={"a.site": {"workers": {"reports": {"timeout": 900}}}, "b.site": {}})
    assert run(capsys, "migrate")[0] == 0
    before = {s: table_dump(bench, s) for s in ("a.site", "b.site")}
    (bench / "apps" / "app1" / "hooks.py").write_text(
        'scheduler_events = {"hourly": [{"method": "app1.tasks.ok", "queue": "reports"}],'
        ' "daily": ["app1.tasks.other"]}\n')
    code, out, err = run(capsys, "migrate")
    assert code == 2 and out == ""
    assert "unknown queue 'reports'" in err and "Traceback" not in err
    assert {s: table_dump(bench, s) for s in ("a.site", "b.site")} == before
    # with the queue declared for the whole bench, both migrate
    common = bench / "sites" / "common_site_config.json"
    common.write_text(json.dumps({**json.loads(common.read_text()), "workers": {"reports": {"timeout": 900}}}))
    assert run(capsys, "migrate")[0] == 0


def test_unreachable_site_database_stops_migrate_before_any_site_is_written(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={
        "a.site": {}, "b.site": {"db_url": f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"}})
    code, out, err = run(capsys, "migrate")
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert "cannot connect to database postgresql://postgres:***@127.0.0.1:1/test" in line
    assert SECRET not in err
    assert not (bench / "sites" / "a.site" / "scheduler.sqlite3").exists()


def test_bad_zone_stops_migrate_before_any_site_is_written(bench_factory, capsys, monkeypatch):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"a.site": {}, "b.site": {}})
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    del conf["time_zone"]
    common.write_text(json.dumps(conf))
    (bench / "sites" / "a.site" / "site_config.json").write_text('{"time_zone": "UTC"}')
    monkeypatch.setenv("TZ", "Not/AZone")
    code, _, err = run(capsys, "migrate")
    assert code == 2 and "b.site" in one_line_error(err) and "$TZ" in err
    assert not (bench / "sites" / "a.site" / "scheduler.sqlite3").exists()


def test_concurrent_migrates_of_one_database_both_succeed(bench_factory, db_kind):
    events = {"hourly": [{"method": "app1.tasks.ok", "name": f"job{i}"} for i in range(50)]}
    bench = bench_factory.make({"app1": events}, db=db_kind)
    procs = [subprocess.Popen([sys.executable, "-m", "hookscheduler", "migrate", "--format", "json"],
                              env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    added = sorted(len(json.loads(out)[0]["added"]) for out, _ in results)
    assert added == [0, 0, 51]  # the 50 jobs and the built-in one
    ctx = open_site(str(bench))
    ctx.database()
    assert ScheduledJobType.select().count() == 51
    ctx.close()


# --- jobs list / enable / disable -----------------------------------------------------------------------------------

def test_jobs_list_text_and_json(bench_factory, db_kind, capsys):
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"], "cron_long": {"0 3 * * *": ["app1.tasks.other"]},
                                 "daily": ["app1.tasks.boom"]}}, db=db_kind)
    assert run(capsys, "migrate")[0] == 0
    assert run(capsys, "jobs", "disable", "app1.tasks.boom", "--note", "flaky upstream")[0] == 0
    code, out, err = run(capsys, "jobs", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "QUEUE", "STATE", "LAST", "RUN", "STATUS", "NEXT", "RUN"]
    assert lines[1].startswith("app1.tasks.boom") and "STOPPED: flaky upstream" in lines[1]
    assert lines[2].startswith("app1.tasks.ok") and "Hourly" in lines[2] and "active" in lines[2]
    assert lines[3].startswith("app1.tasks.other") and "Cron Long (0 3 * * *)" in lines[3] and " long " in lines[3]
    assert lines[4].startswith(BUILTIN)
    assert lines[-1] == "4 job(s), site default, times in UTC"

    code, out, _ = run(capsys, "jobs", "list", "--format", "json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["app1.tasks.boom", "app1.tasks.ok", "app1.tasks.other", BUILTIN]
    for r in rows:
        assert set(r) >= DOCUMENTED_COLUMNS
        assert r["next_execution"].endswith("Z") and r["created_at"].endswith("Z")
        assert r["last_execution"] is None
    boom, ok, other, _ = rows
    assert (boom["stopped"], boom["stopped_note"]) == (True, "flaky upstream")
    assert (ok["frequency"], ok["cron_format"], ok["queue"], ok["timeout"], ok["stopped"]) == (
        "Hourly", "", "default", 300, False)
    assert (other["frequency"], other["cron_format"], other["queue"], other["timeout"]) == (
        "Cron Long", "0 3 * * *", "long", 1500)


def test_jobs_list_all_shows_removed(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    run(capsys, "migrate")
    (bench / "apps" / "app1" / "hooks.py").write_text('scheduler_events = {"hourly": ["app1.tasks.ok"]}\n')
    run(capsys, "migrate")
    _, out, _ = run(capsys, "jobs", "list", "--format", "json")
    assert [r["name"] for r in json.loads(out)] == ["app1.tasks.ok", BUILTIN]
    _, out, _ = run(capsys, "jobs", "list", "--all", "--format", "json")
    rows = json.loads(out)
    assert [(r["name"], r["removed"], r["next_execution"]) for r in rows][1] == ("app1.tasks.other", True, None)
    _, out, _ = run(capsys, "jobs", "list", "--all")
    assert "removed" in out.splitlines()[2]


def test_jobs_list_last_status_is_the_newest_run(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    run(capsys, "migrate")
    ctx = open_site(str(bench))
    ctx.database()
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    t = datetime(2026, 1, 7, 10)
    for i, status in enumerate(("failed", "complete", "skipped")):
        ScheduledJobLog.create(job=ok, job_name=ok.name, scheduled_for=t.replace(hour=10 + i), trigger="schedule",
                               status=status, started_at=t.replace(hour=10 + i), rq_job_id=f"r{i}")
    ctx.close()
    _, out, _ = run(capsys, "jobs", "list", "--format", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert (rows["app1.tasks.ok"]["last_status"], rows["app1.tasks.ok"]["last_log_at"]) == (
        "complete", "2026-01-07T11:00:00Z")
    assert rows["app1.tasks.other"]["last_status"] is None


def _readme_json_keys(command: str, columns: set[str]) -> set[str]:
    """The keys README.md's CLI reference says ``command --format json`` gives each row: the table's ``columns``
    less those after "except", plus those after "plus" (what parentheses explain is left out)."""
    text = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    start = text.index(f"`{command}`'s")
    sentence = re.sub(r"\([^()]*\)", "", text[start:text.index(". ", text.index(" plus ", start))])
    excepted, _, added = sentence.partition(" except ")[2].partition(" plus ")
    return columns - set(re.findall(r"`(\w+)`", excepted)) | set(re.findall(r"`(\w+)`", added))


def test_the_json_of_jobs_list_and_history_holds_the_keys_the_readme_names(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    run(capsys, "migrate")
    ctx = open_site(str(bench))
    ctx.database()
    ok = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    ScheduledJobLog.create(job=ok, job_name=ok.name, scheduled_for=datetime(2026, 1, 7, 10), trigger="schedule",
                           status="failed", traceback="Traceback ...\nRuntimeError: boom\n", rq_job_id="r1")
    ctx.close()
    jobs = json.loads(run(capsys, "jobs", "list", "--all", "--format", "json")[1])
    history = json.loads(run(capsys, "jobs", "history", "--format", "json")[1])
    job_keys = _readme_json_keys("jobs list", {f.column_name for f in ScheduledJobType._meta.sorted_fields})
    log_keys = _readme_json_keys("jobs history", {f.column_name for f in ScheduledJobLog._meta.sorted_fields})
    assert [set(r) for r in jobs] == [job_keys] * 2
    assert [set(r) for r in history] == [log_keys]


def test_jobs_list_shows_times_in_the_site_zone(bench_factory, capsys):
    bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, common={"time_zone": "Asia/Kolkata"})
    run(capsys, "migrate")
    _, out, _ = run(capsys, "jobs", "list")
    assert " 00:00:00 IST" in out.splitlines()[1]
    assert out.splitlines()[-1] == "2 job(s), site default, times in Asia/Kolkata"


def test_jobs_disable_and_enable_record_who_when_and_note(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    run(capsys, "migrate")
    t0 = utcnow()
    code, out, err = run(capsys, "jobs", "disable", "app1.tasks.ok", "--note", "vendor API down")
    assert (code, err) == (0, "")
    assert out.strip() == f"disabled app1.tasks.ok (site default) by {actor()}: vendor API down"
    ctx = open_site(str(bench))
    ctx.database()
    row = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    assert (row.stopped, row.stopped_note, row.stopped_by) == (True, "vendor API down", actor())
    assert t0 <= row.stopped_at <= utcnow() and row.modified_at == row.stopped_at
    next_before = row.next_execution
    ctx.close()

    code, out, _ = run(capsys, "jobs", "enable", "app1.tasks.ok")
    assert code == 0 and out.startswith("enabled app1.tasks.ok (site default); next run ")
    ctx.database()
    row = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    assert (row.stopped, row.stopped_note, row.stopped_by) == (False, None, actor())
    assert row.next_execution == next_before  # enabling never moves the schedule (no burst)
    assert ScheduledJobLog.select().count() == 0
    ctx.close()
    # a subprocess records the same way
    proc = sub(bench, "jobs", "disable", "app1.tasks.ok")
    assert proc.returncode == 0 and proc.stdout.strip() == f"disabled app1.tasks.ok (site default) by {actor()}"


def test_unknown_job_exits_1_with_one_line(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    run(capsys, "migrate")
    for args in (("jobs", "enable", "nope"), ("jobs", "disable", "nope", "--note", "x")):
        code, out, err = run(capsys, *args)
        assert code == 1 and out == ""
        assert one_line_error(err) == "Error: job 'nope' not found; see `hookscheduler jobs list --all`"
    code, _, err = run(capsys, "jobs", "enable", "tasks.ok")
    assert code == 1 and one_line_error(err).startswith("Error: job 'tasks.ok' not found; did you mean 'app1.tasks.ok'")
    proc = sub(bench, "jobs", "enable", "nope")
    assert proc.returncode == 1 and one_line_error(proc.stderr).startswith("Error: job 'nope' not found")


def test_jobs_before_migrate_says_run_migrate(bench_factory, db_kind, capsys):
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    code, _, err = run(capsys, "jobs", "list")
    assert code == 1 and "run `hookscheduler migrate`" in one_line_error(err)


# --- bad bench, config, databases: one line, right exit status, no secret -------------------------------------------

def test_nonexistent_bench_exits_2_with_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "--bench", str(tmp_path / "nope"), "jobs", "list")
    assert code == 2 and out == ""
    assert one_line_error(err) == (f"Error: bench {tmp_path / 'nope'} does not exist; "
                                   "pass --bench PATH or set $HOOKSCHEDULER_BENCH")
    proc = subprocess.run([sys.executable, "-m", "hookscheduler", "--bench", str(tmp_path / "nope"), "migrate"],
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and one_line_error(proc.stderr).startswith("Error: bench ")


def test_unknown_or_ambiguous_site_exits_2(bench_factory, capsys, monkeypatch):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"s1": {}, "s2": {}})
    code, _, err = run(capsys, "--site", "nope", "migrate")
    assert code == 2
    assert one_line_error(err) == (f"Error: site 'nope' not found in {bench / 'sites'}; sites: s1, s2 "
                                   "(a site is a folder sites/<name>/ holding site_config.json)")
    assert run(capsys, "migrate")[0] == 0  # every site
    code, _, err = run(capsys, "jobs", "list")  # a single-site command on a bench with two sites
    assert code == 2 and "has several sites (s1, s2); choose one with --site NAME" in one_line_error(err)
    assert run(capsys, "--site", "s2", "jobs", "list")[0] == 0
    monkeypatch.setenv("HOOKSCHEDULER_SITE", "s1")
    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0 and out.splitlines()[-1] == "2 job(s), site s1, times in UTC"


@pytest.mark.parametrize(("content", "expected"), [
    ("{broken", "common_site_config.json: not valid JSON"),
    ("[]", "common_site_config.json: must hold a JSON object"),
    ('{"scheduler_tick_interval": "60"}', "'scheduler_tick_interval' must be a whole number of seconds"),
    ('{"sheduler_tick_interval": 60}', "unknown key 'sheduler_tick_interval'; did you mean"),
])
def test_bad_config_exits_2_naming_file_and_key(bench_factory, capsys, content, expected):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    (bench / "sites" / "common_site_config.json").write_text(content)
    for args in (("migrate",), ("jobs", "list"), ("jobs", "disable", "x")):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == ""
        assert expected in one_line_error(err)
        assert str(bench / "sites" / "common_site_config.json") in err
    proc = sub(bench, "migrate")
    assert proc.returncode == 2 and expected in one_line_error(proc.stderr)


def test_postgres_password_never_printed(bench_factory, capsys):
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"s": {"db_url": url}})
    for args in (("migrate",), ("migrate", "--dry-run"), ("jobs", "list"), ("jobs", "enable", "x")):
        code, out, err = run(capsys, *args)
        assert code == 1, (args, err)
        line = one_line_error(err)
        assert SECRET not in out + err
        assert "postgres:***@127.0.0.1:1/test" in line and "check db_url and that the server is up" in line
    proc = sub(bench, "migrate")
    assert proc.returncode == 1 and SECRET not in proc.stdout + proc.stderr
    assert one_line_error(proc.stderr).startswith("Error: site s: cannot connect to database postgresql://postgres:***@")
    # the same secret given through the environment, and one with an '@' inside
    tricky = "p@ss" + SECRET
    proc = sub(bench, "migrate", HOOKSCHEDULER_DB_URL=f"postgresql://postgres:{tricky}@127.0.0.1:1/test")
    assert proc.returncode == 1 and SECRET not in proc.stdout + proc.stderr
    # a URL the config refuses is redacted too
    (bench / "sites" / "s" / "site_config.json").write_text(json.dumps({"db_url": f"mysql://u:{SECRET}@h/db"}))
    code, _, err = run(capsys, "migrate")
    assert code == 2 and SECRET not in err and "mysql://u:***@h/db" in one_line_error(err)
    (bench / "sites" / "s" / "site_config.json").write_text(json.dumps({"db_url": f"postgresql://u:{SECRET}@h/"}))
    code, _, err = run(capsys, "migrate")
    assert code == 2 and SECRET not in err and "names no database" in one_line_error(err)


def test_postgres_wrong_password_is_one_line_without_the_password(bench_factory, capsys, pg_database):
    """A reachable server that refuses the login (or an unknown database): still one line, exit 1."""
    base = pg_database.rsplit("/", 1)[0].replace("postgresql://postgres@", f"postgresql://nosuchuser:{SECRET}@")
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"s": {"db_url": f"{base}/nosuchdb"}})
    code, out, err = run(capsys, "migrate")
    assert code == 1 and SECRET not in out + err
    assert one_line_error(err).startswith("Error: site s: cannot connect to database postgresql://nosuchuser:***@")


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ("redis://:pw@h:6379/0 and rediss://default:x@r.example.com", "redis://:***@h:6379/0 and rediss://default:***@r.example.com"),
    ("postgresql://u@h/db?sslmode=require&password=pw", "postgresql://u@h/db?sslmode=require&password=***"),
    ("host=h password=pw dbname=d", "host=h password=*** dbname=d"),
    ("no secret in http://example.com/a@b", "no secret in http://example.com/a@b"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_sqlite_in_an_unwritable_place_is_one_line(bench_factory, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    not_db = tmp_path / "not.db"
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, sites={"s": {"db_url": f"sqlite:///{blocker}/x.db"}})
    code, out, err = run(capsys, "migrate")
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert line.startswith(f"Error: cannot open SQLite database {blocker}/x.db: ") and "internal error" not in line
    (bench / "sites" / "s" / "site_config.json").write_text(json.dumps({"db_url": f"sqlite:///{not_db}"}))
    not_db.write_text("this is not a database " * 100)
    code, out, err = run(capsys, "migrate")
    assert code == 1 and "internal error" not in one_line_error(err) and str(not_db) in err


def test_time_is_reported_in_utc_iso(bench_factory, capsys):
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    run(capsys, "migrate")
    _, out, _ = run(capsys, "jobs", "list", "--format", "json")
    row = json.loads(out)[0]
    created = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    assert created.utcoffset() is not None and abs((created.replace(tzinfo=None) - utcnow()).total_seconds()) < 60


def test_migrate_turns_the_cyclic_collector_off_only_while_it_works(bench_factory, capsys, monkeypatch):
    import gc

    from hookscheduler.cli import migrate_cmd

    seen: list[bool] = []
    real = migrate_cmd._migrate_all

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(migrate_cmd, "_migrate_all", spy)
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    assert gc.isenabled()
    assert run(capsys, "migrate")[0] == 0
    assert seen == [False] and gc.isenabled()
    bench_factory.make({"app1": {"dayly": ["app1.tasks.ok"]}})  # a refused migrate: back on all the same
    assert run(capsys, "migrate")[0] == 2
    assert gc.isenabled()


def test_jobs_disable_again_without_until_removes_the_end_and_says_so(bench_factory, db_kind, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    run(capsys, "migrate")
    code, out, _ = run(capsys, "jobs", "disable", "app1.tasks.ok", "--until", "2h")
    assert code == 0 and " until " in out
    code, out, _ = run(capsys, "jobs", "disable", "app1.tasks.ok", "--note", "stop for good")
    assert code == 0
    first, second = out.strip().splitlines()
    assert first == f"disabled app1.tasks.ok (site default) by {actor()}: stop for good"
    assert second.startswith("its end (") and "is removed: it stays stopped until" in second
    ctx = open_site(str(bench))
    ctx.database()
    row = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    assert (row.stopped, row.stopped_until, row.stopped_note) == (True, None, "stop for good")
    ctx.close()
    code, out, _ = run(capsys, "jobs", "disable", "app1.tasks.ok")  # no end to remove: nothing more said
    assert code == 0 and len(out.strip().splitlines()) == 1
