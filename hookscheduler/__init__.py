"""hookscheduler: Frappe-style ``scheduler_events`` for any Python app, on Redis + RQ, exactly once per slot.

The public Python API is exported here (the README lists it). The package's layout is the design: see
``docs/architecture.md``.

The exports are imported on first use (PEP 562), not with the package: :mod:`.background.api` and
:mod:`.worker.runner` import RQ and redis-py, and every ``hookscheduler`` command imports this package (for
``__version__``) even when, like ``migrate``, it never touches Redis. No submodule is named like an export, so
``hookscheduler.enqueue`` is always the function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ below imports these on first use
    from .background.api import (
        enqueue,
        enqueue_batches,
        enqueue_doc,
        get_job,
        get_job_status,
        init,
        is_job_enqueued,
    )
    from .exceptions import QueueNotFound
    from .worker.runner import JobContext, job_context

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "enqueue": ".background.api",
    "enqueue_batches": ".background.api",
    "enqueue_doc": ".background.api",
    "get_job": ".background.api",
    "get_job_status": ".background.api",
    "init": ".background.api",
    "is_job_enqueued": ".background.api",
    "QueueNotFound": ".exceptions",
    "JobContext": ".worker.runner",
    "job_context": ".worker.runner",
}

__all__ = [
    "JobContext",
    "QueueNotFound",
    "__version__",
    "enqueue",
    "enqueue_batches",
    "enqueue_doc",
    "get_job",
    "get_job_status",
    "init",
    "is_job_enqueued",
    "job_context",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule the first time the name is used, then keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
