"""Rendering listings: an aligned text table for people, stable JSON for scripts (``--format``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from ..security.redact import redact

F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """The ``-f/--format text|json`` option every listing takes (``-f`` as in Frappe's commands)."""
    return click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Output format.")(func)  # type: ignore[return-value]


def one_line_text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback for free text such as ``--note``: see :func:`~hookscheduler.ops.notes.one_line_note`
    (imported here: the commands without such an option, ``migrate`` first, need not import it and dateutil)."""
    from ..ops.notes import one_line_note

    return one_line_note(value, f"--{param.name}")


def to_json(value: Any) -> str:
    return redact(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso_utc(value: datetime | None) -> str | None:
    """Stored naive UTC -> ISO 8601 with an explicit Z."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def local(value: datetime | None, tz: ZoneInfo) -> str:
    """Stored naive UTC -> ``2026-11-22 10:00 CET`` in the site's zone."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):  # a column set by hand to something that is not a time
        return f"invalid: {value!r}"
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    return aware.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def humanize_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """An aligned plain-text table (no box drawing, so it greps and pipes well)."""
    cells = [table_cells(row) for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    return redact("\n".join([header_line(headers, widths), *(table_line(row, widths) for row in cells)]))


def table_cells(row: Sequence[Any]) -> list[str]:
    """A row's values as the table shows them (``-`` for None, one line, at most 80 characters)."""
    return [_cell(c) for c in row]


def header_line(headers: Sequence[str], widths: Sequence[int]) -> str:
    return table_line([h.upper() for h in headers], widths)


def table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line of a table (not redacted: the caller redacts what it prints)."""
    return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()


def json_array_chunks(items: Iterable[Any], per_chunk: int = 500) -> Iterator[str]:
    """``to_json(list(items))`` in pieces of ``per_chunk`` items, redacted, for a listing too long to hold:
    concatenated, the pieces are exactly that text."""
    buffer: list[str] = []
    count = 0
    for item in items:
        body = json.dumps(item, indent=2, default=_json_default, ensure_ascii=False).replace("\n", "\n  ")
        buffer.append(("[\n  " if count == 0 else ",\n  ") + body)
        count += 1
        if len(buffer) >= per_chunk:
            yield redact("".join(buffer))
            buffer = []
    buffer.append("[]" if count == 0 else "\n]")
    yield redact("".join(buffer))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if not text.isprintable():
        text = _printable(text)
    return text if len(text) <= 80 else text[:77] + "..."


def _printable(text: str) -> str:
    """``text`` on one line and inert on a terminal: a line break or a tab becomes a space, any other control
    character (a carriage return is whitespace too; an escape sequence, a bidi override) its escape (``\\x1b``).
    A cell holds what a job's error or a row changed with SQL says, and must not start a line of its own, nor
    rewrite or recolour the lines around it."""
    return "".join(c if c.isprintable() else " " if c.isspace() else repr(c)[1:-1] for c in text)
