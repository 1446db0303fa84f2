"""A bench moved over from Frappe works as it is: the config ``bench init`` writes, Frappe's app layout
(``apps/<app>/<app>/hooks.py``), ``sites/currentsite.txt``, ``default_site``, ``--site all`` and per-site
``apps.txt``; and what is not a bench is refused before anything is written.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import redis

from hookscheduler.cli import run_cli
from hookscheduler.context import open_site
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain

#: ``sites/common_site_config.json`` exactly as ``bench init`` writes it (bench/config/common_site_config.py:
#: default_config, the gunicorn worker count and the allocated ports).
BENCH_INIT_CONFIG = {
    "background_workers": 1,
    "file_watcher_port": 6787,
    "frappe_user": "frappe",
    "gunicorn_workers": 5,
    "live_reload": True,
    "rebase_on_pull": False,
    "redis_cache": "redis://127.0.0.1:13000",
    "redis_queue": "redis://127.0.0.1:11000",
    "redis_socketio": "redis://127.0.0.1:13000",
    "restart_supervisor_on_update": False,
    "restart_systemd_on_update": False,
    "serve_default_site": True,
    "shallow_clone": True,
    "socketio_port": 9000,
    "use_redis_auth": False,
    "webserver_port": 8000,
}

#: what ``bench new-site`` writes into a site's ``site_config.json``
NEW_SITE_CONFIG = {"db_name": "_1a2b3c", "db_password": "pw", "db_type": "mariadb", "db_host": "127.0.0.1",
                   "db_port": 3306, "encryption_key": "k" * 44, "developer_mode": 1}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def frappe_app(bench: Path, app: str, events: dict[str, object] | None) -> None:
    """An app in Frappe's layout: ``apps/<app>/`` is the repository, ``apps/<app>/<app>/`` the package."""
    pkg = bench / "apps" / app / app
    pkg.mkdir(parents=True)
    (bench / "apps" / app / "pyproject.toml").write_text(f'[project]\nname = "{app}"\n')
    (pkg / "__init__.py").write_text('__version__ = "0.0.1"\n')
    (pkg / "tasks.py").write_text("def tick():\n    pass\n\ndef nightly():\n    pass\n")
    if events is not None:
        (pkg / "hooks.py").write_text(f'app_name = "{app}"\nscheduler_events = {json.dumps(events)}\n')


def names(bench: Path, site: str | None = None) -> set[str]:
    ctx = open_site(str(bench), site)
    ctx.database()
    try:
        return {r.name for r in ScheduledJobType.select() if r.app != "hookscheduler" and not r.removed}
    finally:
        ctx.close()


# --- the config bench init writes -----------------------------------------------------------------------------------

def test_bench_init_config_is_accepted(bench_factory, capsys, db_kind):
    """The whole file ``bench init`` writes, plus ``bench new-site``'s site config: migrate runs, nothing noted."""
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind,
                               sites={"site1.local": dict(NEW_SITE_CONFIG)})
    common = json.loads((bench / "sites" / "common_site_config.json").read_text())
    conf = {**BENCH_INIT_CONFIG, **{k: common[k] for k in ("redis_queue", "bench_id", "time_zone")}}
    (bench / "sites" / "common_site_config.json").write_text(json.dumps(conf, indent=1, sort_keys=True))
    code, out, err = run(capsys, "migrate")
    assert code == 0, err
    assert "2 added" in out and err == ""  # the app's job and the built-in log pruning
    assert names(bench) == {"app1.tasks.ok"}


def test_every_misspelt_key_is_reported_at_once_and_an_apps_own_key_is_not(bench_factory, capsys):
    bench = bench_factory.make({})
    conf = {**BENCH_INIT_CONFIG, "pause_schedular": 1, "backgroud_workers": 2, "zzz_custom": True}
    path = bench / "sites" / "common_site_config.json"
    path.write_text(json.dumps(conf))
    code, _, err = run(capsys, "migrate")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and line.startswith(f"Error: {path}: 2 unknown keys: ")
    assert "'pause_schedular' (did you mean 'pause_scheduler'?)" in line
    assert "'backgroud_workers' (did you mean 'background_workers'?)" in line
    assert "zzz_custom" not in line  # an app's own key: accepted
    assert not (bench / "sites" / "default").exists()  # nothing written


def test_a_site_config_with_frappe_and_app_keys_runs_every_command_and_doctor_lists_the_app_keys(
        bench_factory, capsys):
    """Stock Frappe keys (``frappe.conf.rate_limit``, replicas, sessions, ...) and an app's own are accepted."""
    site = {**NEW_SITE_CONFIG, "rate_limit": {"limit": 600, "window": 3600}, "deny_multiple_sessions": 1,
            "read_from_replica": 1, "replica_host": "10.0.0.2", "allow_reads_during_maintenance": 1,
            "http_port": 8000, "dropbox_access_key": "k", "disable_session_cache": 1,
            "sentry_dsn": "https://k@sentry.example/1", "myapp_api_token": "t"}
    bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, sites={"s1": site})
    code, out, err = run(capsys, "--site", "s1", "migrate", "--dry-run")
    assert code == 0 and err == "", err
    assert run(capsys, "--site", "s1", "migrate")[0] == 0
    code, out, _ = run(capsys, "--site", "s1", "doctor")
    [note] = [ln for ln in out.splitlines() if "other keys" in ln]
    assert "'myapp_api_token'" in note and "rate_limit" not in note


