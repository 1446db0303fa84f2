"""Frappe-style hooks: hookscheduler reads ``scheduler_events`` from here on ``hookscheduler migrate``."""

app_name = "example_app"

scheduler_events = {
    "all": ["example_app.tasks.heartbeat"],
    "hourly": ["example_app.tasks.sync_rates"],
    "hourly_long": ["example_app.tasks.rebuild_index"],
    "hourly_maintenance": ["example_app.tasks.vacuum_sessions"],
    "daily": ["example_app.tasks.send_digest"],
    "daily_long": ["example_app.tasks.take_backup"],
    "daily_maintenance": ["example_app.tasks.rotate_logs"],
    "weekly": ["example_app.tasks.weekly_report"],
    "weekly_long": ["example_app.tasks.recompute_rankings"],
    "monthly": ["example_app.tasks.close_books"],
    "monthly_long": ["example_app.tasks.archive_orders"],
    "yearly": ["example_app.tasks.renew_certificates"],
    "annual": ["example_app.tasks.annual_summary"],
    "cron": {
        "15 18 * * *": ["example_app.tasks.delete_barcodes"],
        # croniter's 6th field is seconds: a pulse every 10 s, so a new user sees runs at once
        "* * * * * */10": ["example_app.tasks.pulse"],
        "*/6 * * * *": [
            # the dict form: a per-job name, queue, timeout and policies
            {
                "method": "example_app.tasks.poll_payments",
                "name": "poll_payments_fast",
                "queue": "short",
                "timeout": 120,
                "catchup": "skip",
                "overlap": "skip",
            }
        ],
    },
    "cron_long": {"0 3 * * *": ["example_app.tasks.reindex"]},
}
