"""Reading column values that someone may have written by hand (with SQL, or an old tool).

SQLite keeps whatever it is given: ``UPDATE scheduled_job_type SET stopped = 'false'`` stores the *word* in the
integer column, and Python's ``bool('false')`` is true, so a job its operator meant to run would silently be
skipped. :func:`flag` reads a boolean the way the person who wrote it meant it, and refuses to guess otherwise.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
BOOLEAN_WORDS = _TRUE | _FALSE


def flag(value: Any) -> bool | None:
    """A boolean column's value as stored by anyone: 0/1, true/false, or the words for them in any case;
    None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0 if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    return None


def flag_or_raw(value: Any) -> Any:
    """:func:`flag`'s reading, or the value itself when it is no boolean at all (for the row checks to name)."""
    parsed = flag(value)
    return value if parsed is None else parsed


class FlagField(pw.BooleanField):
    """A boolean column read with :func:`flag`: a word reads as it says; a value that is no boolean at all is
    handed over as it is (for the row checks to name), never turned into ``True``."""

    def python_value(self, value: Any) -> Any:
        return flag_or_raw(value)


__all__ = ["BOOLEAN_WORDS", "FlagField", "flag", "flag_or_raw"]
