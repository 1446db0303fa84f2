"""Which ``Host`` headers a server on this machine answers (``dashboard`` and ``metrics``).

A server bound to loopback is reachable only from this machine, but a web page from anywhere can make the
browser talk to it through DNS rebinding (``attacker.example`` resolving to 127.0.0.1): the request then carries
the attacker's name in ``Host``. Answering only the names this machine is known by (plus the bind address
itself and any name the operator allows, for a reverse proxy that passes its public name) stops that. Kept free
of any web framework so the plain ``metrics`` server can use it too.
"""

from __future__ import annotations

import ipaddress
import re

from .exceptions import BadInput, shown

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# a host name (or a "*.example.com" pattern), an IPv4 address or a bracketed IPv6 one: no scheme, port or path
_NAME = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_address(host: str) -> bool:
    """Whether ``host`` is an IP address (``[::1]`` too) rather than a name to resolve."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def loopback_hosts() -> list[str]:
    """The Host header names a loopback-only server accepts (anything else may be DNS rebinding)."""
    return [*LOOPBACK_NAMES, "[::1]"]


def _as_in_host(name: str) -> str:
    """``name`` as a ``Host`` header carries it: lower-cased, an IPv6 address in brackets."""
    bare = name.strip("[]").lower()
    return f"[{bare}]" if ":" in bare else bare


def checked_names(names: tuple[str, ...] | list[str], option: str = "--allow-host") -> list[str]:
    """``names`` as given to ``option``, as a ``Host`` header carries them (lower-cased, a bare IPv6 address in
    brackets), or :class:`BadInput` for one that is not a bare host name (a URL, a port or a path would never
    match a ``Host`` header)."""
    for name in names:
        if not _NAME.fullmatch(name):
            raise BadInput(f"{option} {shown(name)} is not a host name; give the bare name the proxy sends in "
                           "its Host header, without scheme, port or path (e.g. scheduler.example.com)")
    return [_as_in_host(name) for name in names]


def allowed_hosts(host: str, extra: list[str] | tuple[str, ...] = (), bound: str | None = None) -> list[str] | None:
    """The Host names a server listening on ``--host host`` answers. ``bound``: the address it is bound to (the
    socket's ``getsockname()``; default ``host``), which decides whether it is on loopback, as ``--host`` may be
    a name (``--host vm`` resolving to 127.0.1.1). On loopback: the loopback names, ``--host`` itself and the
    bound address (``--host 127.0.0.2`` prints a URL with that name) and ``extra``; beyond loopback, ``extra``,
    ``--host`` and the bound address when any are given, else None (any name: the server is reachable by
    whatever name points at it, and sign-in guards it)."""
    address = host if bound is None else bound
    loopback = is_loopback(address)
    if not loopback and not extra:
        return None
    own = [_as_in_host(host), _as_in_host(address)]
    names = [*loopback_hosts(), *own, *extra] if loopback else [*own, *extra]
    return list(dict.fromkeys(names))


def host_name(header: str | None) -> str | None:
    """The name of a ``Host`` header without its port (``[::1]`` keeps its brackets), or None when malformed."""
    if not header:
        return None
    if header.startswith("["):
        end = header.find("]")
        name, rest = header[:end + 1], header[end + 1:]
        if end < 0 or (rest and not re.fullmatch(r":\d*", rest)):
            return None
        return name.lower()
    name, _, port = header.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name.lower()


def host_ok(header: str | None, allowed: list[str] | None) -> bool:
    """Whether ``header`` names one of ``allowed`` (None: any; ``*.example.com`` matches its subdomains)."""
    if allowed is None:
        return True
    name = host_name(header)
    if name is None:
        return False
    return any(name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])) for pattern in allowed)


__all__ = ["LOOPBACK_NAMES", "allowed_hosts", "checked_names", "host_name", "host_ok", "is_address", "is_loopback",
           "loopback_hosts"]
