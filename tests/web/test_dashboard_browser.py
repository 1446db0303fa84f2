"""The dashboard in a real headless Chromium (Debian's package) driven by Playwright: the clicks an operator
makes, on SQLite and PostgreSQL. Never skipped: `.ci/run` installs chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from hookscheduler.context import open_site
from hookscheduler.ops import jobs as jobs_lib
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from hookscheduler.web.app import create_app
from tests.web.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HOSTILE,
    PASSWORD,
    auth_config,
    live_server,
    make_bench,
    seed_ledger,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.on("dialog", lambda dialog: dialog.accept())
    yield pg
    context.close()


def _job(bench: Path, name: str) -> ScheduledJobType:
    open_site(str(bench)).database()
    return ScheduledJobType.get(ScheduledJobType.name == name)


def test_an_operator_clicks_through_disable_run_timeline_and_explain(bench_factory, db_kind, page):
    bench = make_bench(bench_factory, db_kind, hours_ago=80)
    seed_ledger(bench)
    with live_server(create_app(str(bench), live_seconds=0)) as base:
        page.goto(f"{base}/sites/default/jobs")
        # disable with a note
        row = page.locator("tr", has=page.locator("a.job-link", has_text="app1.tasks.ok")).first
        row.locator("input[name=note]").fill('deploy <b>window</b> "2h"')
        row.get_by_role("button", name="Disable").click()
        expect(page.locator(".flash.ok")).to_contain_text('disabled app1.tasks.ok: deploy <b>window</b> "2h"')
        row = page.locator("tr", has=page.locator("a.job-link", has_text="app1.tasks.ok")).first
        expect(row.locator("q.note")).to_have_text('deploy <b>window</b> "2h"')
        stopped = _job(bench, "app1.tasks.ok")
        assert stopped.stopped and stopped.stopped_by.endswith("(dashboard)")
        # run now
        row = page.locator("tr", has=page.locator("a.job-link", has_text="app1.tasks.boom")).first
        row.get_by_role("button", name="Run now").click()
        expect(page.locator(".flash.ok")).to_contain_text("queued app1.tasks.boom on queue default")
        _job(bench, "app1.tasks.boom")
        manual = ScheduledJobLog.get(ScheduledJobLog.trigger == "manual")
        assert manual.job_name == "app1.tasks.boom" and "(dashboard) (jobs run)" in manual.reason
        # the hostile name is shown as text
        expect(page.locator("a.job-link", has_text="pwn")).to_have_text(HOSTILE)
        # the timeline: a failed cell leads to its ledger row, traceback redacted
        page.locator("a.job-link", has_text="app1.tasks.ok").first.click()
        expect(page.locator("#timeline .cell.c-failed").first).to_be_visible()
        assert page.locator("#timeline .cell.c-complete").count() > 10
        assert page.locator("#timeline .cell.c-missed").count() > 0
        assert page.locator("#timeline .cell.c-late").count() > 0
        page.locator("#timeline .cell.c-failed").first.click()
        expect(page.locator("#log-row")).to_contain_text("failed")
        expect(page.locator("pre")).to_contain_text("ConnectionError: postgresql://app:***@db/x refused")
        assert "s3cret-pw" not in page.content()
        page.go_back()
        # explain a moment two hours ago
        page.locator("#explain-form input[name=at]").fill("2h")
        page.locator("#explain-form").get_by_role("button", name="Explain").click()
        expect(page.locator("#explanation .verdict")).not_to_be_empty()
        expect(page.locator("#explanation tr.chosen")).to_have_count(1)
        # skip next, from the job page
        before = _job(bench, "app1.tasks.ok").next_execution
        page.get_by_role("button", name="Skip next").click()
        # overdue (migrated 80 hours ago, no pass since): the catch-up the next pass would run is skipped
        expect(page.locator(".flash.ok")).to_contain_text("skipped the pending catch-up of")
        assert _job(bench, "app1.tasks.ok").next_execution > before
        # the other pages render
        for path in ("missed", "queues", "workers", "rq-jobs"):
            page.goto(f"{base}/sites/default/{path}")
            expect(page.locator("h1")).to_be_visible()
        page.goto(f"{base}/scheduler")
        expect(page.locator("tr[data-site=default]")).to_contain_text("none running")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator(".flash.ok")).to_contain_text("scheduler paused for site default")
        expect(page.locator("tr[data-site=default] .st")).to_have_text("paused")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("tr[data-site=default] .st")).to_have_text("enabled")


def test_a_change_without_auth_is_refused_and_changes_nothing(bench_factory, page):
    bench = make_bench(bench_factory)
    with live_server(create_app(str(bench), auth=auth_config(), live_seconds=0)) as base:
        page.goto(f"{base}/sites/default/jobs")
        expect(page).to_have_url(f"{base}/login?next=%2Fsites%2Fdefault%2Fjobs")
        # a forged form, posted by a page without a session
        page.evaluate("""base => { const f = document.createElement('form'); f.method = 'post';
            f.action = base + '/sites/default/jobs/disable';
            for (const [k, v] of [['name', 'app1.tasks.ok'], ['csrf', 'guess']]) {
              const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
            document.body.appendChild(f); f.submit(); }""", base)
        expect(page.locator("#refused")).to_have_text("sign in to change anything")
        assert not _job(bench, "app1.tasks.ok").stopped
        # a viewer signs in: the buttons are disabled, and a forced click is refused by the server
        page.goto(f"{base}/login")
        page.fill("input[name=user]", "victor")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".user")).to_have_text("victor · viewer")
        button = page.locator("tr", has=page.locator("a.job-link", has_text="app1.tasks.ok")).first.get_by_role(
            "button", name="Disable")
        expect(button).to_be_disabled()
        button.evaluate("b => { b.disabled = false; }")
        button.click()
        expect(page.locator("#refused")).to_contain_text("victor has the viewer role")
        assert not _job(bench, "app1.tasks.ok").stopped


def test_pages_update_without_a_reload(bench_factory, page):
    bench = make_bench(bench_factory)
    with live_server(create_app(str(bench), live_seconds=1)) as base:
        page.goto(f"{base}/sites/default/jobs")
        row = page.locator("tr", has=page.locator("a.job-link", has_text="app1.tasks.boom")).first
        expect(row).not_to_contain_text("stopped")
        page.evaluate("window.__same_document = true")
        ctx = open_site(str(bench))
        jobs_lib.set_stopped(ctx.database(), "app1.tasks.boom", True, "changed elsewhere", who="cli@host")
        ctx.close()
        deadline = time.monotonic() + 10
        while "changed elsewhere" not in page.locator("main").inner_text():
            assert time.monotonic() < deadline, "the page did not refresh itself"
            page.wait_for_timeout(200)
        assert page.evaluate("window.__same_document") is True  # no navigation happened