def test_ignored_keys_that_change_behaviour_are_noted(bench_factory, capsys):
    bench_factory.make({}, common={"background_process_niceness": 10, "use_rq_auth": False})
    code, _, err = run(capsys, "migrate")
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("Note: ")]
    assert len(notes) == 1  # use_rq_auth false changes nothing: not noted
    assert "'background_process_niceness' is ignored: Frappe renices its workers" in notes[0]
    assert "common_site_config.json" in notes[0]
    code, _, err = run(capsys, "tick")  # the commands that run jobs say it too
    assert code == 0 and "Note: " in err and "background_process_niceness" in err
    _, out, _ = run(capsys, "doctor", "--format", "json")
    check = next(c for c in json.loads(out)["checks"] if c["check"] == "frappe keys")
    assert check["ok"] is True and "background_process_niceness" in check["detail"]


# --- scheduler_interval -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "ok"), [(240, True), (60, True), (3600, True), (90, False), (0, False),
                                           (7200, False), ("240", False), (True, False)])
def test_scheduler_interval_values(bench_factory, capsys, value, ok):
    bench_factory.make({}, common={"scheduler_interval": value})
    code, _, err = run(capsys, "migrate", "--dry-run")
    if ok:
        assert code == 0, err
    else:
        assert code == 2 and "'scheduler_interval' must be a whole number of minutes in seconds" in err


# --- Frappe's app layout ----------------------------------------------------------------------------------------------

def test_frappe_app_layout_is_migrated_and_runs(bench_factory, capsys, db_kind):
    bench = bench_factory.make({}, db=db_kind)
    frappe_app(bench, "shop", {"all": ["shop.tasks.tick"], "daily_long": ["shop.tasks.nightly"]})
    code, out, err = run(capsys, "migrate")
    assert code == 0, err
    assert "3 added" in out and "shop.tasks.tick" in out and "Warning" not in err
    assert names(bench) == {"shop.tasks.tick", "shop.tasks.nightly"}
    code, _, err = run(capsys, "jobs", "run", "shop.tasks.tick")  # and its tasks import in the worker
    assert code == 0, err
    drain(bench_factory.bench_ids[-1], redis.Redis.from_url(bench_factory.redis_url))
    ctx = open_site(str(bench))
    ctx.database()
    try:
        assert [r.status for r in ScheduledJobLog.select().where(ScheduledJobLog.job_name == "shop.tasks.tick")] == [
            "complete"]
    finally:
        ctx.close()


def test_a_broken_hooks_file_in_frappe_layout_is_named_where_it_is(bench_factory, capsys):
    bench = bench_factory.make({})
    frappe_app(bench, "shop", {"daily": ["shop.tasks.nightly"]})
    hooks = bench / "apps" / "shop" / "shop" / "hooks.py"
    hooks.write_text("raise RuntimeError('half-edited')\n")
    code, _, err = run(capsys, "migrate")
    assert code == 2 and f"shop: {hooks}: hooks.py raised RuntimeError: half-edited" in err, err


