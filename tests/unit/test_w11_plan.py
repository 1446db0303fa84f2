"""w11's choice of sizes from ``$HOOKSCHEDULER_BENCH_W11``: what it runs, and a one-line error for a bad value."""

from __future__ import annotations

import pytest

from benchmarks.w11_multisite import plan_from

DEFAULT = [("sqlite", 10, True)]


def test_the_sizes_asked_for_and_the_default():
    assert plan_from(None, DEFAULT) == DEFAULT
    assert plan_from("", DEFAULT) == DEFAULT
    assert plan_from("postgres:10,1000; sqlite:100", DEFAULT) == [
        ("postgres", 10, True), ("postgres", 1000, False), ("sqlite", 100, True)]
    # the deployment case (every minute, scheduler_claim_ahead 60): one process at any size
    assert plan_from("postgres-minute:100,1000", DEFAULT) == [("postgres-minute", 100, False),
                                                             ("postgres-minute", 1000, False)]


@pytest.mark.parametrize("bad", ["mysql:10", "postgres", "postgres:ten", "postgres:"])
def test_a_bad_value_is_one_clear_line(bad):
    with pytest.raises(ValueError, match=r"HOOKSCHEDULER_BENCH_W11=") as err:
        plan_from(bad, DEFAULT)
    assert "\n" not in str(err.value)
