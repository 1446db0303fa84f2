"""``hookscheduler metrics``: a standalone Prometheus endpoint for every site of a bench."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from ..hosts import host_ok
from ..listen import listen_failure
from .bench import BenchSites
from .collector import HookschedulerCollector


def registry_for(sites: BenchSites, grace: float = 30.0, **kwargs: Any) -> CollectorRegistry:
    """A registry holding only hookscheduler's collector (no process metrics of the exporter itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HookschedulerCollector(sites, grace=grace, **kwargs))
    return registry


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def host_checked(app: WSGIApp, allowed: list[str] | None) -> WSGIApp:
    """``app`` answering only requests whose Host header names one of ``allowed`` (None: any), else 400 as the
    dashboard: on a loopback bind this stops a DNS-rebinding page from reading the metrics."""

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not host_ok(environ.get("HTTP_HOST"), allowed):
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Invalid host header"]
        return app(environ, start_response)

    return checked


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log line per scrape."""


def _start(host: str, port: int, app_for: Callable[[str], WSGIApp]) -> tuple[WSGIServer, threading.Thread]:
    """A threaded WSGI server on host:port (IPv4 or IPv6 as ``host`` resolves) serving ``app_for(address)``, the
    app for the address it was bound to, in a daemon thread. Raises :class:`OSError` when it cannot bind."""
    family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(host.strip("[]"), port, _refuse_all, Server, handler_class=_Quiet)
    server.set_app(app_for(str(server.server_address[0])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _refuse_all(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The app of a server until its own is set (it serves nothing before)."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"starting"]


def serve(sites: BenchSites, host: str, port: int, grace: float = 30.0, ready: Any = None,
          allowed_hosts: Callable[[str], list[str] | None] | None = None) -> None:
    """Serve ``/metrics`` on host:port until SIGTERM or SIGINT, answering only the Host names
    ``allowed_hosts(address)`` gives for the address ``host`` was bound to (None: any; a name such as
    ``--host vm`` may resolve to loopback). A port in use (or any address that cannot be bound) is
    :class:`~hookscheduler.exceptions.BadInput` naming it, raised before ``ready`` is called."""
    app = make_wsgi_app(registry_for(sites, grace))
    try:
        server, thread = _start(host, port,
                                lambda address: host_checked(app, allowed_hosts(address) if allowed_hosts else None))
    except OSError as exc:  # socket.gaierror included: a --host that does not resolve
        sites.close()
        raise listen_failure(exc, host, port, "metrics") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if ready is not None:
        ready(server.server_address)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        sites.close()


__all__ = ["registry_for", "serve"]
