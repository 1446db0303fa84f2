"""``hookscheduler start``: the development supervisor (Frappe's ``bench start``, honcho-style).

It runs, as child processes of one command: the scheduler (``hookscheduler schedule``) and, for every queue,
its own workers (``short``, ``default``, ``long``: ``background_workers`` each, as Frappe's bench runs them,
default 1, so a long job never holds up the short ones; a custom queue of ``workers``: its own
``background_workers``, default 1). Every line a child writes is shown with the child's name in front. Ctrl-C,
SIGTERM or SIGHUP (the terminal closed) stop them all: first a warm shutdown (workers finish their current
job), then, after a grace period, a cold one (RQ kills the work horses), then SIGKILL. The children run in
their own sessions (a Ctrl-C reaches ``start`` only, which stops them in order), so the terminal's signals
never reach them directly: ``start`` forwards them, and on Linux each child also asks the kernel to send it
SIGTERM should ``start`` die without stopping it (SIGKILL, a crash), so no child outlives it. If one child
exits on its own, the others are stopped too and ``start`` exits non-zero (the child's status, or 128 plus the
signal that killed it, as a shell reports it), so a crash is never hidden behind a still-running terminal.

One ``start`` per bench: it holds an exclusive lock (``flock``) on ``<bench>/.hookscheduler/start.lock`` for its
whole life, and a second ``start`` on the same bench refuses with one line naming the PID that holds it (two
would run two schedulers and two sets of workers on one database, and, with a private Redis, a second server
that rewrites the first one's config and URL files). The operating system releases the lock when the holder
exits, however it exits, so a ``start`` killed outright leaves no stale lock behind.

Redis: if none answers at the configured ``redis_queue`` and ``redis-server`` is on ``PATH``, a private one
is started on a free local port with its own data directory (``<bench>/.hookscheduler/redis``, owner-only),
announced, handed to the children through ``$HOOKSCHEDULER_REDIS_URL``, and stopped last. ``.hookscheduler/``
holds a ``.gitignore`` of ``*``, so a bench kept in git never commits it. It asks for a
password made for it (another local user must not reach the bench's queues through a loopback port): the
password is in its config file and its URL file in that directory, both owner-only, never on a command line
(``ps`` shows those to every user) and never printed. Without ``redis-server`` the
command fails with one line saying how to get Redis. This is for development; production runs the
``schedule`` and ``worker`` commands under systemd, supervisord or Kubernetes.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from ..broker.connection import check_redis, connect_redis, redis_for
from ..config import Bench, Site
from ..exceptions import HookSchedulerError, ServiceUnavailable
from ..security.redact import redact
from ..worker.process import bench_queues

STOP_GRACE = 10.0  # seconds a warm shutdown may take before the workers are told to kill their horses


@dataclass(frozen=True)
class Proc:
    """One child process: a name for its log prefix, and its command line."""

    name: str
    argv: list[str]


def plan(bench: Bench, sites: list[Site], scheduler: bool = True, site: str | None = None,
         python: str = sys.executable) -> list[Proc]:
    """The children of ``start``: the scheduler (unless ``scheduler`` is False) and the workers."""
    base = [python, "-m", "hookscheduler", "--bench", str(bench.path)]
    procs = []
    if scheduler:
        procs.append(Proc("scheduler", [*base, *(["--site", site] if site else []), "schedule", "--verbose"]))
    specs: dict[str, dict[str, int]] = {}
    for s in sites:
        for name, spec in s.settings.workers.items():
            specs.setdefault(name, dict(spec))
    builtin = max(s.settings.background_workers for s in sites) if sites else 1
    for name in bench_queues(sites):
        count = int(specs.get(name, {}).get("background_workers", builtin))
        for i in range(count):
            label = f"worker_{name}" + (f".{i + 1}" if count > 1 else "")
            procs.append(Proc(label, [*base, "worker", "--queue", name]))
    return procs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_redis(site: Site, data_dir: Path,
                 say: Callable[[str], None]) -> tuple[str | None, subprocess.Popen[str] | None]:
    """(None, None) when Redis answers at ``redis_queue``; else start a private redis-server and return its
    URL and process; raise ServiceUnavailable when there is no redis-server to start."""
    try:
        check_redis(redis_for(site), site.redis_url)
        return None, None
    except ServiceUnavailable as exc:
        if "credentials" in str(exc):
            raise  # Redis is there, the credentials are wrong: a private server would hide that
        reason = str(exc)
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable(
            f"{reason.split(';')[0]}, and redis-server is not on PATH to start a private one; install Redis "
            "(e.g. `apt install redis-server` or `brew install redis`) or point redis_queue / "
            "$HOOKSCHEDULER_REDIS_URL at a running server")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore_folder(data_dir.parent)
    data_dir.chmod(0o700)  # made by an older version, or by hand: it holds the password now
    password = secrets.token_urlsafe(24)  # URL-safe: no quoting needed in the URL or the config file
    conf = _owner_only(data_dir / "redis.conf",
                       f"port {port}\nbind 127.0.0.1\ndir {json.dumps(str(data_dir))}\ndaemonize no\n"
                       f"protected-mode yes\nrequirepass {password}\n")
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    url_file = _owner_only(data_dir / "url", url + "\n")
    proc = spawn([server, str(conf)])
    deadline = time.monotonic() + 15
    client = connect_redis(url)
    while True:
        try:
            client.ping()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.communicate()[0] or ""
                raise ServiceUnavailable(f"could not start a private redis-server on port {port}: "
                                         f"{out.strip().splitlines()[-1] if out.strip() else 'no output'}") from None
            time.sleep(0.05)
    say(f"no Redis at {redact(site.redis_url)}: started a private redis-server at {redact(url)} (data in "
        f"{data_dir}); it stops with this command. To use it from another shell: "
        f"export HOOKSCHEDULER_REDIS_URL=$(cat {shlex.quote(str(url_file))})")
    return url, proc


def ignore_folder(folder: Path) -> None:
    """Make ``folder`` (the bench's ``.hookscheduler/``) ignore itself in git: it holds a password and data."""
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# made by hookscheduler start: runtime files (a private Redis), never committed\n*\n")


#: The lock file that makes ``start`` one per bench, in the bench's ``.hookscheduler/``.
LOCK_FILE = "start.lock"


class AlreadyRunning(HookSchedulerError):
    """Another ``hookscheduler start`` holds the bench's lock."""


def hold_start_lock(folder: Path) -> int:
    """Take the bench's ``start`` lock in ``folder`` (``<bench>/.hookscheduler``) and write this PID into it; the
    lock's file descriptor, to close at exit (the OS releases the lock with it, or when the process dies).
    Raise :class:`AlreadyRunning`, naming the holder's PID, when another process holds it. The file stays: it
    is the lock, and removing it would let a third ``start`` lock a new file while the second still holds the
    old one."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore_folder(folder)
    path = folder / LOCK_FILE
    try:  # not inherited by the children: a child that outlived ``start`` must not keep the bench locked
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise AlreadyRunning(f"cannot open {path}: {exc.strerror}; is another user running hookscheduler start "
                             "on this bench?") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        raise AlreadyRunning(
            f"hookscheduler start is already running for this bench (pid {holder or 'unknown'}, holding {path}); "
            "stop it first (one start per bench: two would run two schedulers and two sets of workers)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up in the parent: a child between fork and exec must not ``dlopen`` (another
    thread of the parent may have held the loader's lock at the fork)."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return cast(Callable[..., int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):  # no usable libc: the signal handlers of ``start`` still stop the children
        return None


def _die_with_parent(prctl: Callable[..., int]) -> Callable[[], None]:
    """For a child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux's parent-death signal)."""

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return preexec


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A child in its own session, output piped for the prefixer, stopped by the kernel if ``start`` dies."""
    prctl = _prctl()
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, preexec_fn=_die_with_parent(prctl) if prctl else None)


def _owner_only(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (created so: never briefly world-readable)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


@dataclass
class Supervisor:
    """Runs processes, prefixes their output, and stops them all together."""

    procs: list[Proc]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    stop_grace: float = STOP_GRACE
    extra: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)  # e.g. a private redis
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)

    def say(self, text: str, name: str = "system") -> None:
        width = max([len(p.name) for p in self.procs] + [len(n) for n, _ in self.extra] + [6])
        with self._lock:
            try:
                self.out.write(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {redact(text)}\n")
                self.out.flush()
            except (OSError, ValueError):  # the terminal is gone (SIGHUP): stopping the children matters more
                pass

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self.say(line.rstrip("\n"), name)

    def _watch(self, name: str, proc: subprocess.Popen[str]) -> None:
        if proc.stdout is not None:
            threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True).start()

    def run(self) -> int:
        """Start everything, wait for a stop request or a child's exit, stop everything; the exit status."""
        restore = self._install_signals()
        for name, proc in self.extra:
            self._watch(name, proc)
        try:
            for p in self.procs:
                proc = spawn(p.argv, self.env)
                self._running.append((p.name, proc))
                self._watch(p.name, proc)
                self.say(f"started {p.name} (pid {proc.pid}): {' '.join(p.argv[1:])}")
            status = 0
            while not self.stop_event.wait(0.2):
                exited = [(n, pr) for n, pr in self._running if pr.poll() is not None]
                if exited:
                    name, proc = exited[0]
                    self.say(f"{name} {ended(proc.returncode)}; stopping the others")
                    status = exit_status(proc.returncode)
                    break
            return status
        finally:
            self.stop_all()
            restore()

    def stop(self) -> None:
        self.stop_event.set()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: object) -> None:
            if self.stop_event.is_set():  # a second Ctrl-C: do not wait for the current jobs
                self.stop_grace = 0
            self.say(f"{signal.Signals(signum).name} received, stopping")
            self.stop_event.set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def stop_all(self) -> None:
        """Warm stop (SIGTERM), then cold (a second SIGTERM: RQ kills the horses), then SIGKILL; the private
        Redis last, so the workers can finish talking to it."""
        _signal_all(self._running, signal.SIGTERM)
        if not _wait_all(self._running, self.stop_grace):
            self.say("still running after the grace period: cold shutdown")
            _signal_all(self._running, signal.SIGTERM)
            if not _wait_all(self._running, 5.0):
                _signal_all(self._running, signal.SIGKILL, group=True)
                _wait_all(self._running, 5.0)
        for name, proc in self._running:
            if proc.returncode is not None:
                self.say(f"{name} stopped: {ended(proc.returncode)}")
        _signal_all(self.extra, signal.SIGTERM)
        if not _wait_all(self.extra, 10.0):
            _signal_all(self.extra, signal.SIGKILL, group=True)
            _wait_all(self.extra, 5.0)


