"""Redis with an ACL user and password, and over TLS, end to end against a PRIVATE redis-server (the default user
off, one ACL user; TLS with a throwaway CA): ``tick`` enqueues, ``worker`` runs (and the job's own enqueue reaches
Redis with the same credentials), ``doctor`` reports Redis reachable; a wrong or missing password is one clear
line, exit 1, and the password is never printed.

Credentials come from ``rq_username``/``rq_password``, from ``$HOOKSCHEDULER_RQ_USERNAME``/``..._PASSWORD`` with
``worker --rq-username/--rq-password``, or from the URL. TLS: ``rediss://host:port/db?ssl_ca_certs=/path/ca.pem``
verifies the server against that CA (see ``hookscheduler/broker/connection.py`` for the other query parameters).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from hookscheduler.broker.connection import connect_redis
from hookscheduler.store.models import utcnow
from tests.helpers import DEFAULT_TASKS, read_out
from tests.integration.opcli_support import Result, assert_one_line_error, migrated, run, sub
from tests.integration.private_redis import ACL_PASSWORD, ACL_USER, PrivateRedis, private_redis, tls_supported

TASKS = DEFAULT_TASKS + '''

def fan():
    """A scheduled job that enqueues a background job itself: the worker's credentials must reach it."""
    from hookscheduler import enqueue
    record("fan")
    enqueue("acl.tasks.ok")
