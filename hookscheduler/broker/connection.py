"""Connecting to the Redis that RQ uses (``redis_queue``), with ACL credentials and TLS (``rediss://``).

Credentials, highest first: ``--rq-username/--rq-password`` (``worker``), ``$HOOKSCHEDULER_RQ_USERNAME`` /
``..._PASSWORD``, ``rq_username`` / ``rq_password``, then a ``user:password@`` in the URL. redis-py's
``from_url`` lets the URL's own credentials win over keyword arguments, so explicit ones are applied after it:
otherwise a ``--rq-password`` given to fix a stale URL would be silently ignored.

TLS is a ``rediss://`` URL; redis-py reads its options from the query string, which is how the CA and
verification are configured: ``rediss://host:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem`` (verify against that
CA; the default is the system store), ``&ssl_certfile=...&ssl_keyfile=...`` for client certificates,
``&ssl_check_hostname=false`` or ``&ssl_cert_reqs=none`` to relax verification (not recommended).

Connection errors become :class:`ServiceUnavailable` with a one-line hint and the password redacted; a wrong
password is told apart from an unreachable server because the fixes differ.
"""

from __future__ import annotations

from typing import Any

import redis

from ..config import Site
from ..exceptions import ServiceUnavailable
from ..security.redact import redact, url_error

_CACHE: dict[tuple[str, str | None, str | None], redis.Redis] = {}


def redis_for(site: Site, username: str | None = None, password: str | None = None) -> redis.Redis:
    """The (cached) client for a site's ``redis_queue``; explicit credentials beat ``rq_username``/``rq_password``."""
    user = username or site.settings.rq_username
    pwd = password or site.settings.rq_password
    return connect_redis(site.redis_url, user, pwd)


def connect_redis(url: str, username: str | None = None, password: str | None = None) -> redis.Redis:
    key = (url, username, password)
    client = _CACHE.get(key)
    if client is None:
        kwargs: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 30, "health_check_interval": 30}
        if username:
            kwargs["username"] = username
        if password:
            kwargs["password"] = password
        try:
            client = redis.Redis.from_url(url, **kwargs)
        except ValueError as exc:
            raise ServiceUnavailable(f"redis_queue {redact(url)} is not a valid Redis URL ({url_error(exc)})"
                                     ) from None
        client.connection_pool.connection_kwargs.update(
            {k: v for k, v in (("username", username), ("password", password)) if v})
        _CACHE[key] = client
    return client


def check_redis(client: redis.Redis, url: str) -> str:
    """Ping; return the server version or raise a one-line ServiceUnavailable."""
    try:
        info = client.info("server")
    except redis.exceptions.AuthenticationError as exc:
        raise ServiceUnavailable(
            f"Redis at {redact(url)} refused the credentials ({exc}); check rq_username/rq_password"
        ) from None
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) or "NOPERM" in str(exc):
            raise ServiceUnavailable(
                f"Redis at {redact(url)} refused the credentials ({exc}); check rq_username/rq_password"
            ) from None
        raise ServiceUnavailable(f"Redis at {redact(url)}: {exc}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise ServiceUnavailable(
            f"cannot reach Redis at {redact(url)} ({redact(str(exc).splitlines()[0] if str(exc) else 'error')}); "
            "start redis-server or fix redis_queue / $HOOKSCHEDULER_REDIS_URL"
        ) from None
    return str(info.get("redis_version", "?"))


def reply_text(value: bytes | str) -> str:
    """A Redis reply as text (clients made without ``decode_responses`` return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def delete_bench_keys(client: redis.Redis, bench_id: str) -> int:
    """Delete every Redis key of one bench (queues, jobs, registries, heartbeats, marks) and its queues'
    registration in RQ's ``rq:queues`` set; returns how many keys went. For tearing down a bench (tests and
    benchmarks make hundreds): every key hookscheduler and RQ write for a bench carries its ``bench_id``."""
    keys = list(client.scan_iter(match=f"*{bench_id}*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    for member in client.smembers("rq:queues"):  # type: ignore[union-attr]
        if bench_id.encode() in member:
            client.srem("rq:queues", member)
    return len(keys)
