"""The change gate's decision (:func:`hookscheduler.schedule.gate.must_probe`) and its pure helpers: a site is
left unprobed only when its database's count of writes is the one its last real probe was made against, with
the same config, recently enough."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.schedule.gate import ChangeGate, Mark, max_skip_for, must_probe, server_of

T0 = datetime(2026, 1, 5, 10, 0)
RESET = datetime(2026, 1, 1)
SITE = object()


def _mark(writes=(10, RESET), at=T0, site=SITE) -> Mark:
    return Mark(writes, at, site)


def test_an_unchanged_count_skips_the_probe():
    assert not must_probe(_mark(), (10, RESET), SITE, T0 + timedelta(seconds=60), 600)


def test_any_change_of_the_count_probes():
    later = T0 + timedelta(seconds=60)
    assert must_probe(_mark(), (11, RESET), SITE, later, 600)  # a write
    assert must_probe(_mark(), (9, RESET), SITE, later, 600)  # went down: a reset, a crash
    assert must_probe(_mark(), (10, RESET + timedelta(days=1)), SITE, later, 600)  # reset, and as many writes since
    assert must_probe(_mark((10, None)), (10, RESET), SITE, later, 600)
    assert must_probe(_mark((10, None, 16384)), (10, None, 16390), SITE, later, 600)  # dropped, created again


def test_unknown_counts_probe():
    later = T0 + timedelta(seconds=60)
    assert must_probe(None, (10, RESET), SITE, later, 600)  # never probed against a count
    assert must_probe(_mark(), None, SITE, later, 600)  # counters off, unreadable, database not listed


def test_a_config_changed_since_the_probe_probes_and_one_merely_re_read_does_not():
    """The loop re-reads a site's config whenever a config file of the bench changed; the Site it then holds is a
    new object, equal to the old one unless that site's settings changed. Compared by value."""
    later = T0 + timedelta(seconds=60)
    assert must_probe(_mark(), (10, RESET), object(), later, 600)  # another config
    marked, re_read, changed = ({"db_url": "postgresql:///s1", "tick": 60} for _ in range(3))
    changed["tick"] = 30
    assert not must_probe(_mark(site=marked), (10, RESET), re_read, later, 600)
    assert must_probe(_mark(site=marked), (10, RESET), changed, later, 600)


def test_every_site_is_probed_for_real_within_the_bound_and_when_the_clock_went_back():
    assert not must_probe(_mark(), (10, RESET), SITE, T0 + timedelta(seconds=599), 600)
    assert must_probe(_mark(), (10, RESET), SITE, T0 + timedelta(seconds=600), 600)
    assert must_probe(_mark(), (10, RESET), SITE, T0 - timedelta(seconds=1), 600)


def test_each_sites_bound_is_its_own_within_80_to_100_percent():
    bounds = {max_skip_for(f"s{i}.example", 600) for i in range(200)}
    assert all(480 <= b <= 600 for b in bounds)
    assert len(bounds) > 100  # spread, so 1,000 sites are not all probed in the same cycle
    assert max_skip_for("a.example", 600) == max_skip_for("a.example", 600)


def test_the_server_and_database_of_a_db_url():
    assert server_of("postgresql://u:p@db.example:5433/site1") == ("db.example:5433", "site1")
    assert server_of("postgres://u@db.example/site%201?sslmode=disable") == ("db.example:5432", "site 1")
    assert server_of("postgresql:///site1?host=/var/run/postgresql") == ("/var/run/postgresql:5432", "site1")
    assert server_of("postgresql://db.example:5432/") is None
    assert server_of("sqlite:///sites/a.db") is None
    assert server_of("postgresql://u@[::1/db") is None


def test_a_closed_gate_skips_nothing_and_marks_follow_full_steps():
    gate = ChangeGate()
    gate.begin(gated=True)
    gate.probed("a", SITE, (10, RESET), T0)
    gate.begin(gated=False)  # the first cycle, an announced change
    assert not gate.skips("a", SITE, (10, RESET), T0 + timedelta(seconds=60))
    gate.begin(gated=True)
    assert gate.skips("a", SITE, (10, RESET), T0 + timedelta(seconds=60))
    gate.probed("a", SITE, None, T0 + timedelta(seconds=120))  # probed without a count: no mark
    assert not gate.skips("a", SITE, (10, RESET), T0 + timedelta(seconds=180))
    gate.probed("a", SITE, (10, RESET), T0 + timedelta(seconds=180))
    gate.forget("a")  # failed
    assert not gate.skips("a", SITE, (10, RESET), T0 + timedelta(seconds=240))
