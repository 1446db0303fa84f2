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


def loopback_hosts() -> list[str]:
    """The Host header names a loopback-only server accepts (anything else may be DNS rebinding)."""
    return [*LOOPBACK_NAMES, "[::1]"]


def checked_names(names: tuple[str, ...] | list[str], option: str = "--allow-host") -> list[str]:
    """``names`` as given to ``option``, lower-cased, or :class:`BadInput` for one that is not a bare host name
    (a URL, a port or a path would never match a ``Host`` header)."""
    for name in names:
        if not _NAME.fullmatch(name):
            raise BadInput(f"{option} {shown(name)} is not a host name; give the bare name the proxy sends in "
                           "its Host header, without scheme, port or path (e.g. scheduler.example.com)")
    return [name.lower() for name in names]


def allowed_hosts(host: str, extra: list[str] | tuple[str, ...] = ()) -> list[str] | None:
    """The Host names a server bound to ``host`` answers: on loopback the loopback names, the bind address
    itself (``--host 127.0.0.2`` prints a URL with that name) and ``extra``; beyond loopback, ``extra`` and the
    bind address when any are given, else None (any name: the server is reachable by whatever name points at
    it, and sign-in guards it)."""
    if not is_loopback(host) and not extra:
        return None
    bare = host.strip("[]").lower()
    own = [f"[{bare}]" if ":" in bare else bare]
    names = [*loopback_hosts(), *own, *extra] if is_loopback(host) else [*own, *extra]
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


__all__ = ["LOOPBACK_NAMES", "allowed_hosts", "checked_names", "host_name", "host_ok", "is_loopback",
           "loopback_hosts"]
