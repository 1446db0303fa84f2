"""Operator notes: one line of plain text, the same rule for the CLI's ``--note`` and the dashboard's form."""

from __future__ import annotations

import pytest

from hookscheduler.exceptions import BadInput
from hookscheduler.ops.notes import one_line_note


@pytest.mark.parametrize(("given", "stored"), [
    (None, None),
    ("", None),
    (" \t\n ", None),
    ("deploy", "deploy"),
    ("  two\nlines\tand   tabs ", "two lines and tabs"),
    ("naïve — 日本", "naïve — 日本"),
])
def test_whitespace_runs_become_one_space(given: str | None, stored: str | None) -> None:
    assert one_line_note(given, "--note") == stored


@pytest.mark.parametrize("bad", ["a\x1b[31mred", "nul\x00", "bell\x07", "del\x7f"])
def test_other_control_characters_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(BadInput) as err:
        one_line_note(bad, "note")
    message = str(err.value)
    assert message.startswith("note: contains the control character") and "write plain text" in message
    assert "\n" not in message and "\x1b" not in message and "\x00" not in message


def test_a_note_is_at_most_500_characters_for_the_cli_and_the_dashboard() -> None:
    from hookscheduler.ops.notes import MAX_NOTE

    assert MAX_NOTE == 500
    assert one_line_note("é" * 500, "--note") == "é" * 500
    assert one_line_note("x " * 250 + "   \n", "note") == ("x " * 250).strip()  # counted after whitespace folds
    with pytest.raises(BadInput) as err:
        one_line_note("x" * 501, "--note")
    assert str(err.value) == "--note: 501 characters, at most 500 are kept; write a shorter note"
