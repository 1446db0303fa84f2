"""Reading a password from a file (``worker --rq-password-file``): a secret on the command line is visible to
every user of the host in ``ps`` and ``/proc/<pid>/cmdline``; a file readable by its owner only is not."""

from __future__ import annotations

from pathlib import Path

from ..exceptions import BadInput
from .redact import register_secret


def read_secret_file(path: str, option: str) -> str:
    """The first line of ``path`` without its line ending, registered for redaction; a clear error naming
    ``option`` when the file cannot be read or holds no password."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise BadInput(f"{option} {path}: cannot be read ({type(exc).__name__}: {why}); "
                       "give a readable file holding the password on its first line") from None
    lines = text.splitlines()
    secret = lines[0].rstrip("\r") if lines else ""
    if not secret:
        raise BadInput(f"{option} {path}: the first line is empty; write the password on it")
    register_secret(secret)
    return secret
