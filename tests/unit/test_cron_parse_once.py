"""A cron expression is parsed by croniter once per process, for its check and for its slots alike (a deploy's
``migrate`` checks every distinct cron of the hooks, then computes each new job's first slot)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.timing import cron


def test_check_and_slots_share_one_parse(monkeypatch):
    cron._prototype.cache_clear()
    cron._parsed.cache_clear()
    made: list[Any] = []
    real = cron.croniter

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(cron, "croniter", counting)
    expr = "7 3  * * 1-5"
    assert cron.validate_cron(expr) == "7 3 * * 1-5"
    after = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    first = cron.next_fire(expr, after, ZoneInfo("UTC"))
    assert first == datetime(2026, 3, 3, 3, 7, tzinfo=timezone.utc)
    assert cron.next_fire(expr, first, ZoneInfo("UTC")) == datetime(2026, 3, 4, 3, 7, tzinfo=timezone.utc)
    assert cron.validate_cron(expr) == "7 3 * * 1-5"
    assert made == ["7 3 * * 1-5"]


@pytest.mark.parametrize(("expr", "words"), [("61 * * * *", "is invalid"), ("0 0 30 2 *", "never fires")])
def test_a_refused_expression_is_refused_every_time(expr, words):
    for _ in range(2):
        with pytest.raises(cron.CronError, match=words):
            cron.validate_cron(expr)
