"""The dashboard's backfill form: operator role and CSRF, audited, the library's one-line refusals shown."""

from __future__ import annotations

import html
import logging
import re

from hookscheduler.context import open_site
from hookscheduler.store.models import ScheduledJobLog
from tests.web.support import auth_config, client, csrf_of, login, make_bench

JOB_PAGE = "/sites/default/job?name=app1.tasks.ok"


def _backfills(bench) -> list[ScheduledJobLog]:
    open_site(str(bench)).database()
    return list(ScheduledJobLog.select().where(ScheduledJobLog.trigger == "backfill"))


def test_backfill_form_needs_an_operator_and_the_token_and_is_audited(bench_factory, db_kind, caplog):
    bench = make_bench(bench_factory, db_kind, hours_ago=30)  # the hourly job existed 30 h ago: no run since
    c = client(bench, auth=auth_config())
    login(c, "victor")
    page = c.get(JOB_PAGE)
    assert page.status_code == 200 and 'id="backfill-form"' in page.text
    form = {"name": "app1.tasks.ok", "from": "40h", "to": "35h", "policy": "all", "csrf": csrf_of(page.text)}
    r = c.post("/sites/default/jobs/backfill", data=form)
    assert r.status_code == 403 and "viewer role" in r.text and not _backfills(bench)
    c.cookies.clear()
    login(c, "alice")
    r = c.post("/sites/default/jobs/backfill", data={k: v for k, v in form.items() if k != "csrf"})
    assert r.status_code == 403 and not _backfills(bench)
    form["csrf"] = csrf_of(c.get(JOB_PAGE).text)
    with caplog.at_level(logging.INFO, logger="hookscheduler.web.audit"):
        r = c.post("/sites/default/jobs/backfill", data=form, follow_redirects=True)
    assert r.status_code == 200 and "backfill of app1.tasks.ok" in r.text and "sent in 5 run(s)" in r.text, r.text
    rows = _backfills(bench)
    assert len(rows) == 5 and all("alice (dashboard)" in row.reason for row in rows)
    assert any("alice (dashboard) from testclient: jobs/backfill on site default done" in m for m in caplog.messages)
    # a refusal is the library's one line, audited as refused; nothing is written
    form.update({"from": "2h", "to": "+1h"})
    with caplog.at_level(logging.INFO, logger="hookscheduler.web.audit"):
        r = c.post("/sites/default/jobs/backfill", data=form, follow_redirects=True)
    assert "in the future" in r.text and len(_backfills(bench)) == 5
    assert any("jobs/backfill on site default refused" in m for m in caplog.messages)
    form.update({"from": "200h", "to": "35h", "yes": ""})
    r = c.post("/sites/default/jobs/backfill", data=form, follow_redirects=True)
    assert "tick &#39;more than 100 slots&#39; to confirm, or narrow from/to" in r.text
    assert len(_backfills(bench)) == 5


def test_backfill_form_errors_name_the_form_fields_not_the_cli_options(bench_factory):
    from hookscheduler.ops.jobs import set_stopped

    bench = make_bench(bench_factory, hours_ago=30)
    c = client(bench)
    page = c.get(JOB_PAGE)

    def refusal(**fields: str) -> str:
        form = {"name": "app1.tasks.ok", "from": "40h", "to": "35h", "csrf": csrf_of(page.text), **fields}
        r = c.post("/sites/default/jobs/backfill", data=form, follow_redirects=True)
        found = re.search(r'<p class="flash bad"[^>]*>([^<]*)</p>', r.text)
        assert found, r.text
        return html.unescape(found.group(1))

    future = refusal(to="+1h")
    assert re.fullmatch(r"to \(\S+ \S+ UTC\) is in the future: backfill runs past slots only "
                        r"\(use Run now to run the job now\)", future), future
    assert re.fullmatch(r"from \(\S+ \S+ UTC\) is after to \(\S+ \S+ UTC\); give the earlier moment first",
                        refusal(**{"from": "2h", "to": "3h"}))
    assert refusal(policy="bogus") == "policy 'bogus' is not one of once, all"
    assert refusal(**{"from": "200h"}).endswith("more than 100: tick 'more than 100 slots' to confirm, or narrow "
                                                "from/to")
    set_stopped(open_site(str(bench)).database(), "app1.tasks.ok", True, "broken")
    assert refusal() == "job 'app1.tasks.ok' is stopped; press Enable first"
    assert not _backfills(bench)
