"""Redaction: linear in the text's length (a failed job's message may be megabytes), passwords with any
character, configured secrets redacted wherever they appear, failure texts clipped after redaction."""

from __future__ import annotations

import time

import pytest

from hookscheduler.config.settings import Settings
from hookscheduler.security import redact as redact_module
from hookscheduler.security.redact import FAILURE_TEXT_LIMIT, redact, redact_failure, register_secret

# texts that made the earlier patterns backtrack (quadratic or worse): long runs of URL-safe characters,
# many '://' marks in one word, keys without values
PATHOLOGICAL = {
    "word run": "a" * 2_000_000,
    "url-safe run": "aZ0-._~+" * 250_000,
    "scheme marks": "a://" * 500_000,
    "users without host": "a://b:" * 330_000,
    "key word run": "x" * 1_000_000 + "password=",
    "unclosed values": "password='" * 200_000,
    "unclosed items": "'password': '" * 150_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_redaction_is_linear_on_two_megabytes(name):
    text = PATHOLOGICAL[name]
    started = time.perf_counter()
    redact(text)
    # linear: about 0.3 s at most on a loaded machine; the quadratic patterns took minutes on these
    assert time.perf_counter() - started < 5, name


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("redis://u:s3cret@host:6379/0", "s3cret"),
        ("cannot reach postgresql://app:pa ss word@db.internal/x: timeout", "pa ss word"),
        ("redis://:p@ss/w@rd@cache:6379/0 x", "ss/w"),
        ("dsn host=x password=hunter2 port=5432", "hunter2"),
        ("postgresql://h/db?sslmode=require&password=q1w2e3", "q1w2e3"),
        ('{"db_password": "a\\"b c"}', "b c"),
        ("'rq_password': 'zz top'", "zz top"),
        ("ssl_PassWord = 'with space'", "with space"),
    ],
)
def test_passwords_are_redacted(text, secret):
    assert secret not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "redis://localhost:6379 failed, mail ops@example.com",  # a port, not a password
        "redis://localhost:6379/0 (worker w1@host)",
        "see https://example.com/a@b",
        "time 12:30 user@example.com",
    ],
)
def test_text_without_passwords_is_kept(text):
    assert redact(text) == text


def test_configured_secrets_are_redacted_anywhere(monkeypatch):
    monkeypatch.setattr(redact_module, "_secrets", set())
    Settings.from_values(
        {
            "rq_password": "open sesame!",
            "redis_queue": "redis://u:r%20pw@h:1/0",
            "db_url": "postgresql://app:db pw 9@db/x",
        }
    )
    text = "rq said 'open sesame!' is wrong; tried r%20pw, r pw and db pw 9"
    assert redact(text) == "rq said '***' is wrong; tried ***, *** and ***"


def test_short_secrets_are_not_replaced_everywhere(monkeypatch):
    monkeypatch.setattr(redact_module, "_secrets", set())
    register_secret("ab")
    assert redact("abc") == "abc"


def test_a_huge_failure_is_redacted_then_clipped_head_and_tail():
    text = "start redis://u:topsecret@h " + "x" * 5_000_000 + " end postgresql://a:other@db/x"
    stored = redact_failure(text)
    assert len(stored) < FAILURE_TEXT_LIMIT + 100
    assert stored.startswith("start redis://u:***@h") and stored.endswith("end postgresql://a:***@db/x")
    assert "characters cut" in stored and "topsecret" not in stored and "other" not in stored
    assert redact_failure("short") == "short"
