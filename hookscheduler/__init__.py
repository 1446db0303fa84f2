"""hookscheduler: Frappe-style ``scheduler_events`` for any Python app, on Redis + RQ, exactly once per slot.

Public API (DESIGN §7) is exported here; see the README for the guarantees.

The exports are imported on first use (PEP 562), not with the package: ``enqueue`` and ``runner`` import RQ
and redis-py, and every ``hookscheduler`` command imports this package (for ``__version__``) even when, like
``migrate``, it never touches Redis. ``from hookscheduler import enqueue`` and ``hookscheduler.enqueue(...)``
work as before.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ below imports these on first use
    from .enqueue import (
        enqueue,
        enqueue_batches,
        enqueue_doc,
        get_job,
        get_job_status,
        init,
        is_job_enqueued,
    )
    from .exceptions import QueueNotFound
    from .runner import JobContext, job_context

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "enqueue": ".enqueue",
    "enqueue_batches": ".enqueue",
    "enqueue_doc": ".enqueue",
    "get_job": ".enqueue",
    "get_job_status": ".enqueue",
    "init": ".enqueue",
    "is_job_enqueued": ".enqueue",
    "QueueNotFound": ".exceptions",
    "JobContext": ".runner",
    "job_context": ".runner",
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


class _Package(types.ModuleType):
    """This package's module type: the function ``enqueue`` keeps its name over the submodule ``enqueue``.

    Importing a submodule binds it as an attribute of its package, after the submodule has run. Eagerly, the
    package bound the function afterwards and the function won; lazily, any ``from .enqueue import ...``
    (``hookscheduler worker`` does one) before the first use of the function would leave
    ``hookscheduler.enqueue`` naming the module, and ``from hookscheduler import enqueue`` would return a
    module. So that binding is skipped: the submodule stays in ``sys.modules``, where imports find it.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
