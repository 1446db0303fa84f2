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
