"""A private ``redis-server`` for the security tests: on a free port, with an ACL user and (optionally) TLS with a
throwaway CA made by ``openssl`` in a temp folder. The shared Redis on 6379 is never reconfigured."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

ACL_USER = "hs_acl_user"
ACL_PASSWORD = "Acl-pw_7f3e!x"  # a throwaway test secret; the tests grep every output for it


@dataclass
class PrivateRedis:
    port: int
    tls: bool
    ca: Path | None
    proc: subprocess.Popen[bytes]

    def url(self, with_ca: bool = True, db: int = 0) -> str:
        if not self.tls:
            return f"redis://127.0.0.1:{self.port}/{db}"
        query = f"?ssl_ca_certs={self.ca}" if with_ca else ""
        return f"rediss://127.0.0.1:{self.port}/{db}{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url(), username=ACL_USER, password=ACL_PASSWORD)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=hookscheduler test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
         str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def tls_supported() -> bool:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    ldd = subprocess.run(["ldd", shutil.which("redis-server") or "redis-server"], capture_output=True, text=True,
                         timeout=10).stdout
    return "libssl" in ldd or "tls" in out.lower()


@contextlib.contextmanager
def private_redis(folder: Path, tls: bool = False) -> Iterator[PrivateRedis]:
    """Start redis-server with the default user off and one ACL user; stop it (by its pid) afterwards."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    acl = folder / "users.acl"
    acl.write_text(f"user default off\nuser {ACL_USER} on >{ACL_PASSWORD} ~* &* +@all\n")
    args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder),
            "--aclfile", str(acl), "--logfile", str(folder / "redis.log")]
    ca = None
    if tls:
        ca, cert, key = make_certs(folder / "certs")
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
    else:
        args += ["--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PrivateRedis(port, tls, ca, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ready(server: PrivateRedis) -> None:
    """Server start-up, not a scheduling slot: poll until it answers (at most 20 s)."""
    deadline = time.monotonic() + 20
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.proc.returncode}")
        try:
            server.admin().ping()
            return
        except redis.exceptions.RedisError as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"private redis-server did not answer: {last}")
