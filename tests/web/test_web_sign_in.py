"""Sign-in, sign-out and the dashboard's limits on what a request can cost: password checks off the event loop,
the same work for an unknown user, /metrics basic auth logged, sessions revoked at sign-out, an owner-only auth
file, bounded notes and messages, and a row id too large for the database."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading

import anyio
import pytest
from starlette.testclient import TestClient

from hookscheduler.exceptions import ConfigError
from hookscheduler.web import app as app_module
from hookscheduler.web import views
from hookscheduler.web.actions import FLASH_BYTES, flash_text
from hookscheduler.web.app import create_app
from hookscheduler.web.auth import (
    CHECKS_PER_ADDRESS,
    HASH_THREADS,
    ITERATIONS,
    AuthConfig,
    ClientGone,
    Revoked,
    TooManyChecks,
    User,
    load_auth,
)
from tests.web.support import PASSWORD, auth_config, client, csrf_of, login, make_bench

LOGGER = "hookscheduler.web.audit"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_password_checks_run_in_worker_threads_a_few_at_a_time(monkeypatch):
    auth = auth_config()
    release = threading.Event()
    threads: list[str] = []

    def slow_login(self: AuthConfig, name: str, password: str) -> User | None:
        threads.append(threading.current_thread().name)
        assert release.wait(30)
        return None

    monkeypatch.setattr(AuthConfig, "login", slow_login)

    async def flood() -> tuple[float, int]:
        async with anyio.create_task_group() as tg:
            for n in range(HASH_THREADS + 3):
                tg.start_soon(auth.login_in_thread, "alice", "guess", f"192.0.2.{n}")
            await anyio.wait_all_tasks_blocked()
            stats = auth._limiter.statistics()
            release.set()
        return stats.borrowed_tokens, stats.tasks_waiting

    borrowed, waiting = anyio.run(flood)
    assert (borrowed, waiting) == (HASH_THREADS, 3)
    assert len(threads) == HASH_THREADS + 3 and threading.main_thread().name not in threads


def test_a_check_whose_client_has_gone_is_not_started(monkeypatch):
    auth = auth_config()
    started: list[str] = []
    monkeypatch.setattr(AuthConfig, "login", lambda self, name, password: started.append(name))

    async def gone() -> bool:
        return True

    async def here() -> bool:
        return False

    async def attempts() -> None:
        with pytest.raises(ClientGone):
            await auth.login_in_thread("mallory", "guess", "192.0.2.1", gone)
        await auth.login_in_thread("alice", "guess", "192.0.2.1", here)

    anyio.run(attempts)
    assert started == ["alice"] and auth._checks == {}


def _held_checks(monkeypatch) -> tuple[AuthConfig, threading.Event, list[str]]:
    """An auth config whose password checks record the user name and wait for the event: checks that hold
    their thread until the test lets them go."""
    auth = auth_config()
    release = threading.Event()
    started: list[str] = []

    def slow_login(self: AuthConfig, name: str, password: str) -> User | None:
        started.append(name)
        assert release.wait(30)
        return None

    monkeypatch.setattr(AuthConfig, "login", slow_login)
    return auth, release, started


def test_a_waiting_check_leaves_the_queue_when_its_client_hangs_up(monkeypatch):
    auth, release, started = _held_checks(monkeypatch)

    async def flood() -> tuple[list[str], dict[str, int], int]:
        outcomes: list[str] = []
        hang_up = anyio.Event()

        async def waiting_guess() -> None:
            try:
                await auth.login_in_thread("mallory", "guess", "192.0.2.1", hung_up=hang_up.wait)
            except ClientGone:
                outcomes.append("gone")

        async with anyio.create_task_group() as tg:
            for n in range(HASH_THREADS):  # every thread busy
                tg.start_soon(auth.login_in_thread, "busy", "guess", f"198.51.100.{n}")
            await anyio.wait_all_tasks_blocked()
            for _ in range(CHECKS_PER_ADDRESS):
                tg.start_soon(waiting_guess)
            await anyio.wait_all_tasks_blocked()
            hang_up.set()  # the clients hang up while their checks wait
            await anyio.wait_all_tasks_blocked()
            under_way, waiting = dict(auth._checks), auth._limiter.statistics().tasks_waiting
            release.set()
        return outcomes, under_way, waiting

    outcomes, under_way, waiting = anyio.run(flood)
    assert outcomes == ["gone"] * CHECKS_PER_ADDRESS and waiting == 0
    assert "192.0.2.1" not in under_way and started == ["busy"] * HASH_THREADS


def test_one_address_may_have_only_a_few_checks_under_way(monkeypatch):
    auth, release, started = _held_checks(monkeypatch)

    async def flood() -> tuple[int, dict[str, int]]:
        refused = 0
        async with anyio.create_task_group() as tg:
            for _ in range(CHECKS_PER_ADDRESS):
                tg.start_soon(auth.login_in_thread, "mallory", "guess", "192.0.2.1")
            await anyio.wait_all_tasks_blocked()
            for _ in range(50):
                with pytest.raises(TooManyChecks):
                    await auth.login_in_thread("mallory", "guess", "192.0.2.1")
                refused += 1
            tg.start_soon(auth.login_in_thread, "alice", "guess", "192.0.2.2")  # another address still queues
            await anyio.wait_all_tasks_blocked()
            under_way = dict(auth._checks)
            release.set()
        return refused, under_way

    refused, under_way = anyio.run(flood)
    assert refused == 50 and under_way == {"192.0.2.1": CHECKS_PER_ADDRESS, "192.0.2.2": 1}
    assert started.count("mallory") == CHECKS_PER_ADDRESS and started.count("alice") == 1 and auth._checks == {}


def test_a_busy_address_is_refused_at_once_with_429_and_a_sign_in_line(bench_factory, monkeypatch, caplog):
    auth = auth_config()
    started: list[str] = []
    real = AuthConfig.login
    monkeypatch.setattr(AuthConfig, "login", lambda self, name, pw: started.append(name) or real(self, name, pw))
    monkeypatch.setattr(app_module, "_SCRAPERS", set())  # this test's good scrape is not another test's first
    c = client(make_bench(bench_factory), auth=auth)
    page = c.get("/login")
    auth._checks["testclient"] = CHECKS_PER_ADDRESS  # as if this address had that many checks waiting
    with caplog.at_level(logging.INFO, logger=LOGGER):
        r = c.get("/metrics", headers=_basic("victor", PASSWORD))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        r = c.post("/login", data={"user": "alice", "password": PASSWORD, "csrf": csrf_of(page.text)})
        assert r.status_code == 429 and "too many password checks from this address" in r.text
    assert started == []
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    busy = "refused (429): too many password checks from this address at once; try again in a moment"
    assert lines == [f"victor from testclient: /metrics basic auth {busy}", f"alice from testclient: sign-in {busy}"]
    del auth._checks["testclient"]
    assert c.get("/metrics", headers=_basic("victor", PASSWORD)).status_code == 200


def test_the_sign_in_form_and_metrics_do_not_check_passwords_on_the_event_loop(bench_factory, monkeypatch):
    import asyncio

    on_loop: list[bool] = []
    real = AuthConfig.login

    def spy(self: AuthConfig, name: str, password: str) -> User | None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(self, name, password)

    monkeypatch.setattr(AuthConfig, "login", spy)
    c = client(make_bench(bench_factory), auth=auth_config())
    assert c.get("/metrics", headers=_basic("alice", "wrong")).status_code == 401
    login(c)
    assert on_loop == [False, False]


def test_an_unknown_user_costs_the_same_hash_work_as_a_known_one(monkeypatch):
    stored = f"pbkdf2_sha256${ITERATIONS}$salt${'f' * 64}"
    auth = AuthConfig({"alice": User("alice", "operator", stored)}, "s" * 40)
    rounds: list[int] = []
    monkeypatch.setattr(hashlib, "pbkdf2_hmac",
                        lambda name, pw, salt, iterations: rounds.append(iterations) or b"\0" * 32)
    assert auth.login("alice", "guess") is None
    assert auth.login("nobody", "guess") is None
    assert auth.login("nobody", "again") is None
    # the known user's check, then the unknown one's: the same iteration count, each time
    assert rounds[0] == ITERATIONS and all(r == ITERATIONS for r in rounds)
    assert len(rounds) == 4  # the dummy hash is made once (1), then one check per attempt (3)


def test_metrics_basic_auth_attempts_are_sign_in_lines(bench_factory, caplog):
    c = client(make_bench(bench_factory), auth=auth_config())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert c.get("/metrics", headers=_basic("alice", "wrong")).status_code == 401
        assert c.get("/metrics", headers=_basic("mallory", "x")).status_code == 401
        assert c.get("/metrics", headers={"authorization": "Basic !!!"}).status_code == 401
        assert c.get("/metrics", headers=_basic("victor", PASSWORD)).status_code == 200
        assert c.get("/metrics", headers=_basic("victor", PASSWORD)).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines[:3] == ["alice from testclient: /metrics basic auth refused (401): wrong user name or password",
                         "mallory from testclient: /metrics basic auth refused (401): wrong user name or password",
                         "(no user name) from testclient: /metrics basic auth refused (401): malformed "
                         "Authorization header"]
    assert lines[3].startswith("victor from testclient: /metrics basic auth done (viewer)")
    assert len(lines) == 4  # a second good scrape from the same place is not a line
    assert all(PASSWORD not in line for line in lines)


def test_signing_out_ends_the_session_for_a_copy_of_the_cookie_too(bench_factory):
    bench = make_bench(bench_factory)
    auth = auth_config()
    c = client(bench, auth=auth)
    login(c)
    page = c.get("/sites/default/jobs")
    captured = c.cookies.get("hookscheduler_session")
    assert captured and "alice · operator" in page.text
    assert c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    thief = TestClient(create_app(str(bench), auth=auth, live_seconds=0), base_url="http://127.0.0.1",
                       cookies={"hookscheduler_session": captured})
    r = thief.get("/sites/default/jobs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    thief.cookies.set("hookscheduler_session", captured)
    r = thief.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "csrf": csrf_of(page.text)})
    assert r.status_code == 401
    # signing in again starts a new session, which works
    login(c)
    assert "alice · operator" in c.get("/sites/default/jobs").text


def test_signing_out_from_a_stale_page_says_it_was_refused(bench_factory, caplog):
    c = client(make_bench(bench_factory), auth=auth_config())
    login(c)
    stale = c.get("/sites/default/jobs").text
    # another tab signs out and in as someone else: this tab's page holds the old session's token
    assert c.post("/logout", data={"csrf": csrf_of(stale)}, follow_redirects=False).status_code == 303
    login(c, "victor")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        r = c.post("/logout", data={"csrf": csrf_of(stale)}, follow_redirects=False)
    assert r.status_code == 403 and "sign-out refused: the page was stale" in r.text
    assert "victor · viewer" in c.get("/sites/default/jobs").text  # still signed in, as the page said
    assert [m for m in caplog.messages if m.startswith("victor from testclient: sign-out refused (403)")]


def test_a_revoked_session_id_is_kept_as_long_as_a_cookie_could_be_accepted():
    revoked = Revoked(keep_seconds=100)
    revoked.revoke("a", now=1000)
    assert revoked.holds("a", now=1099) and not revoked.holds("b", now=1099)
    assert not revoked.holds("a", now=1100)
    revoked.revoke("b", now=1200)  # revoking prunes the ids whose time is over
    assert list(revoked._until) == ["b"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_an_auth_file_open_to_others_is_refused(tmp_path, mode):
    path = tmp_path / "users.json"
    path.write_text('{"users": {"alice": {"role": "operator", "password": "pbkdf2_sha256$1000$s$00"}}}')
    path.chmod(mode)
    with pytest.raises(ConfigError) as err:
        load_auth(path)
    assert str(err.value) == (f"{path}: the dashboard auth file is {mode:04o}, open to group/others (its secret "
                              f"signs sessions); make it owner-only: chmod 600 {path}")
    path.chmod(0o600)
    assert set(load_auth(path).users) == {"alice"}


def test_an_auth_file_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    import os

    path = tmp_path / "users.json"
    path.write_text('{"users": {"alice": {"role": "operator", "password": "pbkdf2_sha256$1000$s$00"}}}')
    path.chmod(0o600)
    assert set(load_auth(path).users) == {"alice"}  # the serving user's own file
    if os.geteuid() == 0:
        os.chown(path, 65534, -1)  # nobody's
        owner, me = 65534, 0
    else:
        owner, me = os.geteuid(), os.geteuid() + 1
        monkeypatch.setattr(os, "geteuid", lambda: me)
    with pytest.raises(ConfigError) as err:
        load_auth(path)
    message = str(err.value)
    assert message.startswith(f"{path}: the dashboard auth file belongs to uid {owner}, not to the user serving "
                              f"the dashboard (uid {me})") and "; make it yours: chown " in message
    assert "\n" not in message


def test_a_note_too_long_is_refused_and_messages_stay_short_in_the_cookie(bench_factory):
    from tests.web.test_web_security import _stopped

    bench = make_bench(bench_factory)
    c = client(bench)
    page = c.get("/sites/default/jobs")
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "x" * 900_000,
                                                    "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and len(r.headers["set-cookie"]) < 4096
    assert not _stopped(bench, "app1.tasks.ok").stopped
    assert "note: 900000 characters, at most 500 are kept" in c.get("/sites/default/jobs").text
    # the longest note allowed is kept whole, but the message carried in the cookie to the next page is cut
    note = "日" * 500  # JSON escapes each as six bytes: whole, the cookie would pass a browser's limit
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": note,
                                                    "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and len(r.headers["set-cookie"]) < 4096
    assert _stopped(bench, "app1.tasks.ok").stopped_note == note
    shown = c.get("/sites/default/jobs").text
    assert "disabled app1.tasks.ok: " + "日" * 100 in shown and note + "</p>" not in shown
    # emoji are twelve bytes each in the cookie: the cut is by bytes, so the cookie stays well under 4 KB
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "\U0001f600" * 300,
                                                    "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and len(r.headers["set-cookie"]) < 2000


def test_the_message_in_the_cookie_is_cut_by_its_size_there():
    import json

    assert flash_text("short") == "short"
    for text in ("x" * 5000, "日" * 400, "\U0001f600" * 300, "a" * 990 + "\U0001f600" * 5):
        cut = flash_text(text)
        assert len(json.dumps(cut)) <= FLASH_BYTES and cut.endswith("\u2026")
        assert len(json.dumps(text[:len(cut)] + "\u2026")) > FLASH_BYTES  # one more character would not fit


def test_a_log_id_too_large_for_the_database_is_not_found(bench_factory, db_kind):
    c = client(make_bench(bench_factory, db_kind))
    r = c.get("/sites/default/log/99999999999999999999999")
    assert r.status_code == 404 and "log row 99999999999999999999999 not found" in r.text
    assert c.get(f"/sites/default/log/{2**63 - 1}").status_code == 404


def test_an_unexpected_error_is_logged_once_with_its_traceback(bench_factory, monkeypatch, caplog):
    bench = make_bench(bench_factory)

    def broken(row_id: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(views.history_lib, "log_row", broken)
    c = TestClient(create_app(str(bench), live_seconds=0), base_url="http://127.0.0.1",
                   raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="hookscheduler.web.app"):
        r = c.get("/sites/default/log/1")
    assert r.status_code == 500 and "internal error RuntimeError: boom" in r.text
    records = [rec for rec in caplog.records if rec.name == "hookscheduler.web.app"]
    assert len(records) == 1 and records[0].exc_info and isinstance(records[0].exc_info[1], RuntimeError)
    assert "NoneType: None" not in caplog.text and "RuntimeError: boom" in caplog.text
