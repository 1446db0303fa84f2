"""peewee without psycopg2 until a PostgreSQL database is made: the command line's import of peewee.

peewee imports psycopg2 (and with it libpq, OpenSSL and Python's ``ssl``) when it is imported, whether or not the
process will ever talk to PostgreSQL: about 15-20 ms of every ``hookscheduler`` command, a tenth of what a
SQLite ``migrate`` of 1,000 jobs takes as a process. :func:`import_deferred` imports peewee with psycopg2
hidden (peewee then sees no driver, as on a host without it installed), and arranges for the driver to be given
to peewee the moment a PostgreSQL database object is made (any ``peewee.PostgresqlDatabase``, subclasses
included, whoever makes it: this package's :func:`~hookscheduler.store.database.open_database` or an app's job):
:func:`provide_psycopg2` imports psycopg2 then and sets exactly what peewee's own import would have set (its
module globals and the adapter's transaction constants), so from then on peewee is as if imported normally.

Only the command line calls :func:`import_deferred` (importing :mod:`hookscheduler.cli` does), and it changes
nothing when peewee or psycopg2 is imported already; a process that imports peewee in any other way gets peewee's
own import, unchanged. What such a process cannot do is read ``peewee.psycopg2`` itself before any PostgreSQL
database object exists (it is None until then, as on a host without the driver).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: The modules hidden while peewee is imported.
_HIDDEN = ("psycopg2",)
#: Held while peewee is given the driver (two threads making their first PostgreSQL database at once).
_LOCK = threading.Lock()


class _Hide:
    """A finder (``sys.meta_path``) that makes the import of :data:`_HIDDEN` (and their submodules) fail as if not
    installed. Not an ``importlib.abc.MetaPathFinder``: importing that module costs more than psycopg2 saves."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname.partition(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred)", name=fullname)
        return None


def import_deferred() -> ModuleType:
    """peewee, imported without psycopg2 when neither is imported yet (else as it is)."""
    if "peewee" in sys.modules or any(name in sys.modules for name in _HIDDEN):
        import peewee

        return peewee
    hide = _Hide()
    sys.meta_path.insert(0, hide)
    try:
        import peewee
    finally:
        sys.meta_path.remove(hide)
    if getattr(peewee, "psycopg2", None) is not None:
        return peewee
    if hasattr(peewee, "Psycopg2Adapter"):
        _intercept(peewee)
        return peewee
    # A peewee this module does not know how to hand the driver to later (an older release within the
    # supported range keeps psycopg2 elsewhere): import it again, normally, rather than leave it without psycopg2.
    del sys.modules["peewee"]
    import peewee as reimported

    return reimported


def _intercept(peewee: Any) -> None:
    """Make every new PostgreSQL database object give peewee its driver first (:func:`provide_psycopg2`)."""
    cls = peewee.PostgresqlDatabase
    original = cls.__dict__["init"]

    def init(self: Any, *args: Any, **kwargs: Any) -> Any:
        provide_psycopg2()
        return original(self, *args, **kwargs)

    init.__wrapped__ = original  # type: ignore[attr-defined]
    cls.init = init
    peewee._hs_deferred_psycopg2 = True


def provide_psycopg2() -> bool:
    """Give peewee psycopg2 if its import was deferred (idempotent); whether peewee has psycopg2 now."""
    peewee: Any = sys.modules.get("peewee")
    if peewee is None:
        return False
    if not getattr(peewee, "_hs_deferred_psycopg2", False):
        return peewee.psycopg2 is not None
    with _LOCK:
        if not peewee._hs_deferred_psycopg2:  # another thread did it meanwhile
            return peewee.psycopg2 is not None
        return _provide(peewee)


def _provide(peewee: Any) -> bool:
    try:  # what peewee's import does, in the same order (register_uuid as peewee calls it, once)
        import psycopg2
        from psycopg2 import extensions
        from psycopg2.extras import Json, register_uuid
    except ImportError:  # not installed: peewee stays without it, as its own import would have left it
        _restore(peewee)
        return False
    register_uuid()  # type: ignore[no-untyped-call]
    peewee.psycopg2, peewee.pg_extensions = psycopg2, extensions
    peewee.pg_register_uuid, peewee.Json_pg2 = register_uuid, Json
    adapter = peewee.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN
    _restore(peewee)
    return True


def _restore(peewee: Any) -> None:
    """peewee's own ``PostgresqlDatabase.init`` back in place: nothing of this module is left in the way."""
    cls = peewee.PostgresqlDatabase
    cls.init = cls.__dict__["init"].__wrapped__
    peewee._hs_deferred_psycopg2 = False
