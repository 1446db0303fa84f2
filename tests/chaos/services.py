"""Private services for a chaos run: a redis-server and a PostgreSQL cluster of our own, on free ports.

They are ours to restart (the machine's shared Redis and PostgreSQL serve other engineers' tests, and are never
touched). PostgreSQL refuses to run as root, so when we are root the cluster is created and driven as the
``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg2
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """``redis-server`` with an RDB file: a restart (``SHUTDOWN SAVE``, start again) keeps the data, as a
    production Redis with persistence does."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--dbfilename", "dump.rdb", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "redis.log", "ab"))  # noqa: SIM115
        for _ in range(200):
            try:
                if self.client().ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.02)
        raise RuntimeError("private redis-server did not start")

    def stop(self, save: bool = True) -> None:
        if self.proc is None:
            return
        if save:  # what SHUTDOWN SAVE does, without waiting on the closed connection
            with contextlib.suppress(redis.exceptions.RedisError):
                self.client().save()
        self.proc.terminate()  # --save "": SIGTERM exits without saving again
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop(save=True)
        self.start()


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port, trust auth, fsync off."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "pg"
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/chaos"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def _opts(self) -> str:
        return (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE chaos")
        conn.close()

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts(), "-l", str(self.root / "pg.log"), "-w", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.start()

    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="chaos")

    def destroy(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
