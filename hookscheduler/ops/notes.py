"""What an operator gives beside an action, read once for the CLI and the dashboard: a note (``--note``, the
note field: one line of plain text) and an automatic end (``--until``, the until field)."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from ..context import SiteContext
from ..exceptions import BadInput, shown
from ..timing.moments import parse_until

#: The characters that reorder text on display (Unicode's explicit bidi formatting characters and marks).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: The longest note kept (after whitespace runs become one space): the dashboard's field says the same, but a
#: form can be posted without it, and a note is shown on every jobs page and in one-line messages.
MAX_NOTE = 500


def one_line_note(value: str | None, what: str) -> str | None:
    """``value`` with every run of whitespace made one space; ``None`` for no note or an empty one.

    A note is shown inside one-line messages and table cells, so a newline (from a shell's ``$'...'`` or a
    textarea) or a tab becomes a space. Other control characters (escape sequences, NUL, which PostgreSQL
    cannot store) are refused with :class:`BadInput` naming ``what``, rather than silently dropped; so are the
    bidirectional controls (right-to-left override, isolates, marks: category ``Cf`` with a bidi class), which
    make a note display in an order other than the one stored and can disguise what it says. A note longer
    than :data:`MAX_NOTE` characters is refused too.
    """
    if value is None:
        return None
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and not c.isspace()), None)
    if bad is not None:
        raise BadInput(f"{what}: contains the control character {shown(bad)}; write plain text")
    bidi = next((c for c in value if c in BIDI_CONTROLS), None)
    if bidi is not None:
        raise BadInput(f"{what}: contains the bidirectional control U+{ord(bidi):04X} ({unicodedata.name(bidi)}), "
                       "which would show the note in another order than written; write plain text")
    note = " ".join(value.split())
    if len(note) > MAX_NOTE:
        raise BadInput(f"{what}: {len(note)} characters, at most {MAX_NOTE} are kept; write a shorter note")
    return note or None


def automatic_end(text: str | None, ctx: SiteContext, now: datetime, what: str = "--until") -> datetime | None:
    """The end of a stop or a pause (``jobs disable --until``, ``scheduler pause --until``, the dashboard's until
    field) as naive UTC, read in the site's zone against ``now`` (:func:`~hookscheduler.timing.moments.parse_until`);
    None when none was given."""
    return parse_until(text, now, ctx.site.time_zone, what) if text is not None else None