def test_installed_app_without_hooks_is_warned_about(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, apps_txt=["app1", "nohooks"])
    frappe_app(bench, "nohooks", None)
    code, out, err = run(capsys, "migrate")
    assert code == 0 and "2 added" in out
    warnings = [line for line in err.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "nohooks: installed but has no hooks.py" in warnings[0]
    assert str(bench / "apps" / "nohooks" / "nohooks" / "hooks.py") in warnings[0]


def test_migrate_outside_a_bench_refuses_and_writes_nothing(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "not-a-bench"
    folder.mkdir()
    monkeypatch.delenv("HOOKSCHEDULER_BENCH", raising=False)
    monkeypatch.delenv("HOOKSCHEDULER_SITE", raising=False)
    monkeypatch.chdir(folder)
    code, out, err = run(capsys, "migrate")
    assert code == 2 and out == ""
    assert "is not a bench (it has no apps/ folder)" in err and "--bench PATH" in err
    assert list(folder.iterdir()) == []


def test_reading_outside_a_bench_says_so_instead_of_sending_to_migrate(tmp_path, monkeypatch, capsys):
    """A command that reads the database in a folder without apps/ is refused as migrate refuses it: "run
    migrate" there would be refused too."""
    folder = tmp_path / "not-a-bench"
    folder.mkdir()
    monkeypatch.delenv("HOOKSCHEDULER_SITE", raising=False)
    monkeypatch.delenv("HOOKSCHEDULER_DB_URL", raising=False)
    for command in (["jobs", "list"], ["jobs", "history"], ["scheduler", "status"]):
        code, out, err = run(capsys, "--bench", str(folder), *command)
        assert code == 2 and out == "", command
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"{folder} is not a bench (it has no apps/ folder)" in lines[0], command
        assert "migrate" not in lines[0] and "--bench PATH" in lines[0]
    assert list(folder.iterdir()) == []


# --- which site: currentsite.txt, default_site, --site all, per-site apps.txt  ----------------------------------------

def _site_jobs(capsys: pytest.CaptureFixture[str], *root: str) -> set[str]:
    code, out, err = run(capsys, *root, "jobs", "list", "--format", "json")
    assert code == 0, err
    return {r["name"] for r in json.loads(out) if r["app"] != "hookscheduler"}


def test_currentsite_txt_and_default_site_choose_the_site(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}, "app2": {"daily": ["app2.tasks.ok"]}},
                               sites={"a.local": {}, "b.local": {}})
    (bench / "sites" / "a.local" / "apps.txt").write_text("app1\n")
    (bench / "sites" / "b.local" / "apps.txt").write_text("app2\n")
    assert run(capsys, "migrate")[0] == 0
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2 and "several sites" in err and "currentsite.txt" in err
    (bench / "sites" / "currentsite.txt").write_text("b.local\n")
    assert _site_jobs(capsys) == {"app2.tasks.ok"}
    (bench / "sites" / "currentsite.txt").write_text("gone.local\n")
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2 and "currentsite.txt names site 'gone.local'" in err
    (bench / "sites" / "currentsite.txt").unlink()
    conf = json.loads((bench / "sites" / "common_site_config.json").read_text())
    (bench / "sites" / "common_site_config.json").write_text(json.dumps({**conf, "default_site": "a.local"}))
    assert _site_jobs(capsys) == {"app1.tasks.ok"}
    assert _site_jobs(capsys, "--site", "b.local") == {"app2.tasks.ok"}  # --site beats both


def test_site_all(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, sites={"a.local": {}, "b.local": {}})
    (bench / "sites" / "currentsite.txt").write_text("a.local\n")
    code, out, err = run(capsys, "--site", "all", "migrate")
    assert code == 0, err
    assert "site a.local: 2 added" in out and "site b.local: 2 added" in out
    code, out, _ = run(capsys, "--site", "all", "scheduler", "status", "--format", "json")
    assert sorted(s["site"] for s in json.loads(out)) == ["a.local", "b.local"]
    code, _, err = run(capsys, "--site", "all", "jobs", "list")
    assert code == 2 and "--site all is not supported by this command" in err
    code, out, err = run(capsys, "--site", "all", "scheduler", "pause")
    assert code == 0, err
    assert out.splitlines() == ["Scheduler is paused for site a.local", "Scheduler is paused for site b.local"]
    code, out, _ = run(capsys, "--site", "all", "scheduler", "status", "--format", "json")
    assert [s["status"] for s in json.loads(out)] == ["paused", "paused"]
    code, out, err = run(capsys, "--site", "all", "scheduler", "resume")
    assert code == 0 and out.count("Scheduler is resumed") == 2, err
    code, out, err = run(capsys, "--site", "all", "set-config", "log_retention_days", "7")
    assert code == 0, err
    for name in ("a.local", "b.local"):
        assert json.loads((bench / "sites" / name / "site_config.json").read_text())["log_retention_days"] == 7
    code, _, err = run(capsys, "--site", "all", "set-config", "-g", "scheduler_interval", "240")
    assert code == 0, err
    assert json.loads((bench / "sites" / "common_site_config.json").read_text())["scheduler_interval"] == 240
    code, out, err = run(capsys, "--site", "all", "disable-scheduler", "--note", "deploy")
    assert code == 0 and out.splitlines() == ["Disabled for a.local", "Disabled for b.local"], err


def test_site_apps_txt_overrides_the_bench_list(bench_factory, capsys, db_kind):
    hooks = {"app1": {"daily": ["app1.tasks.ok"]}, "app2": {"hourly": ["app2.tasks.ok"]}}
    bench = bench_factory.make(hooks, db=db_kind, sites={"a.local": {}, "b.local": {}},
                               apps_txt=["app1", "app2"])
    (bench / "sites" / "b.local" / "apps.txt").write_text(textwrap.dedent("""\
        # only app2 is installed on b.local
        app2
    """))
    code, _, err = run(capsys, "migrate")
    assert code == 0, err
    assert names(bench, "a.local") == {"app1.tasks.ok", "app2.tasks.ok"}
    assert names(bench, "b.local") == {"app2.tasks.ok"}
    (bench / "sites" / "b.local" / "apps.txt").write_text("bad name\n")
    code, _, err = run(capsys, "migrate")
    assert code == 2 and "b.local/apps.txt:1: 'bad name' is not a valid app" in err