def ended(returncode: int) -> str:
    """Pure: how a child ended, from its ``Popen.returncode`` (negative: the signal that killed it)."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"killed by signal {-returncode}, {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def exit_status(returncode: int) -> int:
    """Pure: the status ``start`` exits with when a child ended on its own: the child's, or 128 plus the signal
    that killed it (as a shell reports it: 137 for SIGKILL; a negative code would reach the OS as 256 minus the
    signal), and 1 for a child that exited 0 (a child ending on its own is never a success of ``start``)."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


def _signal_all(procs: list[tuple[str, subprocess.Popen[str]]], sig: signal.Signals, group: bool = False) -> None:
    for _, proc in procs:
        if proc.poll() is None:
            try:
                if group:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            except ProcessLookupError:
                pass


def _wait_all(procs: list[tuple[str, subprocess.Popen[str]]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for _, proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def start(bench: Bench, sites: list[Site], scheduler: bool = True, site: str | None = None,
          out: IO[str] | None = None) -> int:
    """``hookscheduler start``: the bench's lock, Redis (found or private), then the scheduler and the workers,
    until stopped."""
    lock = hold_start_lock(bench.path / ".hookscheduler")
    try:
        sup = Supervisor(plan(bench, sites, scheduler=scheduler, site=site), out=out or sys.stdout)
        url, redis_proc = ensure_redis(sites[0], bench.path / ".hookscheduler" / "redis", sup.say)
        if redis_proc is not None and url is not None:
            sup.extra.append(("redis", redis_proc))
            sup.env["HOOKSCHEDULER_REDIS_URL"] = url
        sup.env["HOOKSCHEDULER_BENCH"] = str(bench.path)
        sup.env.setdefault("PYTHONUNBUFFERED", "1")
        return sup.run()
    finally:
        os.close(lock)
