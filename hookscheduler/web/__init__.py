"""The web dashboard (``hookscheduler dashboard``), an ASGI app: :func:`create_app`.

Needs the ``web`` extra: ``pip install 'hookscheduler[web]'`` (Starlette, Jinja2, uvicorn, prometheus_client,
cron-descriptor). See ``docs/dashboard.md``.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`hookscheduler.web.app.create_app` (imported on first use)."""
    from .app import create_app as make

    return make(*args, **kwargs)


__all__ = ["create_app"]
