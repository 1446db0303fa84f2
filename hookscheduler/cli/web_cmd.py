"""``dashboard`` and ``metrics``: the web dashboard and the standalone Prometheus endpoint."""

from __future__ import annotations

import getpass
import logging
import sys

import click

from ..exceptions import BadInput, shown
from ..listen import listening_socket
from .base import CliState, cli, echo, pass_state, stderr


def _need_web() -> None:
    try:
        import jinja2  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise BadInput(f"the dashboard needs the web extra ({exc.name} is missing): "
                       "pip install 'hookscheduler[web]'") from None


@cli.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but "
              "loopback needs --auth-file.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--auth-file", type=click.Path(dir_okay=False), help="JSON file of users, roles and password "
              "hashes (docs/dashboard.md); required beyond localhost.")
@click.option("--live", type=click.IntRange(0, 3600), default=5, show_default=True,
              help="Seconds between live refreshes of a page (0: off).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME", help="Also answer requests "
              "whose Host header is NAME (a reverse proxy's public name); repeatable.")
@click.option("--forwarded-allow-ips", metavar="IPS", help="Behind a reverse proxy: take the client's address "
              "(and scheme) from X-Forwarded-For/-Proto when the request comes from one of these comma-separated "
              "addresses or networks (the proxy's). Off by default: any local client could name any address.")
@click.option("--no-token", is_flag=True, help="Without --auth-file, serve without the access token: any "
              "local user of this machine can then act as you (docs/dashboard.md).")
@click.option("--hash-password", is_flag=True, help="Read a password (prompt or stdin) and print its hash for "
              "the auth file, then exit.")
@pass_state
def dashboard_cmd(state: CliState, host: str, port: int, auth_file: str | None, live: int,
                  allow_hosts: tuple[str, ...], forwarded_allow_ips: str | None, no_token: bool,
                  hash_password: bool) -> None:
    """The web dashboard: jobs, timelines, explain, missed and failed runs, scheduler, queues, workers, RQ
    jobs, and /metrics. Localhost only unless --auth-file; without it, open the URL it prints (it holds an
    access token made at each start)."""
    if hash_password:
        from ..web.auth import hash_password as make_hash

        echo(make_hash(_read_new_password()))
        return
    _need_web()
    import uvicorn

    from ..hosts import allowed_hosts, checked_names, is_address
    from ..web.access import new_token
    from ..web.app import create_app
    from ..web.auth import load_auth
    from ..web.security import check_bind

    extra = checked_names(allow_hosts)
    proxies = _proxies(forwarded_allow_ips)
    auth = load_auth(auth_file) if auth_file else None
    if is_address(host):
        check_bind(host, auth)  # refused before binding it; a name is judged once bound, by its address
    logging.getLogger("hookscheduler.web.audit").setLevel(logging.INFO)
    # Without sign-in, the access token is what keeps the other users of this machine out (loopback does not).
    token = None if auth or no_token else new_token()
    # Bound here, before the line that says where the dashboard is, and handed to uvicorn: a port in use is one
    # line naming it (exit 2), not "dashboard on ..." followed by uvicorn's own error and exit 3.
    sock = listening_socket(host, port, "dashboard")
    try:
        address, bound = sock.getsockname()[:2]  # what --host resolved to; the real port when --port 0
        check_bind(host, auth, address)
        # cookies are not scoped by port: a second dashboard on this host would overwrite the first's session
        app = create_app(state.bench, state.site, auth=auth, live_seconds=live, token=token,
                         allowed_hosts=allowed_hosts(host, extra, address),
                         session_cookie=f"hookscheduler_session_{bound}")
        shown_host = f"[{host.strip('[]')}]" if ":" in host else host
        how = "sign-in required" if auth else "localhost, no sign-in, no token: any local user can act as you" \
            if no_token else "localhost, open this URL: it holds the access token"
        echo(f"dashboard on http://{shown_host}:{bound}/{f'?token={token}' if token else ''} ({how})")
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: on loopback every client could then choose the
        # address the log shows for its sign-ins and changes
        config = uvicorn.Config(app, host=host, port=bound, log_level="warning", server_header=False,
                                proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it stopped on: a clean stop, as uvicorn.run has it
        pass
    finally:
        sock.close()


def _proxies(ips: str | None) -> list[str]:
    """``--forwarded-allow-ips``: comma-separated addresses or networks, or ``*``; BadInput for anything else."""
    import ipaddress

    if ips is None:
        return []
    items = [item.strip() for item in ips.split(",") if item.strip()]
    for item in items:
        try:
            if item != "*":
                ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise BadInput(f"--forwarded-allow-ips: {shown(item)} is not an IP address or network; give the reverse "
                           "proxy's addresses, comma-separated (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    if not items:
        raise BadInput("--forwarded-allow-ips is empty; give the reverse proxy's addresses (e.g. 127.0.0.1)")
    return items


@cli.command("metrics")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True)
@click.option("--grace", type=click.FloatRange(0, 3600), default=30.0, show_default=True,
              help="Seconds a ledger row waits before it is counted (see docs/metrics.md).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME", help="Also answer requests "
              "whose Host header is NAME (a reverse proxy's public name); repeatable.")
@pass_state
def metrics_cmd(state: CliState, host: str, port: int, grace: float, allow_hosts: tuple[str, ...]) -> None:
    """Serve Prometheus metrics for every site of the bench (or --site) at /metrics. No sign-in: keep it on
    loopback, or behind a proxy that authenticates."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise BadInput("metrics need prometheus_client: pip install 'hookscheduler[web]'") from None
    from ..hosts import allowed_hosts, checked_names, is_loopback
    from ..metrics.bench import BenchSites
    from ..metrics.exporter import serve

    extra = checked_names(allow_hosts)
    sites = BenchSites(state.bench, state.site)

    def ready(addr: tuple[str, int]) -> None:
        shown_host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        echo(f"metrics on http://{shown_host}:{addr[1]}/metrics (sites: {', '.join(sites.names)})")
        if not is_loopback(addr[0]):  # the address bound, not the name given: --host vm may be loopback
            stderr(f"warning: metrics on {host} has no sign-in: anyone who can reach port {addr[1]} reads every "
                   "site's job names and run counts; listen on 127.0.0.1 behind a proxy with auth and TLS, or "
                   "scrape the dashboard's /metrics with --auth-file (HTTP basic auth)")

    serve(sites, host, port, grace, ready=ready, allowed_hosts=lambda address: allowed_hosts(host, extra, address))


def _read_new_password() -> str:
    """The password to hash: asked twice on a terminal (a typo there, unseen, would lock the user out),
    one line from stdin otherwise (a script passes it once)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if password and getpass.getpass("Password again: ") != password:
            raise BadInput("--hash-password: the two passwords differ; nothing printed, run it again")
    if not password:
        raise BadInput("--hash-password: the password is empty")
    return password
