"""Refused changes: an unknown site is a clean 400 on every action, and every refusal is one audit line."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from hookscheduler.ops.jobs import actor
from hookscheduler.web import actions
from hookscheduler.web.app import create_app
from tests.web.support import auth_config, client, csrf_of, login, make_bench

AUDIT = "hookscheduler.web.audit"


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == AUDIT]


def test_an_action_on_an_unknown_site_is_a_clean_400_on_every_route(bench_factory, caplog):
    bench = make_bench(bench_factory)
    c = client(bench)
    token = csrf_of(c.get("/sites/default/jobs").text)
    for path in actions.ACTIONS:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            r = c.post(f"/sites/nosuch/{path}", data={"name": "app1.tasks.ok", "job_id": "x", "csrf": token},
                       follow_redirects=False)
        assert r.status_code == 400, (path, r.status_code)
        assert "site &#39;nosuch&#39; is not served here; sites: default" in r.text, path
        assert "internal error" not in r.text, path
        assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], path
        lines = _audit_lines(caplog)
        assert len(lines) == 1 and f"{path} on site nosuch refused (400): site 'nosuch' is not served" in lines[0]
    # a site name that would forge a second audit line is escaped into one
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=AUDIT):
        r = c.post("/sites/x%0Aforged/jobs/enable", data={"name": "app1.tasks.ok", "csrf": token})
    assert r.status_code == 400
    lines = _audit_lines(caplog)
    assert len(lines) == 1 and "\n" not in lines[0] and "site x\\nforged refused (400)" in lines[0]


def test_every_refused_change_is_one_audit_line_without_secrets(bench_factory, caplog):
    bench = make_bench(bench_factory)
    form = {"name": "app1.tasks.ok", "note": "deploy"}
    local = client(bench)  # no auth file: the local user, who still needs the form's token
    token = csrf_of(local.get("/sites/default/jobs").text)
    cookie = local.cookies.get("hookscheduler_session")
    c = client(bench, auth=auth_config())
    with caplog.at_level(logging.INFO, logger=AUDIT):
        assert local.post("/sites/default/jobs/disable", data=form).status_code == 403  # no token
        local.cookies.clear()
        r = local.post("/sites/default/jobs/disable", data={**form, "csrf": token})  # no session cookie
        assert r.status_code == 403
        assert c.post("/sites/default/jobs/disable", data={**form, "csrf": "guessed"}).status_code == 401
        login(c, "victor")
        r = c.post("/sites/default/scheduler/pause", data={"csrf": csrf_of(c.get("/sites/default/jobs").text)})
        assert r.status_code == 403
        # reading a page signed out changes nothing: no line
        c.cookies.clear()
        assert c.get("/sites/default/jobs", follow_redirects=False).status_code == 303
    lines = [line for line in _audit_lines(caplog) if ": sign-in " not in line]  # victor's sign-in: its own test
    assert len(lines) == 4, lines
    me = actor()
    stale = "the form's security token is missing or stale; reload the page and try again"
    assert lines[0] == f"{me} (dashboard) from testclient: jobs/disable on site default refused (403): {stale}"
    assert lines[1] == lines[0]
    assert lines[2] == ("not signed in from testclient: jobs/disable on site default refused (401): "
                        "sign in to change anything")
    assert lines[3] == ("victor (dashboard) from testclient: scheduler/pause on site default refused (403): "
                        "victor has the viewer role; changes need an operator")
    for line in lines:
        assert token not in line and "guessed" not in line and (cookie or "@@") not in line
        assert "deploy" not in line and "correct horse" not in line and "pbkdf2" not in line


def test_a_change_that_fails_unexpectedly_is_audited_too(bench_factory, caplog, monkeypatch):
    def broken(*args: object) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(actions.ACTIONS, "jobs/enable", broken)
    bench = make_bench(bench_factory)
    c = TestClient(create_app(str(bench), live_seconds=0), base_url="http://127.0.0.1", raise_server_exceptions=False)
    token = csrf_of(c.get("/sites/default/jobs").text)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        r = c.post("/sites/default/jobs/enable", data={"name": "app1.tasks.ok", "csrf": token})
    assert r.status_code == 500 and "internal error RuntimeError: disk on fire" in r.text
    assert _audit_lines(caplog) == [f"{actor()} (dashboard) from testclient: jobs/enable on site default failed: "
                                    "internal error RuntimeError: disk on fire"]


def test_every_sign_in_attempt_is_one_audit_line_without_the_password(bench_factory, caplog):
    """Failed sign-ins are how guessing shows in a log: each attempt, made or refused, is one audit line naming
    the user name typed (escaped) and the address, never the password."""
    bench = make_bench(bench_factory)
    c = client(bench, auth=auth_config())
    with caplog.at_level(logging.INFO, logger=AUDIT):
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"user": "alice", "password": "not-it", "csrf": token}, follow_redirects=False)
        assert r.status_code == 401
        r = c.post("/login", data={"user": "mallory\nforged", "password": "x", "csrf": "stale"},
                   follow_redirects=False)
        assert r.status_code == 403
        login(c, "alice")
    assert _audit_lines(caplog) == [
        "alice from testclient: sign-in refused (401): wrong user name or password",
        "mallory\\nforged from testclient: sign-in refused (403): the form's security token is missing or stale",
        "alice from testclient: sign-in done (operator)",
    ]
    assert not any("not-it" in line for line in _audit_lines(caplog))
