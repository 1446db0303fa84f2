"""Passwords out of every text the project shows: URLs, ``password=`` parameters, JSON-style items and the
passwords the configuration holds.

Secrets never reach any output: every message, listing and JSON document the CLI prints goes through
:func:`redact`, and so does every log record (:mod:`.logs`). A failed job's traceback can quote a message of
megabytes, so redaction runs in linear time: no pattern here can backtrack over a long run of characters (the
URL scan is a hand-written pass over ``://``, the other patterns start at a fixed keyword).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

#: The shortest configured secret replaced wherever it appears: a shorter one would garble ordinary text.
MIN_LITERAL_SECRET = 4

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USER_END = re.compile(r"[:/@\s]")
_WHITESPACE = re.compile(r"\s")
_DIGITS = re.compile(r"\d*")
_HOST = re.compile(r"[^@/\s]*")
# libpq key=value DSNs and URL query parameters (``?password=...``) carry passwords too; any key *ending* in one
# of the words counts (``ssl_password=``, ``rq_password=``), which is why the match starts at the word itself.
_PASSWORD_PARAM = re.compile(r"(?:password|passwd|pwd)\s*=\s*(?P<pw>'[^']*'|[^&\s'\"]*)", re.I)
# ... and so do mappings printed as JSON or Python reprs (a job's kwargs, a config excerpt): "password": "x".
_PASSWORD_ITEM = re.compile(
    r"""(?:password|passwd|pwd)["']\s*:\s*(?P<pw>"[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')""", re.I)

#: A config key whose value is a secret whatever it holds.
SECRET_KEY_NAME = re.compile(r"password|passwd|pwd|secret|encryption_key|token", re.I)

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact ``value`` itself wherever it appears from now on (a configured ``rq_password``, a URL's password):
    a password holding a space or any other character no pattern can delimit is still caught."""
    if value and len(value) >= MIN_LITERAL_SECRET:
        _secrets.add(value)


def register_url_secret(url: str | None) -> None:
    """Register the password of a connection URL, as written and percent-decoded."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password is None and "@" in url and "://" in url:  # unparsable: take what lies between user: and the '@'
        userinfo = url.split("://", 1)[1].rpartition("@")[0]
        password = userinfo.partition(":")[2] or None
    if password:
        register_secret(password)
        register_secret(unquote(password))


def redact(text: str) -> str:
    """Replace every password in ``text`` with ``***``: in URLs (``scheme://user:pw@host``; the password runs to
    the *last* '@' of its word, or of its line when it holds spaces, since over-redacting is the safe side),
    ``password=`` parameters, ``"password": "..."`` items and every configured secret.

    Linear in ``len(text)``: a traceback quoting a 10 MB message is redacted in well under a second.
    """
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return redact_patterns(text)


def redact_patterns(text: str) -> str:
    """:func:`redact` without the configured secrets: only what has the shape of a password (in a URL, a
    ``password=`` parameter, a ``"password": ...`` item). For names and ids that something matches (a job's id on
    the events channel): a configured password of four letters may also be part of a job's name."""
    text = _redact_urls(text)
    text = _PASSWORD_ITEM.sub(lambda m: _masked(m, m["pw"][0] + "***" + m["pw"][0]), text)
    return _PASSWORD_PARAM.sub(lambda m: _masked(m, "***"), text)


def holds_secret(value: Any) -> bool:
    """A password in any form, at any depth of a config's values: a key named like one (``rq_password``, Frappe's
    ``db_password``, ``encryption_key``) with a value, or a string holding one (a URL's ``user:pass@``, a
    ``?password=``). ``doctor`` asks it of a config file open to other users, ``set-config`` of what it writes."""
    if isinstance(value, dict):
        return any((SECRET_KEY_NAME.search(str(k)) is not None and v not in (None, "", False)) or holds_secret(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(holds_secret(v) for v in value)
    return isinstance(value, str) and redact(value) != value


def _masked(match: re.Match[str], replacement: str) -> str:
    return match[0][: match.start("pw") - match.start()] + replacement


class _LastAt:
    """The last '@' of the stretch (a word, a line) around a position, found once per stretch: the URL scan
    asks for every ``://`` of a stretch, and searching the stretch each time would be quadratic."""

    def __init__(self, text: str, end_of: re.Pattern[str] | str) -> None:
        self.text, self.end_of = text, end_of
        self.start = self.end = self.at = -1

    def after(self, pos: int) -> tuple[int, int]:
        """(the last '@' after ``pos`` in its stretch or -1, the stretch's end)."""
        if not self.start <= pos < self.end:
            if isinstance(self.end_of, str):
                end = self.text.find(self.end_of, pos)
            else:
                found = self.end_of.search(self.text, pos)
                end = found.start() if found else -1
            self.start, self.end = pos, len(self.text) if end < 0 else end
            self.at = self.text.rfind("@", pos, self.end)
        return (self.at if self.at > pos else -1), self.end


def _redact_urls(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``, in one pass over the ``://`` marks."""
    parts: list[str] = []
    copied = search = 0
    in_word, in_line = _LastAt(text, _WHITESPACE), _LastAt(text, "\n")
    while (mark := text.find("://", search)) >= 0:
        search = mark + 3
        if mark == 0 or text[mark - 1] not in _SCHEME_CHARS:
            continue
        user_end = _USER_END.search(text, search)
        if user_end is None or user_end[0] != ":":
            continue
        colon = user_end.start()
        at, word_end = in_word.after(colon)
        if at < 0 and _may_hold_spaces(text, colon, word_end):
            at = in_line.after(colon)[0]
        if at < 0:
            continue
        host_end = _HOST.match(text, at + 1).end()  # type: ignore[union-attr]  # [^...]* always matches
        parts += [text[copied:colon + 1], "***@", text[at + 1:host_end]]
        copied = search = host_end
    if not parts:
        return text
    parts.append(text[copied:])
    return "".join(parts)


def _may_hold_spaces(text: str, colon: int, word_end: int) -> bool:
    """Whether ``:...`` up to the end of its word may start a password with a space in it rather than a port
    (all digits) or a path (``host:6379/0``): then its password runs to the last '@' of the line."""
    if word_end >= len(text) or text[word_end] == "\n":
        return False
    digits_end = _DIGITS.match(text, colon + 1).end()  # type: ignore[union-attr]
    return digits_end < word_end and text.find("/", colon + 1, word_end) < 0


#: The most characters of a failure's text kept (in the ledger, in RQ's failed job): the head and the tail.
FAILURE_TEXT_LIMIT = 64 * 1024


def redact_failure(text: str, limit: int = FAILURE_TEXT_LIMIT) -> str:
    """A failure's text (a traceback) as stored: redacted, then cut to its first and last ``limit / 2``
    characters with a note of how much was cut. Redacting before cutting: a cut through a URL could leave the
    head of a password without the '@' that marks it."""
    text = redact(text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"


def url_error(exc: ValueError) -> str:
    """Why a URL did not parse, without quoting it: urllib's port error quotes what it took for the port, which is
    the tail of a password holding an unencoded '/' (``redis://u:pass/word@h``)."""
    text = str(exc)
    if "port" in text.lower():
        return ("its port is not a number from 0 to 65535; percent-encode any '/', '@', ':', '#' or '?' in the "
                "user name or password")
    return redact(re.sub(r"'[^']*'", lambda m: m[0] if len(m[0]) <= 40 and ":" not in m[0] else "'...'", text))
