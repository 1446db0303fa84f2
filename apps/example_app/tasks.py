"""The example app's jobs. Each appends one JSON line to ``<bench>/logs/example_app.jsonl`` so a user (and the
end-to-end tests) can see exactly what ran, when, and for which slot."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path


def _record(task: str, **extra: object) -> None:
    bench = Path(os.environ.get("HOOKSCHEDULER_BENCH") or os.getcwd())
    log_dir = bench / "logs"
    log_dir.mkdir(exist_ok=True)
    slot = None
    try:
        from hookscheduler import job_context

        ctx = job_context()
        slot = ctx.slot.isoformat() if ctx and ctx.slot else None
    except ImportError:  # running outside a worker
        pass
    line = {"task": task, "at": datetime.now(timezone.utc).isoformat(), "slot": slot, "pid": os.getpid(), **extra}
    with open(log_dir / "example_app.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def pulse() -> None:
    _record("pulse")


def heartbeat() -> None:
    _record("heartbeat")


def sync_rates() -> None:
    _record("sync_rates", rates={"EUR": 1.0, "USD": 1.08})


def rebuild_index() -> None:
    time.sleep(0.2)
    _record("rebuild_index")


def vacuum_sessions() -> None:
    _record("vacuum_sessions")


def send_digest() -> None:
    _record("send_digest", recipients=3)


def take_backup() -> None:
    _record("take_backup")


def rotate_logs() -> None:
    _record("rotate_logs")


def weekly_report() -> None:
    _record("weekly_report")


def recompute_rankings() -> None:
    _record("recompute_rankings")


def close_books() -> None:
    _record("close_books")


def archive_orders() -> None:
    _record("archive_orders")


def renew_certificates() -> None:
    _record("renew_certificates")


def annual_summary() -> None:
    _record("annual_summary")


def delete_barcodes() -> None:
    _record("delete_barcodes")


def poll_payments() -> None:
    _record("poll_payments")


def reindex() -> None:
    _record("reindex")


def submit_invoices(invoice_ids: list[int]) -> int:
    """A background job pushed with hookscheduler.enqueue (not scheduled)."""
    _record("submit_invoices", count=len(invoice_ids))
    return len(invoice_ids)