'''
HOOKS = {"hourly": ["acl.tasks.fan"]}
WRONG = "Wr0ng-pw_zz9"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path_factory.mktemp("redis-acl")) as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    if not tls_supported():  # pragma: no cover - the CI image's redis-server is built with TLS
        pytest.fail("redis-server lacks TLS support; install a TLS-enabled redis-server")
    with private_redis(tmp_path_factory.mktemp("redis-tls"), tls=True) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    """No credentials from the environment, before or after: `worker` run in this process exports the ones it
    was given (for its jobs), and a later test's subprocesses would inherit them."""
    for var in ("HOOKSCHEDULER_RQ_USERNAME", "HOOKSCHEDULER_RQ_PASSWORD"):
        monkeypatch.setenv(var, "")  # recorded, so monkeypatch restores the variable's absence afterwards
        monkeypatch.delenv(var)


def _bench(bench_factory, url: str, **common: str) -> Path:
    bench = bench_factory.make({"acl": HOOKS}, tasks=TASKS, common={"redis_queue": url, **common})
    ctx, _ = migrated(bench, utcnow() - timedelta(hours=2))  # the hourly slot is due now
    ctx.close()
    return bench


def _no_secret(*results: Result, secret: str = ACL_PASSWORD) -> None:
    for r in results:
        assert secret not in r.out + r.err, (r.out, r.err)


def _end_to_end(bench: Path, worker_args: tuple[str, ...] = ()) -> None:
    """tick and doctor through the CLI in this process (the environment as the test set it); the worker as a
    real process, whose horses run the jobs."""
    tick = run(bench, "tick", "--format", "json")
    assert tick.code == 0, tick.err
    assert tick.json()[0]["fired"] >= 1  # the hourly job (and the built-in maintenance job when it is due)
    worker = sub(bench, "worker", "--burst", *worker_args, HOOKSCHEDULER_RQ_USERNAME="", HOOKSCHEDULER_RQ_PASSWORD="")
    assert worker.code == 0, worker.err
    tasks = [r["task"] for r in read_out(bench)]
    assert sorted(tasks) == ["fan", "ok"], (tasks, worker.err[-3000:])
    history = run(bench, "jobs", "history", "acl.tasks.fan", "--format", "json")
    assert [r["status"] for r in history.json()] == ["complete"], history.out
    doctor = run(bench, "doctor", "--format", "json")
    [redis_check] = [c for c in doctor.json()["checks"] if c["check"] == "redis"]
    assert redis_check["ok"], redis_check
    _no_secret(tick, worker, history, doctor)


def test_acl_credentials_in_config(bench_factory, acl_redis):
    bench = _bench(bench_factory, acl_redis.url(), rq_username=ACL_USER, rq_password=ACL_PASSWORD)
    _end_to_end(bench)


def test_acl_credentials_on_the_worker_command_line_and_in_the_environment(bench_factory, acl_redis, monkeypatch):
    """Nothing in the config: the tick and doctor take the environment, the worker (whose environment has none)
    its options — and the job the worker runs (which enqueues another) inherits them."""
    bench = _bench(bench_factory, acl_redis.url())
    monkeypatch.setenv("HOOKSCHEDULER_RQ_USERNAME", ACL_USER)
    monkeypatch.setenv("HOOKSCHEDULER_RQ_PASSWORD", ACL_PASSWORD)
    _end_to_end(bench, ("--rq-username", ACL_USER, "--rq-password", ACL_PASSWORD))


def test_acl_credentials_in_the_url(bench_factory, acl_redis):
    bench = _bench(bench_factory, f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{acl_redis.port}/0")
    _end_to_end(bench)


def test_command_line_password_beats_a_stale_one_in_config_and_url(bench_factory, acl_redis, monkeypatch):
    bench = _bench(bench_factory, f"redis://{ACL_USER}:{WRONG}@127.0.0.1:{acl_redis.port}/0",
                   rq_username=ACL_USER, rq_password=WRONG)
    monkeypatch.setenv("HOOKSCHEDULER_RQ_USERNAME", ACL_USER)
    monkeypatch.setenv("HOOKSCHEDULER_RQ_PASSWORD", ACL_PASSWORD)
    _end_to_end(bench, ("--rq-username", ACL_USER, "--rq-password", ACL_PASSWORD))


def test_explicit_credentials_are_applied_after_the_url():
    client = connect_redis("redis://u1:p1@127.0.0.1:1/0", "u2", "p2")
    assert (client.connection_pool.connection_kwargs["username"],
            client.connection_pool.connection_kwargs["password"]) == ("u2", "p2")


CREDENTIAL_COMMANDS = (["jobs", "run", "acl.tasks.fan"], ["tick"], ["scheduler", "status"], ["show-pending-jobs"],
                       ["rq-jobs", "list"], ["purge-jobs"], ["ready-for-migration"], ["workers", "list"],
                       ["trigger-scheduler-event", "hourly"], ["worker", "--burst"])


@pytest.mark.parametrize("how", ["wrong-config", "wrong-url", "wrong-cli", "missing", "wrong-user"])
def test_wrong_or_missing_password_is_one_clear_line_without_the_password(bench_factory, acl_redis, how):
    common = {"wrong-config": {"rq_username": ACL_USER, "rq_password": WRONG}, "missing": {},
              "wrong-user": {"rq_username": "nobody", "rq_password": ACL_PASSWORD},
              "wrong-cli": {}, "wrong-url": {}}[how]
    url = (f"redis://{ACL_USER}:{WRONG}@127.0.0.1:{acl_redis.port}/0" if how == "wrong-url" else acl_redis.url())
    bench = _bench(bench_factory, url, **common)
    commands = [["worker", "--burst", "--rq-username", ACL_USER, "--rq-password", WRONG]] if how == "wrong-cli" \
        else CREDENTIAL_COMMANDS
    for argv in commands:
        # the worker as a real process (its horses, its logging); the rest in process, through the same run_cli
        result = sub(bench, *argv) if argv[0] == "worker" else run(bench, *argv)
        if argv == ["tick"]:
            assert result.code == 1 and "Error: site default: " in result.err, result.err
            assert "refused the credentials" in result.err and "Traceback" not in result.err
        else:
            if "--rq-password" in argv:  # the warning that the password shows in `ps` comes first
                warning, _, rest = result.err.partition("\n")
                assert warning.startswith("Warning: --rq-password is visible"), result.err
                result = Result(result.code, result.out, rest)
            assert_one_line_error(result, 1, "refused the credentials", "rq_username/rq_password")
        _no_secret(result, secret=WRONG)
        _no_secret(result)
    doctor = run(bench, "doctor", "--format", "json")
    assert doctor.code == 1
    [check] = [c for c in doctor.json()["checks"] if c["check"] == "redis"]
    assert not check["ok"] and "refused the credentials" in check["detail"]
    _no_secret(doctor, secret=WRONG)
    _no_secret(doctor)


def test_tls_end_to_end_with_the_ca_in_the_url(bench_factory, tls_redis):
    bench = _bench(bench_factory, tls_redis.url(), rq_username=ACL_USER, rq_password=ACL_PASSWORD)
    _end_to_end(bench)
    # the connection really is TLS: the server counts it among its TLS clients' handshakes
    info = tls_redis.admin().info("stats")
    assert "rediss://" in tls_redis.url() and info["total_connections_received"] > 0


def test_tls_with_the_password_in_a_rediss_url(bench_factory, tls_redis):
    url = f"rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}"
    _end_to_end(_bench(bench_factory, url))


def test_tls_without_the_ca_is_refused_clearly(bench_factory, tls_redis):
    """Verification is on by default: a server certificate from an unknown CA is one clear line, not a run."""
    bench = _bench(bench_factory, tls_redis.url(with_ca=False), rq_username=ACL_USER, rq_password=ACL_PASSWORD)
    for argv in (["jobs", "run", "acl.tasks.fan"], ["worker", "--burst"]):
        result = sub(bench, *argv)
        assert_one_line_error(result, 1, "cannot reach Redis at rediss://127.0.0.1", "CERTIFICATE_VERIFY_FAILED")
        _no_secret(result)


def test_plain_client_on_a_tls_port_is_refused_clearly(bench_factory, tls_redis):
    bench = _bench(bench_factory, f"redis://127.0.0.1:{tls_redis.port}/0", rq_username=ACL_USER,
                   rq_password=ACL_PASSWORD)
    result = sub(bench, "jobs", "run", "acl.tasks.fan")
    assert_one_line_error(result, 1, "Redis")
    _no_secret(result)


def test_settings_json_never_echoes_the_password(bench_factory, acl_redis):
    bench = _bench(bench_factory, acl_redis.url(), rq_username=ACL_USER, rq_password=ACL_PASSWORD)
    result = run(bench, "set-config", "-g", "rq_password", json.dumps(ACL_PASSWORD))
    assert result.code == 0 and "***" in result.out
    _no_secret(result)


def test_the_worker_reads_the_password_from_a_file_kept_out_of_ps(bench_factory, acl_redis, monkeypatch, tmp_path):
    bench = _bench(bench_factory, acl_redis.url())
    monkeypatch.setenv("HOOKSCHEDULER_RQ_USERNAME", ACL_USER)
    monkeypatch.setenv("HOOKSCHEDULER_RQ_PASSWORD", ACL_PASSWORD)
    secret = tmp_path / "rq-password"
    secret.write_text(ACL_PASSWORD + "\n")
    secret.chmod(0o600)
    _end_to_end(bench, ("--rq-username", ACL_USER, "--rq-password-file", str(secret)))


def test_the_worker_warns_about_a_password_on_its_command_line_and_refuses_bad_files(bench_factory, tmp_path):
    bench = _bench(bench_factory, "redis://127.0.0.1:1/0")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args, needle in ((("--rq-password-file", str(tmp_path / "missing")), "cannot be read"),
                         (("--rq-password-file", str(empty)), "the first line is empty"),
                         (("--rq-password", "x", "--rq-password-file", str(empty)), "not both")):
        r = run(bench, "worker", "--burst", *args)
        assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    r = run(bench, "worker", "--burst", "--rq-password", "on-the-command-line")
    assert "--rq-password is visible to every user" in r.err and "on-the-command-line" not in r.err + r.out
