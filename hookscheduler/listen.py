"""The listening socket of ``dashboard`` and ``metrics``, and the one-line error for each way binding it fails.

A port already taken, a privileged port or a ``--host`` that is not this machine's is a mistake in the command
line, not a bug: it gets one line naming the address and the option to change (exit 2), instead of an
"internal error" or a server's own log line. The dashboard binds the socket here, before it says where it
listens, and hands it to the server: nothing can take the port between a check and the bind.
"""

from __future__ import annotations

import errno
import os
import socket

from .exceptions import BadInput, shown


def listening_socket(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to host:port and listening (port 0: a free port, see ``getsockname()``), or
    :class:`BadInput` saying why it cannot be."""
    bare = host.strip("[]")  # "[::1]" as in a URL
    try:
        family, kind, proto, _, address = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise BadInput(f"{what}: --host {shown(host)} is not a known host name or address; "
                       "choose another --host (e.g. 127.0.0.1)") from None
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # on Windows the option would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart within TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise listen_failure(exc, host, port, what) from None
    sock.set_inheritable(True)
    return sock


def listen_failure(exc: OSError, host: str, port: int, what: str) -> BadInput:
    """The one-line error for ``exc``, raised while binding host:port for ``what`` (a command's name)."""
    bare = host.strip("[]")
    where = f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"
    if isinstance(exc, socket.gaierror):
        return BadInput(f"{what}: --host {shown(host)} is not a known host name or address; "
                        "choose another --host (e.g. 127.0.0.1)")
    if exc.errno == errno.EADDRINUSE:
        return BadInput(f"{what}: {where} is already in use (another process listens there); "
                        "choose another --port")
    if exc.errno == errno.EACCES:
        return BadInput(f"{what}: not allowed to listen on {where} (ports below 1024 need privileges); "
                        "choose a --port from 1024 up")
    if exc.errno == errno.EADDRNOTAVAIL:
        return BadInput(f"{what}: cannot listen on {where}: {shown(host)} is not an address of this machine; "
                        "choose another --host")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return BadInput(f"{what}: cannot listen on {where}: {reason}; check --host and --port")


__all__ = ["listen_failure", "listening_socket"]
