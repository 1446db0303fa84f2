"""Who reaches the dashboard: the access token of a dashboard without sign-in, the Host names it answers, the
sign-in redirect under a mount path, and one session cookie per dashboard."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hookscheduler.exceptions import BadInput
from hookscheduler.hosts import allowed_hosts, checked_names, host_ok
from hookscheduler.web.app import create_app
from tests.helpers import env_for
from tests.web.support import PASSWORD, auth_config, client, csrf_of, make_bench


def test_without_the_access_token_a_local_user_gets_nothing(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench, token="t0ken-of-this-start")
    r = c.get("/sites/default/jobs")
    assert r.status_code == 401 and "hookscheduler dashboard" in r.text and 'name="csrf"' not in r.text
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok"})
    assert r.status_code == 401
    assert c.get("/sites/default/jobs?token=wrong").status_code == 401
    assert c.get("/static/style.css").status_code == 200
    # the token admits this browser and leaves the URL
    r = c.get("/sites/default/jobs?token=t0ken-of-this-start&q=ok", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/sites/default/jobs?q=ok")
    assert "t0ken-of-this-start" not in r.headers["set-cookie"]
    page = c.get("/sites/default/jobs")
    assert page.status_code == 200 and "app1.tasks.ok" in page.text
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "n", "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "disabled app1.tasks.ok" in r.text
    # another dashboard start (another token) does not accept this session
    other = client(bench, token="another-start")
    other.cookies = c.cookies
    assert other.get("/sites/default/jobs").status_code == 401


def test_library_use_without_a_token_checks_none(bench_factory):
    bench = make_bench(bench_factory)
    assert client(bench).get("/sites/default/jobs").status_code == 200
    with pytest.raises(ValueError, match="token is empty"):
        create_app(str(bench), token="")


def test_sign_in_under_a_mount_path_returns_to_the_page(bench_factory):
    bench = make_bench(bench_factory)
    outer = Starlette(routes=[Mount("/scheduler", create_app(str(bench), auth=auth_config(), live_seconds=0))])
    c = TestClient(outer, base_url="http://127.0.0.1")
    r = c.get("/scheduler/sites/default/jobs?q=ok", follow_redirects=False)
    assert r.headers["location"] == "/scheduler/login?next=%2Fsites%2Fdefault%2Fjobs%3Fq%3Dok"
    page = c.get(r.headers["location"])
    r = c.post("/scheduler/login", data={"user": "alice", "password": PASSWORD, "csrf": csrf_of(page.text),
                                         "next": "/sites/default/jobs?q=ok"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/scheduler/sites/default/jobs?q=ok")
    assert c.get(r.headers["location"]).status_code == 200


def test_the_bind_address_and_allowed_names_are_answered(bench_factory):
    assert host_ok("127.0.0.2:8765", allowed_hosts("127.0.0.2"))
    assert host_ok("[::1]:80", allowed_hosts("127.0.0.1")) and host_ok("localhost", allowed_hosts("::1"))
    assert not host_ok("attacker.example", allowed_hosts("127.0.0.1"))
    assert not host_ok("attacker.example:1", allowed_hosts("127.0.0.1", ["scheduler.example.com"]))
    assert host_ok("scheduler.example.com", allowed_hosts("127.0.0.1", checked_names(["Scheduler.example.com"])))
    assert allowed_hosts("0.0.0.0") is None
    # a name is judged by the address it was bound to: `--host vm` in /etc/hosts is loopback
    on_vm = allowed_hosts("vm", [], "127.0.1.1")
    assert not host_ok("attacker.example", on_vm) and host_ok("vm:9464", on_vm) and host_ok("127.0.1.1", on_vm)
    assert allowed_hosts("scheduler.example.com", [], "192.0.2.7") is None
    # a bare IPv6 address is matched as a Host header carries it, in brackets
    assert checked_names(["2001:DB8::1", "[::2]"]) == ["[2001:db8::1]", "[::2]"]
    assert host_ok("[2001:db8::1]:9464", allowed_hosts("::", checked_names(["2001:db8::1"])))
    with pytest.raises(BadInput, match=r"--allow-host 'https://x\.example' is not a host name"):
        checked_names(["https://x.example"])
    bench = make_bench(bench_factory)
    c = client(bench, allowed_hosts=allowed_hosts("127.0.0.1", ["scheduler.example.com"]))
    assert c.get("/sites/default/jobs", headers={"host": "scheduler.example.com"}).status_code == 200
    assert c.get("/sites/default/jobs", headers={"host": "evil.example"}).status_code == 400


def test_each_dashboard_has_its_own_session_cookie(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench, session_cookie="hookscheduler_session_8766")
    c.get("/sites/default/jobs")
    assert list(c.cookies.keys()) == ["hookscheduler_session_8766"]


def _metrics(bench, *args):
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "metrics", "--port", "0", *args],
                            env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = proc.stdout.readline()
    found = re.search(r"metrics on http://\S+:(\d+)/metrics", printed)
    assert found, printed + proc.stderr.read()
    return proc, int(found.group(1))


def test_the_metrics_server_refuses_foreign_host_names_on_loopback(bench_factory):
    bench = make_bench(bench_factory)
    proc, port = _metrics(bench, "--allow-host", "prom.example.com")
    try:
        def status(host):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as err:
                return err.code

        assert status(f"127.0.0.1:{port}") == 200 and status("localhost") == 200
        assert status("prom.example.com") == 200
        assert status("attacker.example") == 400  # DNS rebinding
    finally:
        proc.terminate()
        _, errors = proc.communicate(timeout=30)
    assert "warning" not in errors


def test_the_metrics_server_warns_when_it_listens_beyond_loopback_without_sign_in(bench_factory):
    bench = make_bench(bench_factory)
    proc, _ = _metrics(bench, "--host", "0.0.0.0")
    try:
        warning = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert warning.startswith("warning: metrics on 0.0.0.0 has no sign-in") and "127.0.0.1" in warning, warning
