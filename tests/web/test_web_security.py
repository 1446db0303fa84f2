"""The dashboard's security and escaping, through Starlette's test client on real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest

from hookscheduler.context import open_site
from hookscheduler.exceptions import ConfigError
from hookscheduler.store.models import ScheduledJobType
from hookscheduler.web.auth import check_password, hash_password, load_auth
from hookscheduler.web.security import check_bind
from tests.integration.opcli_support import run
from tests.web.support import HOSTILE, HOSTILE_NOTE, auth_config, client, csrf_of, login, make_bench


def _stopped(bench, name):
    open_site(str(bench)).database()
    return ScheduledJobType.get(ScheduledJobType.name == name)


def test_no_bind_beyond_localhost_without_auth(bench_factory, tmp_path):
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    with pytest.raises(ConfigError, match="without authentication"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", auth_config())
    bench = make_bench(bench_factory)
    r = run(bench, "dashboard", "--host", "0.0.0.0", "--port", "0")
    assert r.code == 2 and "refusing to listen on 0.0.0.0 without authentication" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_auth_file_is_validated_and_holds_only_hashes(tmp_path):
    bad = tmp_path / "auth.json"
    bad.write_text('{"users": {"alice": {"role": "operator", "password": "plain-text"}}}')
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="must be a hash"):
        load_auth(bad)
    bad.write_text('{"users": {"alice": {"role": "root", "password": "x"}}}')
    with pytest.raises(ConfigError, match="role must be one of viewer, operator"):
        load_auth(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_auth(bad)
    stored = hash_password("pw", iterations=1000)
    assert check_password("pw", stored) and not check_password("pW", stored) and not check_password("pw", "x$y")


def test_hostile_job_names_and_notes_are_escaped(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    c = client(bench)
    page = c.get("/sites/default/jobs")
    r = c.post("/sites/default/jobs/disable", data={"name": HOSTILE, "note": HOSTILE_NOTE, "csrf": csrf_of(page.text),
                                                    "back": "/sites/default/jobs"}, follow_redirects=False)
    assert r.status_code == 303
    assert _stopped(bench, HOSTILE).stopped_note == HOSTILE_NOTE
    for path in ("/sites/default/jobs", "/sites/default/job?name=" + _q(HOSTILE),
                 "/sites/default/job?name=" + _q(HOSTILE) + "&at=1h"):
        html = c.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html, path
    assert "&lt;img src=x onerror=alert(1)&gt; &#34;quoted&#34; &#39;single&#39;" in c.get("/sites/default/jobs").text


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def test_sign_in_roles_csrf_and_the_audit_trail(bench_factory, db_kind, caplog):
    bench = make_bench(bench_factory, db_kind)
    c = client(bench, auth=auth_config())
    # signed out: pages send you to sign in, changes are refused and change nothing
    assert c.get("/sites/default/jobs", follow_redirects=False).headers["location"].startswith("/login")
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "csrf": "x"})
    assert r.status_code == 401 and "sign in to change anything" in r.text
    assert not _stopped(bench, "app1.tasks.ok").stopped
    # a wrong password
    page = c.get("/login")
    r = c.post("/login", data={"user": "alice", "password": "nope", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "wrong user name or password" in r.text
    # a viewer reads but cannot change
    login(c, "victor")
    page = c.get("/sites/default/jobs")
    assert page.status_code == 200 and "victor · viewer" in page.text
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and "viewer role" in r.text
    assert not _stopped(bench, "app1.tasks.ok").stopped
    # an operator without the form's token is refused; with it, the change is made and recorded with who
    c.cookies.clear()
    login(c, "alice")
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "deploy"})
    assert r.status_code == 403 and not _stopped(bench, "app1.tasks.ok").stopped
    page = c.get("/sites/default/jobs")
    with caplog.at_level(logging.INFO, logger="hookscheduler.web.audit"):
        r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "deploy",
                                                        "csrf": csrf_of(page.text)}, follow_redirects=True)
    assert r.status_code == 200 and "disabled app1.tasks.ok: deploy" in r.text
    row = _stopped(bench, "app1.tasks.ok")
    assert row.stopped and row.stopped_by == "alice (dashboard)" and row.stopped_note == "deploy"
    assert any("alice (dashboard) from testclient: jobs/disable on site default done" in m for m in caplog.messages)
    # the password hash is never rendered, anywhere
    for path in ("/sites/default/jobs", "/scheduler", "/sites/default/queues", "/sites/default/workers"):
        assert "pbkdf2" not in c.get(path).text


def test_session_cookie_is_httponly_and_samesite_strict(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench, auth=auth_config())
    page = c.get("/login")
    r = c.post("/login", data={"user": "alice", "password": "correct horse battery staple",
                               "csrf": csrf_of(page.text)}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "content-security-policy" in {k.lower() for k in c.get("/sites/default/jobs").headers}


def test_a_change_without_the_csrf_token_is_refused_even_on_localhost(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench)
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok"})
    assert r.status_code == 403 and "security token" in r.text
    assert not _stopped(bench, "app1.tasks.ok").stopped


def test_a_csrf_token_that_is_not_ascii_is_refused_as_a_stale_one(bench_factory, caplog):
    bench = make_bench(bench_factory)
    c = client(bench)
    c.get("/sites/default/jobs")
    with caplog.at_level(logging.INFO, logger="hookscheduler.web.audit"):
        r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "csrf": "é"})
    assert r.status_code == 403 and "security token" in r.text
    assert not _stopped(bench, "app1.tasks.ok").stopped
    assert [m for m in caplog.messages if "jobs/disable" in m and "refused (403)" in m]


def test_foreign_host_headers_are_refused_on_loopback(bench_factory):
    from hookscheduler.web.app import loopback_hosts

    bench = make_bench(bench_factory)
    c = client(bench, allowed_hosts=loopback_hosts())
    assert c.get("/sites/default/jobs").status_code == 200
    assert c.get("/sites/default/jobs", headers={"host": "evil.example"}).status_code == 400


def test_bad_input_is_one_line_with_a_fitting_status(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench)
    r = c.get("/sites/default/job?name=nope")
    assert r.status_code == 404 and "job &#39;nope&#39; not found" in r.text
    r = c.get("/sites/default/job?name=app1.tasks.ok&at=not-a-time")
    assert r.status_code == 400
    assert c.get("/sites/nosuch/jobs").status_code == 400
    assert c.get("/sites/default/log/999999").status_code == 404
    page = c.get("/sites/default/jobs")
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "a\x1b[31m",
                                                    "csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "control character" in r.text and not _stopped(bench, "app1.tasks.ok").stopped


def test_several_sites_each_with_its_own_database(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, sites={"a.example": {}, "b.example": {}})
    c = client(bench)
    page = c.get("/sites/a.example/jobs")
    assert page.status_code == 200 and "b.example" in page.text
    c.post("/sites/b.example/jobs/disable", data={"name": "app1.tasks.ok", "csrf": csrf_of(page.text)})
    assert "<strong>stopped</strong>" in c.get("/sites/b.example/jobs").text
    assert "<strong>stopped</strong>" not in c.get("/sites/a.example/jobs").text
    sched = c.get("/scheduler").text
    assert 'data-site="a.example"' in sched and 'data-site="b.example"' in sched


def test_passwords_in_errors_and_tracebacks_are_never_rendered(bench_factory, db_kind):
    from tests.web.support import seed_ledger

    bench = make_bench(bench_factory, db_kind, hours_ago=80)
    seed_ledger(bench)
    c = client(bench)
    for path in ("/sites/default/missed?since=3d", "/sites/default/job?name=app1.tasks.ok",
                 "/sites/default/job?name=app1.tasks.ok&offset=25", "/sites/default/missed?since=2d"):
        html = c.get(path).text
        assert "s3cret-pw" not in html, path
        assert "postgresql://app:***@db/x" in html, path
