"""Passwords out of every text the project shows: URLs, ``password=`` parameters and JSON-style items.

Secrets never reach any output: every message, listing and JSON document the CLI prints goes through
:func:`redact`, and so does every log record (:mod:`.logs`).
"""

from __future__ import annotations

import re

# The password runs to the *last* '@' before whitespace: an unencoded '@' or '/' in a password (a URL that does
# not even parse, so it ends up in an error message) must not leak its tail. Over-redacting is the safe side.
_PASSWORD_IN_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S*)@(?P<host>[^@/\s]*)", re.I
)
# libpq key=value DSNs and URL query parameters (``?password=...``) carry passwords too.
# ``ssl_password=`` (a TLS key's passphrase in a rediss:// URL) and ``rq_password=`` count too.
_PASSWORD_PARAM = re.compile(
    r"(?P<key>\b\w*?(?:password|passwd|pwd)\s*=\s*)(?P<pw>'[^']*'|[^&\s'\"]*)", re.I)


# ... and so do mappings printed as JSON or Python reprs (a job's kwargs, a config excerpt): "password": "x".
_PASSWORD_ITEM = re.compile(
    r"""(?P<key>["']\w*?(?:password|passwd|pwd)["']\s*:\s*)(?P<pw>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.I)


def redact(text: str) -> str:
    """Replace every password in URLs and ``password=`` parameters in ``text`` with ``***``.

    Secrets never reach any output: every message, listing and JSON document the CLI prints goes through here.
    """
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@{m['host']}", text)
    text = _PASSWORD_ITEM.sub(lambda m: f"{m['key']}{m['pw'][0]}***{m['pw'][0]}", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}***", text)


def url_error(exc: ValueError) -> str:
    """Why a URL did not parse, without quoting it: urllib's port error quotes what it took for the port, which is
    the tail of a password holding an unencoded '/' (``redis://u:pass/word@h``)."""
    text = str(exc)
    if "port" in text.lower():
        return ("its port is not a number from 0 to 65535; percent-encode any '/', '@', ':', '#' or '?' in the "
                "user name or password")
    return redact(re.sub(r"'[^']*'", lambda m: m[0] if len(m[0]) <= 40 and ":" not in m[0] else "'...'", text))
