"""``hookscheduler start`` never leaves a process behind: its terminal closing (SIGHUP) stops the scheduler, the
workers and a private redis-server, and so does ``start`` being killed outright. Real processes throughout: a
survivor is found by scanning ``/proc`` for any process whose command line names the bench.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from hookscheduler.config import load_bench, load_sites
from hookscheduler.ops.supervisor import free_port, plan
from tests.integration.bgjobs_support import make_bench, spawn, wait_for

# Linux only (the test scans /proc); a missing redis-server fails the test, as a missing service fails any test
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scans /proc (Linux)")


def processes_naming(text: str) -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process whose command line contains ``text``."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if text in cmdline and fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


class Lines:
    def __init__(self, proc):
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(line.rstrip("\n") for line in proc.stdout),
                         daemon=True).start()

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))


def _started(bench_factory):
    """``start`` on a bench whose Redis does not answer: it brings its private redis-server, 3 workers and the
    scheduler; returns once they all run, with the pids of everything naming the bench."""
    port = free_port()
    bench = make_bench(bench_factory, common={"redis_queue": f"redis://127.0.0.1:{port}/0"})
    proc = spawn(bench, "start")
    out = Lines(proc)
    try:
        wait_for(lambda: out.count("*** Listening on") == 3 and out.count("started a private redis-server"), 90,
                 "the private redis and three workers", proc)
        wait_for(lambda: len(ours(bench)) >= 5, 30, "the children", proc)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    children = {pid for pid, parent in ours(bench).items() if parent == proc.pid}
    assert len(children) == 5, ours(bench)  # scheduler, 3 workers, redis-server
    return bench, proc, children


def ours(bench: Path) -> dict[int, int]:
    """The bench's processes: those naming it, and the private redis-server (which retitles itself
    ``redis-server 127.0.0.1:PORT``)."""
    url = (bench / ".hookscheduler" / "redis" / "url").read_text().strip()
    return {**processes_naming(str(bench)), **processes_naming(f"redis-server 127.0.0.1:{url.rsplit(':', 1)[1][:-2]}")}


def _no_survivor(bench: Path, children: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = ours(bench)
        if not left:
            return
        time.sleep(0.2)
    left = ours(bench)
    orphans = {pid for pid, parent in left.items() if parent == 1}
    raise AssertionError(f"survivors {left} (orphans of init: {orphans}; children were {children})")


def test_sighup_to_start_stops_every_child_and_the_private_redis(bench_factory):
    bench, proc, children = _started(bench_factory)
    try:
        proc.send_signal(signal.SIGHUP)  # the terminal closed
        status = proc.wait(timeout=60)
        _no_survivor(bench, children, 15)
        assert status == 0  # a clean stop, not death by the signal
    finally:
        _kill_leftovers(bench, proc)
    assert (bench / ".hookscheduler" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_start_killed_outright_takes_its_children_with_it(bench_factory):
    """SIGKILL leaves ``start`` no chance to stop anything: the kernel tells each child (PR_SET_PDEATHSIG)."""
    bench, proc, children = _started(bench_factory)
    try:
        proc.kill()
        proc.wait(timeout=10)
        _no_survivor(bench, children, 40)
    finally:
        _kill_leftovers(bench, proc)


def _kill_leftovers(bench: Path, proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in ours(bench):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_background_workers_sets_the_workers_per_builtin_queue(bench_factory):
    bench = make_bench(bench_factory, migrate=False,
                       common={"background_workers": 2, "workers": {"bulk": {"background_workers": 3}}})
    b = load_bench(bench)
    names = [p.name for p in plan(b, load_sites(b), scheduler=False)]
    assert names == ["worker_short.1", "worker_short.2", "worker_default.1", "worker_default.2", "worker_long.1",
                     "worker_long.2", "worker_bulk.1", "worker_bulk.2", "worker_bulk.3"]
