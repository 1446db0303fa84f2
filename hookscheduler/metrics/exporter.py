"""``hookscheduler metrics``: a standalone Prometheus endpoint for every site of a bench."""

from __future__ import annotations

import signal
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ..listen import listen_failure
from .bench import BenchSites
from .collector import HookschedulerCollector


def registry_for(sites: BenchSites, grace: float = 30.0, **kwargs: Any) -> CollectorRegistry:
    """A registry holding only hookscheduler's collector (no process metrics of the exporter itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HookschedulerCollector(sites, grace=grace, **kwargs))
    return registry


def serve(sites: BenchSites, host: str, port: int, grace: float = 30.0, ready: Any = None) -> None:
    """Serve ``/metrics`` on host:port until SIGTERM or SIGINT. A port in use (or any address that cannot be
    bound) is :class:`~hookscheduler.exceptions.BadInput` naming it, raised before ``ready`` is called."""
    try:
        server, thread = start_http_server(port, addr=host.strip("[]"), registry=registry_for(sites, grace))
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
