"""Operator notes (``--note``, the dashboard's note field): one line of plain text."""

from __future__ import annotations

import unicodedata

from ..exceptions import BadInput, shown


def one_line_note(value: str | None, what: str) -> str | None:
    """``value`` with every run of whitespace made one space; ``None`` for no note or an empty one.

    A note is shown inside one-line messages and table cells, so a newline (from a shell's ``$'...'`` or a
    textarea) or a tab becomes a space. Other control characters (escape sequences, NUL, which PostgreSQL
    cannot store) are refused with :class:`BadInput` naming ``what``, rather than silently dropped.
    """
    if value is None:
        return None
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and not c.isspace()), None)
    if bad is not None:
        raise BadInput(f"{what}: contains the control character {shown(bad)}; write plain text")
    return " ".join(value.split()) or None
