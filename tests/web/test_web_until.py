"""The dashboard's disable and pause forms take an optional `until`, and the pages show it; a bad `until` is a
one-line message and changes nothing."""

from __future__ import annotations

from hookscheduler.context import open_site
from hookscheduler.ops import scheduler as sched
from hookscheduler.store.models import ScheduledJobType, utcnow
from tests.web.support import client, csrf_of, make_bench


def test_disable_and_pause_until_from_the_dashboard(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind)
    c = client(bench)
    page = c.get("/sites/default/jobs")
    assert 'name="until"' in page.text
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "note": "vendor down", "until": "2h",
                                                    "csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "disabled app1.tasks.ok until" in r.text and "vendor down" in r.text
    ctx = open_site(str(bench))
    ctx.database()
    row = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    assert row.stopped and 7100 < (row.stopped_until - utcnow()).total_seconds() <= 7200
    assert "until" in c.get("/sites/default/jobs").text.split("vendor down")[0].rsplit("<td>", 1)[-1]

    page = c.get("/scheduler")
    assert 'name="until"' in page.text
    r = c.post("/sites/default/scheduler/pause", data={"until": "30m", "csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert "scheduler paused for site default until" in r.text
    status = sched.site_status(open_site(str(bench)), None)
    assert status.status == "paused" and status.paused_until is not None
    assert "until" in c.get("/scheduler").text.split('st-paused">paused</span>')[1][:80]
    # the job page says what happens next: its slot passed while no pass ran, so one catch-up when the pause ends
    assert "<td>catch-up</td>" in c.get("/sites/default/job?name=app1.tasks.other").text


def test_a_bad_until_changes_nothing(bench_factory):
    bench = make_bench(bench_factory)
    c = client(bench)
    page = c.get("/sites/default/jobs")
    for bad, why in (("yesterday", "not in the future"), ("soon-ish", "cannot read the until"),
                     ("2100-01-01", "more than 366 days ahead")):
        r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "until": bad,
                                                        "csrf": csrf_of(page.text)}, follow_redirects=True)
        assert why in r.text, r.text[:2000]
        r = c.post("/sites/default/scheduler/pause", data={"until": bad, "csrf": csrf_of(page.text)},
                   follow_redirects=True)
        assert why in r.text
    ctx = open_site(str(bench))
    ctx.database()
    assert not ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").stopped
    assert sched.scheduler_state(ctx)[0] == "enabled"


def test_a_removed_job_page_lists_no_upcoming_slots(bench_factory):
    bench = make_bench(bench_factory)
    ctx = open_site(str(bench))
    ctx.database()
    ScheduledJobType.update(removed=True, removed_at=utcnow(), next_execution=None).where(
        ScheduledJobType.name == "app1.tasks.other").execute()
    text = client(bench).get("/sites/default/job?name=app1.tasks.other").text
    assert "none: the job was removed from hooks" in text


def test_a_stop_whose_end_has_come_reads_active_before_the_pass_clears_it(bench_factory):
    from datetime import timedelta

    bench = make_bench(bench_factory)
    ctx = open_site(str(bench))
    ctx.database()
    ScheduledJobType.update(stopped=True, stopped_until=utcnow() - timedelta(minutes=1)).where(
        ScheduledJobType.name == "app1.tasks.other").execute()
    c = client(bench)
    page = c.get("/sites/default/job?name=app1.tasks.other").text
    assert "Stopped" not in page and "/jobs/disable" in page
    row = c.get("/sites/default/jobs").text.split("app1.tasks.other")[1]
    assert "<strong>stopped</strong>" not in row.split("</tr>")[0]


def test_the_jobs_list_and_the_job_page_read_a_stop_at_the_dashboard_s_clock(bench_factory):
    from datetime import timedelta

    bench = make_bench(bench_factory)
    ctx = open_site(str(bench))
    ctx.database()
    ScheduledJobType.update(stopped=True, stopped_until=utcnow() + timedelta(hours=1)).where(
        ScheduledJobType.name == "app1.tasks.other").execute()
    for ahead, stopped in ((0, True), (2, False)):  # the stop ends in 1 h: over on a clock 2 h ahead
        c = client(bench, clock=lambda ahead=ahead: utcnow() + timedelta(hours=ahead))
        [row] = [r for r in c.get("/sites/default/jobs").text.split("<tr")[1:] if "app1.tasks.other" in r]
        assert ("<strong>stopped</strong>" in row) is stopped
        assert ("<strong>Stopped</strong>" in c.get("/sites/default/job?name=app1.tasks.other").text) is stopped


def test_the_until_field_is_read_at_the_dashboard_s_clock_as_the_cli_reads_it_at_its_own(bench_factory):
    from datetime import timedelta

    bench = make_bench(bench_factory)
    ahead = timedelta(days=3)
    c = client(bench, clock=lambda: utcnow() + ahead)
    page = c.get("/sites/default/jobs")
    r = c.post("/sites/default/jobs/disable", data={"name": "app1.tasks.ok", "until": "2h",
                                                    "csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "disabled app1.tasks.ok until" in r.text
    ctx = open_site(str(bench))
    ctx.database()
    end = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").stopped_until
    assert 7100 < (end - (utcnow() + ahead)).total_seconds() <= 7200  # two hours after the dashboard's now


def test_resume_against_a_bench_wide_pause_says_this_site_runs_anyway(bench_factory):
    """The site's own resume overrides a pause of the whole bench (the site's file says false): the dashboard
    says so, as `scheduler resume` does."""
    import json

    bench = make_bench(bench_factory, "sqlite", sites={"s1": {}})
    common = bench / "sites" / "common_site_config.json"
    common.write_text(json.dumps({**json.loads(common.read_text()), "pause_scheduler": 1}))
    c = client(bench)
    page = c.get("/scheduler")
    r = c.post("/sites/s1/scheduler/resume", data={"csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "scheduler resumed for site s1" in r.text
    assert "the bench is paused in common_site_config.json, this site runs anyway" in r.text
    assert sched.site_status(open_site(str(bench), "s1"), None).status == "enabled"
