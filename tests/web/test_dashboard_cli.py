"""`hookscheduler dashboard` as a user starts it: a real uvicorn process on loopback, the audit line of a change
on stderr, and `--hash-password` for the auth file."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from hookscheduler.web.auth import check_password, hash_password, load_auth
from tests.helpers import env_for
from tests.integration.opcli_support import assert_one_line_error, run
from tests.web.support import free_port, make_bench


def _get(opener, url):
    with opener.open(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_the_dashboard_command_serves_and_logs_each_change_with_its_actor(bench_factory):
    bench = make_bench(bench_factory)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "dashboard", "--port", str(port)],
                            env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        printed = proc.stdout.readline()  # the URL with this start's access token
        url = re.search(r"dashboard on (http://\S+) ", printed)
        assert url and url.group(1).startswith(f"{base}/?token="), printed or proc.stderr.read()
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        # without the token: a 401 saying where the URL is (another user of this machine has no more)
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(f"{base}/sites/default/jobs", timeout=10)
        assert err.value.code == 401 and "hookscheduler dashboard" in err.value.read().decode()
        with opener.open(url.group(1), timeout=10) as first:  # redirected without the token
            assert "token" not in first.url and first.status == 200
        status, html = _get(opener, f"{base}/sites/default/jobs")
        assert status == 200 and "app1.tasks.ok" in html
        # the session cookie is this dashboard's: another on this host (another port) keeps its own
        assert [c.name for c in jar] == [f"hookscheduler_session_{port}"]
        token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"name": "app1.tasks.ok", "note": "from the CLI test", "csrf": token}).encode()
        with opener.open(urllib.request.Request(f"{base}/sites/default/jobs/disable", data=data), timeout=10) as r:
            assert "disabled app1.tasks.ok: from the CLI test" in r.read().decode()
        # a foreign Host header (DNS rebinding) is refused on loopback
        req = urllib.request.Request(f"{base}/sites/default/jobs", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(req, timeout=10)
        assert err.value.code == 400
    finally:
        proc.terminate()
        out, errors = proc.communicate(timeout=30)
    assert "(localhost, open this URL: it holds the access token)" in printed and "token=" not in out + errors
    assert re.search(r"\(dashboard\) from 127\.0\.0\.1: jobs/disable on site default done: disabled app1.tasks.ok: "
                     r"from the CLI test", errors), errors


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _typed(monkeypatch, *answers: str) -> list[str]:
    """A terminal on stdin where the user types ``answers`` at the prompts; returns the prompts shown."""
    prompts: list[str] = []
    typed = iter(answers)

    def fake_getpass(prompt: str = "Password: ") -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return prompts


def test_hash_password_on_a_terminal_asks_twice(bench_factory, monkeypatch):
    bench = make_bench(bench_factory)
    prompts = _typed(monkeypatch, "s3cret", "s3cret")
    done = run(bench, "dashboard", "--hash-password")
    assert done.code == 0 and prompts == ["Password: ", "Password again: "]
    assert check_password("s3cret", done.out.strip())


def test_hash_password_refuses_two_different_passwords(bench_factory, monkeypatch):
    bench = make_bench(bench_factory)
    _typed(monkeypatch, "s3cret", "s3cert")
    done = run(bench, "dashboard", "--hash-password")
    assert_one_line_error(done, 2, "the two passwords differ")
    assert done.out == "" and "s3cret" not in done.err and "s3cert" not in done.err


def test_hash_password_from_stdin_reads_one_line(bench_factory, monkeypatch):
    bench = make_bench(bench_factory)
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\nignored\n"))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("no prompt without a terminal"))
    done = run(bench, "dashboard", "--hash-password")
    assert done.code == 0 and check_password("s3cret", done.out.strip())


def test_hash_password_makes_a_hash_the_auth_file_accepts(bench_factory, tmp_path):
    bench = make_bench(bench_factory)
    done = subprocess.run([sys.executable, "-m", "hookscheduler", "dashboard", "--hash-password"], input="s3cret\n",
                          env=env_for(bench), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert "s3cret" not in stored and check_password("s3cret", stored)
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {"alice": {"role": "operator", "password": stored}}}))
    path.chmod(0o600)
    assert load_auth(path).login("alice", "s3cret") is not None


@pytest.mark.parametrize("command", ["dashboard", "metrics"])
def test_a_port_in_use_is_one_line_naming_it_before_anything_is_served(bench_factory, command):
    bench = make_bench(bench_factory)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "hookscheduler", command, "--port", str(port)],
                              env=env_for(bench), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "")  # no "dashboard on http://..." for a port it never got
    assert proc.stderr.splitlines() == [f"Error: {command}: 127.0.0.1:{port} is already in use (another process "
                                        "listens there); choose another --port"]


def test_a_host_that_is_not_this_machine_is_one_line(bench_factory):
    bench = make_bench(bench_factory)
    assert_one_line_error(run(bench, "metrics", "--host", "no-such-host.invalid", "--port", "0"), 2,
                          "metrics: --host 'no-such-host.invalid' is not a known host name", "choose another --host")
    r = run(bench, "dashboard", "--host", "192.0.2.1", "--port", "0", "--auth-file", str(_auth_file(bench)))
    assert_one_line_error(r, 2, "dashboard: cannot listen on 192.0.2.1:0: '192.0.2.1' is not an address of this "
                          "machine; choose another --host")
    assert r.out == ""


def _status(url: str, host: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize("command", ["metrics", "dashboard"])
def test_a_host_name_that_resolves_to_loopback_is_served_as_loopback(bench_factory, command):
    # "127.1" is not an address as written, but resolves to 127.0.0.1, as a name in /etc/hosts (`vm`) or
    # $(hostname) often does: the server is judged by the address it is bound to
    bench = make_bench(bench_factory)
    no_token = ["--no-token"] if command == "dashboard" else []
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", command, "--host", "127.1", "--port", "0",
                             *no_token], env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = proc.stdout.readline()
        port = re.search(r" on http://127\.(?:0\.0\.)?1:(\d+)/", printed)
        assert port, printed or proc.stderr.read()
        path = "/metrics" if command == "metrics" else "/sites/default/jobs"
        url = f"http://127.0.0.1:{port.group(1)}{path}"
        assert _status(url, "attacker.example") == 400  # a DNS-rebinding page is refused, as on 127.0.0.1
        assert _status(url, f"127.1:{port.group(1)}") == 200 and _status(url, "localhost") == 200
    finally:
        proc.terminate()
        _, errors = proc.communicate(timeout=30)
    assert "warning" not in errors and "refusing" not in errors


def test_metrics_on_ipv6_prints_its_url_with_brackets(bench_factory):
    bench = make_bench(bench_factory)
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "metrics", "--host", "::1", "--port", "0"],
                            env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = proc.stdout.readline()
        url = re.search(r"metrics on (http://\[::1\]:\d+/metrics) ", printed)
        assert url, printed or proc.stderr.read()
        with urllib.request.urlopen(url.group(1), timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("trusted", [False, True])
def test_a_forwarded_address_is_believed_only_from_forwarded_allow_ips(bench_factory, trusted):
    bench = make_bench(bench_factory)
    port = free_port()
    trust = ["--forwarded-allow-ips", "127.0.0.1"] if trusted else []
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "dashboard", "--port", str(port), "--auth-file",
                             str(_auth_file(bench)), *trust],
                            env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "dashboard on" in proc.stdout.readline()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        _, html = _get(opener, f"http://127.0.0.1:{port}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"user": "alice", "password": "wrong", "csrf": token}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/login", data=data,
                                     headers={"X-Forwarded-For": "203.0.113.77"})
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(req, timeout=10)
        assert err.value.code == 401
    finally:
        proc.terminate()
        _, errors = proc.communicate(timeout=30)
    shown = "203.0.113.77" if trusted else "127.0.0.1"
    assert f"alice from {shown}: sign-in refused (401)" in errors, errors


def test_forwarded_allow_ips_must_be_addresses(bench_factory):
    bench = make_bench(bench_factory)
    assert_one_line_error(run(bench, "dashboard", "--port", "0", "--forwarded-allow-ips", "proxy.example"), 2,
                          "--forwarded-allow-ips: 'proxy.example' is not an IP address or network",
                          "comma-separated")


def _auth_file(bench):
    path = bench / "users.json"
    path.write_text(json.dumps({"users": {"alice": {"role": "viewer", "password": hash_password("pw", 1000)}}}))
    path.chmod(0o600)
    return path
