"""Imports without Python's cyclic collector (a module of its own, importing nothing: it is used before the
command line imports anything else)."""

from __future__ import annotations

import gc


class imports_without_gc:  # used as a context manager, named as one
    """The cyclic collector off while the block imports modules, back as it was after. An import allocates
    (functions, classes, their dicts) and frees next to nothing, yet every few hundred allocations start a
    collection that walks the young objects, and now and then every object: a command's imports (peewee,
    click, the configuration, the store; RQ for a worker) ran about 40 collections, some tenth of their time."""

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()
