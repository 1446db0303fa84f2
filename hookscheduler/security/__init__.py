"""Keeping secrets out of output: redaction, the process-wide log record factory, and file permissions.

* :mod:`.redact`: ``redact`` (every password in a text) and ``url_error`` (a URL's parse error, unquoted);
* :mod:`.logs`: the log record factory that redacts every record of every logger;
* :mod:`.secret_file`: a password read from a file instead of the command line (``worker --rq-password-file``);
* :mod:`.permissions`: which of a site's files hold secrets but are open to other users (``doctor``).
"""

__all__ = ["logs", "permissions", "redact", "secret_file"]
