"""Text tables: every cell on one line, and inert on a terminal, whatever a job's error or a row holds."""

from __future__ import annotations

from hookscheduler.cli.output import table


def test_a_cell_cannot_break_its_line_nor_send_escape_sequences():
    """A job's error (or a row changed with SQL) can hold a carriage return, an escape sequence or a bidi
    override: printed raw they rewrite, recolour or reorder the lines a person reads."""
    text = table([["nightly", "ValueError: x\r2026-12-07 22:00 INFO FORGED\x1b[2K\u202eevil\n\tok"]],
                 ["job", "error"])
    assert text.splitlines() == [
        "JOB      ERROR",
        "nightly  ValueError: x 2026-12-07 22:00 INFO FORGED\\x1b[2K\\u202eevil  ok",
    ]
    assert all(c.isprintable() for line in text.splitlines() for c in line)


def test_printable_cells_are_shown_as_they_are():
    assert table([["café ✓", "a\\b 'q'"]], ["name", "note"]).splitlines()[1] == "café ✓  a\\b 'q'"
