"""The SQLite database, its ``-wal``/``-shm`` files and its folder are created owner-only (0600 / 0700) by the
real ``migrate`` whatever the umask; existing looser modes are reported by ``doctor`` (with the chmod to run),
never silently changed (decided: a group-shared setup must not break on a routine command). Writing a password
with ``set-config`` makes its config owner-only, and says so."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.integration.opcli_support import run

HOOKS = {"hourly": ["app1.tasks.ok"]}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_migrate_creates_the_database_owner_only_whatever_the_umask(bench_factory, umask):
    bench = bench_factory.make({"app1": HOOKS})
    old = os.umask(umask)
    try:
        result = run(bench, "migrate")
        tick = run(bench, "tick")
    finally:
        os.umask(old)
    assert result.code == 0 and tick.code == 0, result.err + tick.err
    folder = bench / "sites" / "default"
    db = folder / "scheduler.sqlite3"
    assert mode(folder) == 0o700
    files = [p for p in folder.iterdir() if p.name.startswith("scheduler.sqlite3")]
    assert db in files and len(files) >= 1
    for f in files:
        assert mode(f) == 0o600, (f, oct(mode(f)))


def test_a_nested_sqlite_path_gets_owner_only_folders(bench_factory, tmp_path):
    target = tmp_path / "deep" / "er" / "db.sqlite3"
    bench = bench_factory.make({"app1": HOOKS}, common={"db_url": f"sqlite:///{target}"})
    old = os.umask(0o000)
    try:
        assert run(bench, "migrate").code == 0
    finally:
        os.umask(old)
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700 and mode(target.parent.parent) == 0o700


def _doctor_permissions(bench: Path) -> dict:
    result = run(bench, "doctor", "--format", "json")
    [check] = [c for c in result.json()["checks"] if c["check"] == "permissions"]
    return check


def test_doctor_reports_loose_permissions_and_leaves_them(bench_factory):
    bench = bench_factory.make({"app1": HOOKS})
    assert run(bench, "migrate").code == 0
    assert _doctor_permissions(bench)["ok"]
    folder = bench / "sites" / "default"
    db = folder / "scheduler.sqlite3"
    os.chmod(db, 0o644)
    os.chmod(folder, 0o777)
    check = _doctor_permissions(bench)
    assert not check["ok"]
    assert f"{db} is 0644" in check["detail"] and f"{folder} is 0777" in check["detail"]
    assert "chmod 600" in check["hint"]
    assert mode(db) == 0o644 and mode(folder) == 0o777  # reported, not changed
    for argv in (["migrate"], ["jobs", "list"], ["tick"]):  # routine commands keep working, and change nothing
        assert run(bench, *argv).code == 0
    assert mode(db) == 0o644
    for f in folder.glob("scheduler.sqlite3*"):  # SQLite gives -wal/-shm the database's mode: fix them all
        os.chmod(f, 0o600)
    os.chmod(folder, 0o700)
    assert _doctor_permissions(bench)["ok"]


def test_doctor_reports_a_world_readable_config_holding_a_password(bench_factory):
    bench = bench_factory.make({"app1": HOOKS})
    assert run(bench, "migrate").code == 0
    common = bench / "sites" / "common_site_config.json"
    os.chmod(common, 0o644)
    assert _doctor_permissions(bench)["ok"]  # no secret in it: fine
    data = json.loads(common.read_text())
    common.write_text(json.dumps({**data, "rq_password": "not-for-others"}))
    check = _doctor_permissions(bench)
    assert not check["ok"] and f"{common} is 0644 and holds a password" in check["detail"]
    assert "not-for-others" not in json.dumps(check)
    os.chmod(common, 0o600)
    assert _doctor_permissions(bench)["ok"]


@pytest.mark.parametrize("secret", [
    {"db_password": "frappe-db-pass"},  # a key Frappe benches carry (accepted and ignored)
    {"encryption_key": "k3y"},
    {"db_url": "postgresql://app@127.0.0.1:1/x?password=pw-in-query"},
    {"redis_queue": "redis://:pass/with/slashes@127.0.0.1:6379/0"},
    {"db_url": "postgresql://app:with space@127.0.0.1:1/x"},
])
def test_doctor_reports_a_readable_config_holding_a_password_in_any_form(bench_factory, secret):
    bench = bench_factory.make({"app1": HOOKS})
    assert run(bench, "migrate").code == 0
    site_conf = bench / "sites" / "default" / "site_config.json"
    site_conf.write_text(json.dumps(secret))
    os.chmod(site_conf, 0o644)
    check = _doctor_permissions(bench)
    assert not check["ok"] and f"{site_conf} is 0644 and holds a password" in check["detail"], check


@pytest.mark.parametrize(("argv", "written"), [
    (["set-config", "rq_password", "S3cret-pw"], "rq_password"),
    (["set-config", "db_url", "postgresql://app:pgpass123@127.0.0.1:1/x"], "db_url"),
    (["set-config", "-g", "rq_password", "S3cret-pw"], "rq_password"),
])
def test_set_config_of_a_secret_makes_a_readable_config_owner_only_and_says_so(bench_factory, argv, written):
    """The README's ``touch`` under a umask of 022 leaves a config 0644: writing a password into it must not
    leave the password readable by every user (doctor would report it only later, if run)."""
    bench = bench_factory.make({"app1": HOOKS})
    conf = bench / "sites" / ("common_site_config.json" if "-g" in argv else "default/site_config.json")
    conf.parent.mkdir(exist_ok=True)
    conf.touch()
    os.chmod(conf, 0o644)
    result = run(bench, *argv)
    assert result.code == 0, result.err
    assert mode(conf) == 0o600 and written in json.loads(conf.read_text())
    lines = result.out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{conf} was 0644, open to other users, and now holds a password: "
                                                   "made it 0600 (owner only)"), result.out
    assert "S3cret-pw" not in result.out + result.err and "pgpass123" not in result.out + result.err


def test_set_config_keeps_the_mode_when_it_writes_no_secret(bench_factory):
    """Only a password moves the mode: a group-shared config stays shared for every other key, and removing a
    password (null) is not writing one."""
    bench = bench_factory.make({"app1": HOOKS})
    conf = bench / "sites" / "default" / "site_config.json"
    conf.parent.mkdir()
    conf.write_text(json.dumps({"rq_password": "old-secret"}))
    os.chmod(conf, 0o640)
    for argv in (["set-config", "log_retention_days", "9"], ["set-config", "rq_password", "null"],
                 ["set-config", "redis_queue", "redis://127.0.0.1:6379/3"]):
        result = run(bench, *argv)
        assert result.code == 0 and len(result.out.splitlines()) == 1, (argv, result.out, result.err)
        assert mode(conf) == 0o640, argv
    os.chmod(conf, 0o600)
    assert run(bench, "set-config", "rq_password", "new-secret").out.count("\n") == 1  # already owner-only: silent
    assert mode(conf) == 0o600
