"""Job names, ids and ``--note`` texts with quotes, SQL, LIKE wildcards, shell metacharacters, newlines, escape
sequences and unicode, through every CLI command that takes them: a clear one-line "not found" (or usage error)
or a correct result, and nothing else touched (every table row and every Redis key of the bench compared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from hookscheduler.broker.keys import site_prefix
from tests.integration.hostile_support import T0, snapshot
from tests.integration.opcli_support import assert_one_line_error, migrated, run

HOSTILE = {
    "quotes": "it's \"quoted\"",
    "sql": "x'; DROP TABLE scheduled_job_type; --",
    "sql-or": "\" OR 1=1 --",
    "like-percent": "%x%",
    "like-underscore": "_",
    "glob": "*",
    "shell-subst": "$(touch PWNED)",
    "shell-backtick": "`touch PWNED`",
    "shell-chain": "; touch PWNED && echo | cat",
    "newline": "a\nb",
    "crlf": "a\r\nDROP",
    "tab": "tab\there",
    "escape": "\x1b[2J\x1b[31mred",
    "unicode": "日本語 ✗ ünïcødé",
    "rtl": "\u202eevil",
    "path": "../../etc/passwd",
    "dash": "-x",
    "empty": "",
    "space": " ",
    "long": "n" * 10_000,
    "redis-glob": "*:*",
}

# jobs whose *names* are hostile (they exist, so commands must act on exactly them)
NAMED = {
    "pct": "%",
    "sql": "it's \"quoted\"; DROP TABLE scheduled_job_type; --",
    "shell": "$(touch PWNED) `touch PWNED` | ; && >x",
    "unicode": "日本語 ✓ ünïcødé",
}
HOOKS = {"hourly": ["ops.tasks.ok"] + [{"method": "ops.tasks.other", "name": n} for n in NAMED.values()],
         "daily": ["ops.tasks.record"]}


def redis_snapshot(conn: redis.Redis, bench_id: str) -> dict[bytes, Any]:
    return {k: conn.dump(k) for k in sorted(conn.scan_iter(match=f"*{bench_id}*", count=1000))}


PG = pytest.mark.postgres
BOTH_DBS = ["sqlite", pytest.param("postgres", marks=PG)]
#: the hostile names also tried on PostgreSQL (quoting, LIKE, encodings and lengths are where databases differ)
PG_KEYS = ("quotes", "sql", "sql-or", "like-percent", "like-underscore", "newline", "escape", "unicode", "long")


@pytest.fixture
def ops(bench_factory, monkeypatch, request) -> tuple[Path, redis.Redis, str]:
    """A migrated bench with one queued run; SQLite unless the test parametrizes ``ops`` indirectly."""
    bench = bench_factory.make({"ops": HOOKS}, db=getattr(request, "param", "sqlite"))
    monkeypatch.chdir(bench)  # a shell metacharacter that ran would leave PWNED here
    ctx, conn = migrated(bench, T0)
    bench_id = ctx.bench.bench_id
    ctx.close()
    queued = run(bench, "jobs", "run", "ops.tasks.ok")  # something in Redis that a stray purge would drop
    assert queued.code == 0, queued.err
    return bench, conn, bench_id


def _everything(bench: Path, conn: redis.Redis, bench_id: str) -> tuple[Any, Any]:
    return snapshot(bench), redis_snapshot(conn, bench_id)


def _not_found_cases(h: str) -> list[tuple[list[str], int, str]]:
    """(argv, exit status, text the one error line must contain) for a name/id ``h`` that does not exist."""
    return [
        (["jobs", "enable", "--", h], 1, "not found"),
        (["jobs", "disable", "--note", "why", "--", h], 1, "not found"),
        (["jobs", "run", "--", h], 1, "not found"),
        (["jobs", "run", "--force", "--", h], 1, "not found"),
        (["jobs", "skip-next", "--", h], 1, "not found"),
        (["jobs", "next", "--", h], 1, "not found"),
        (["jobs", "explain", "--", h], 1, "not found"),
        (["jobs", "history", "--", h], 1, "not found"),
        (["jobs", "missed", "--", h], 1, "not found"),
        (["trigger-scheduler-event", "--", h], 1, "does not exist"),
        (["trigger-scheduler-event", "--force", "--", h], 1, "does not exist"),
        (["rq-jobs", "show", "--", h], 1, "not found"),
        (["rq-jobs", "cancel", "--", h], 1, "not found"),
        (["rq-jobs", "stop", "--", h], 1, "not found"),
        (["rq-jobs", "delete", "--", h], 1, "not found"),
        (["job-status", "--", h], 1, "not found"),
        (["purge-jobs", "--queue", h], 2, "unknown queue"),
        (["purge-jobs", "--event", h], 2, "unknown event"),
        (["rq-jobs", "list", "--queue", h], 2, "unknown queue"),
        (["worker", "--burst", "--queue", h], 2, "unknown queue"),
        (["jobs", "history", "--since", h], 2, "--since"),
        (["jobs", "missed", "--since", h], 2, "--since"),
        (["jobs", "explain", "ops.tasks.ok", "--at", h], 2, "--at"),
        (["set-config", "--", h, "1"], 2, "unknown key"),
        (["set-config", "-g", "--", h, "1"], 2, "unknown key"),
        (["set-config", "--", "time_zone", h], 2, "time_zone"),
        (["set-config", "--", "redis_queue", h], 2, "redis_queue"),
        (["set-config", "-g", "--", "scheduler_tick_interval", h], 2, "scheduler_tick_interval"),
    ]


@pytest.mark.parametrize(("ops", "key"), [("sqlite", k) for k in HOSTILE]
                         + [pytest.param("postgres", k, marks=PG) for k in PG_KEYS], indirect=["ops"])
def test_hostile_names_are_not_found_and_nothing_is_touched(ops, key):
    bench, conn, bench_id = ops
    h = HOSTILE[key]
    before = _everything(bench, conn, bench_id)
    for argv, code, needle in _not_found_cases(h):
        if h == "" and argv[:2] in (["jobs", "history"], ["jobs", "missed"]):
            continue  # the name is optional: "" means every job
        result = run(bench, *argv)
        assert_one_line_error(result, code, needle)
        assert "\x1b" not in result.err, argv  # an escape sequence is shown escaped, never sent to the terminal
        assert len(result.err) < 2000, (argv, len(result.err))
    assert not (bench / "PWNED").exists() and not Path("PWNED").exists()
    assert _everything(bench, conn, bench_id) == before


def _rows(bench: Path) -> dict[str, tuple[Any, ...]]:
    return {r[1]: r for r in snapshot(bench)["scheduled_job_type"]}


@pytest.mark.parametrize("ops", BOTH_DBS, indirect=True)
@pytest.mark.parametrize("which", list(NAMED))
def test_jobs_with_hostile_names_are_acted_on_exactly(ops, which):
    """Every command finds the job by its exact name; the other jobs (``%`` matches all of them under LIKE)
    are untouched."""
    bench, _conn, _bench_id = ops
    name = NAMED[which]
    others_before = {n: r for n, r in _rows(bench).items() if n != name}
    ok = run(bench, "jobs", "disable", "--note", "maintenance; DROP TABLE x", "--", name)
    assert ok.code == 0, ok.err
    assert run(bench, "jobs", "enable", "--", name).code == 0
    assert run(bench, "jobs", "skip-next", "--", name).code == 0
    nxt = run(bench, "jobs", "next", "-n", "2", "--format", "json", "--", name)
    assert nxt.code == 0 and len(nxt.json()) == 2
    ran = run(bench, "jobs", "run", "--", name)
    assert ran.code == 0, ran.err
    trig = run(bench, "trigger-scheduler-event", "--force", "--format", "json", "--", name)
    assert trig.code == 0, trig.err
    assert trig.json()["kind"] == "job" and [o["job_name"] for o in trig.json()["outcomes"]] == [name]
    hist = run(bench, "jobs", "history", "--format", "json", "--", name)
    assert hist.code == 0 and hist.json() and {r["job_name"] for r in hist.json()} == {name}
    missed = run(bench, "jobs", "missed", "--format", "json", "--", name)
    assert missed.code == 0 and [g["job_name"] for g in missed.json()] == [name]
    explain = run(bench, "jobs", "explain", "--", name)
    assert explain.code == 0, explain.err
    assert explain.out.splitlines()[0].startswith(name)
    # the RQ jobs of the manual runs are found by their ids and deleted one by one
    ids = [r["rq_job_id"] for r in hist.json() if r["rq_job_id"]]
    assert len(ids) == 2
    for rq_id in ids:
        assert run(bench, "job-status", "--format", "json", rq_id).json()["log"]["job"] == name
        assert run(bench, "rq-jobs", "show", rq_id).code == 0
        assert run(bench, "rq-jobs", "delete", rq_id).code == 0, rq_id
    rows = _rows(bench)
    assert not rows[name][_col("stopped")]
    assert {n: r for n, r in rows.items() if n != name} == others_before
    assert not (bench / "PWNED").exists()


def _col(name: str) -> int:
    from hookscheduler.store.models import ScheduledJobType

    return [f.column_name for f in ScheduledJobType._meta.sorted_fields].index(name)


NOTES = {
    "quotes": "it's \"quoted\"",
    "sql": "'); DELETE FROM scheduled_job_log; --",
    "shell": "$(touch PWNED) `touch PWNED` ; rm -rf ~",
    "unicode": "wegen Wartung ✓ 日本語 🚧",
    "percent-format": "%s %d {0} {name} %(x)s",
    "long": "why " * 124 + "why",  # 499 characters: the longest a note may be is 500
    "empty": "",
}


@pytest.mark.parametrize("ops", BOTH_DBS, indirect=True)
@pytest.mark.parametrize("which", list(NOTES))
def test_notes_are_stored_exactly_and_shown_on_one_line(ops, which):
    bench, _conn, _bench_id = ops
    note = NOTES[which]
    res = run(bench, "jobs", "disable", "--note", note, "ops.tasks.record")
    assert res.code == 0, res.err
    row = _rows(bench)["ops.tasks.record"]
    assert row[_col("stopped")]
    assert row[_col("stopped_note")] == (note or None)
    listed = {r["name"]: r for r in run(bench, "jobs", "list", "--format", "json").json()}
    assert listed["ops.tasks.record"]["stopped_note"] == (note or None)
    text = run(bench, "jobs", "list")
    assert text.code == 0 and len(text.out.splitlines()) == len(listed) + 2
    refusal = run(bench, "jobs", "run", "ops.tasks.record")  # refused: stopped; the note is in the one line
    assert_one_line_error(refusal, 1, "is stopped")
    assert not (bench / "PWNED").exists()


@pytest.mark.parametrize("note", ["line one\nline two", "tab\tand\r\nCRLF", "  padded  "])
def test_multiline_notes_are_kept_on_one_line(ops, note):
    """A note is one line of text: runs of whitespace (newlines from a shell's $'...', tabs) become one space."""
    bench, _conn, _bench_id = ops
    assert run(bench, "jobs", "disable", "--note", note, "ops.tasks.record").code == 0
    stored = _rows(bench)["ops.tasks.record"][_col("stopped_note")]
    assert stored == " ".join(note.split())
    refusal = run(bench, "jobs", "run", "ops.tasks.record")
    assert_one_line_error(refusal, 1, stored)
    explain = run(bench, "jobs", "explain", "ops.tasks.record")
    assert any(line.strip().startswith("stopped:") and stored in line for line in explain.out.splitlines())


@pytest.mark.parametrize("ops", BOTH_DBS, indirect=True)
@pytest.mark.parametrize("note", ["\x1b[2J\x1b[31mred", "nul\x00byte", "bell\x07", "c1\x9bcontrol"])
def test_notes_with_control_characters_are_refused(ops, note):
    bench, conn, bench_id = ops
    before = _everything(bench, conn, bench_id)
    for argv in (["jobs", "disable", "--note", note, "ops.tasks.record"], ["scheduler", "disable", "--note", note],
                 ["disable-scheduler", "--note", note]):
        result = run(bench, *argv)
        assert_one_line_error(result, 2, "--note", "control character")
        assert "\x1b" not in result.err and "\x00" not in result.err
    assert _everything(bench, conn, bench_id) == before


def test_scheduler_disable_note_round_trips(ops):
    bench, _conn, _bench_id = ops
    note = "deploy 'v2'; DROP TABLE scheduler_state; -- 日本語"
    assert run(bench, "scheduler", "disable", "--note", note).code == 0
    status = run(bench, "scheduler", "status", "--format", "json")
    assert status.code == 0 and note in json.dumps(status.json(), ensure_ascii=False)


def test_other_sites_and_benches_ids_are_not_reachable(ops, bench_factory):
    """An RQ id of another bench, or one spelled with the site prefix of another site, is not found here."""
    bench, conn, bench_id = ops
    other = bench_factory.make({"ops": HOOKS}, env=False)
    ctx, _ = migrated(other, T0)
    other_id = ctx.bench.bench_id
    ctx.close()
    queued = run(other, "jobs", "run", "ops.tasks.ok")
    assert queued.code == 0
    [other_rq_id] = [k.decode().split("rq:job:", 1)[1] for k in conn.scan_iter(match=f"rq:job:{other_id}*")]
    before = _everything(bench, conn, bench_id)
    other_before = redis_snapshot(conn, other_id)
    for argv in (["rq-jobs", "show", other_rq_id], ["rq-jobs", "delete", other_rq_id],
                 ["rq-jobs", "cancel", other_rq_id], ["job-status", other_rq_id],
                 ["rq-jobs", "delete", site_prefix(bench_id, "other") + "x"]):
        assert_one_line_error(run(bench, *argv), 1, "not found")
    assert _everything(bench, conn, bench_id) == before
    assert redis_snapshot(conn, other_id) == other_before
