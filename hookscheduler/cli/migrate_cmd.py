"""``hookscheduler migrate``: sync hooks into the Scheduled Job Type table, one transaction per site."""

from __future__ import annotations

import click

from ..hooks_loader import load_job_specs
from ..migrate import Plan, migrate_site
from .base import CliState, cli, echo, pass_state
from .output import format_option, to_json


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@click.option("--prune", is_flag=True, help="Delete jobs no longer in hooks, and their history.")
@format_option
@pass_state
def migrate(state: CliState, dry_run: bool, prune: bool, fmt: str) -> None:
    """Sync every installed app's scheduler_events into the table (added / updated / removed / unchanged)."""
    contexts = state.each()
    plans: list[Plan] = []
    # Validate everything before touching any site: a refused migrate writes nothing anywhere.
    specs_by_site = {ctx.name: load_job_specs(ctx.bench, ctx.site.queues, builtin=True) for ctx in contexts}
    for ctx in contexts:
        db = ctx.database(create=not dry_run, require_schema=False) if not dry_run else _maybe_db(ctx)
        if db is None:
            from ..migrate import plan_sync

            plans.append(plan_sync(ctx.name, specs_by_site[ctx.name], [], prune))
            continue
        plans.append(migrate_site(db, ctx.name, specs_by_site[ctx.name], ctx.clock, dry_run=dry_run, prune=prune))
        ctx.close()
    if fmt == "json":
        echo(to_json([dict(p.as_dict(), dry_run=dry_run) for p in plans]))
        return
    for plan in plans:
        _print_plan(plan, dry_run)


def _maybe_db(ctx):  # type: ignore[no-untyped-def]
    """For --dry-run: the existing database, or None when the site has none yet (nothing is created)."""
    from ..exceptions import SchemaError

    try:
        return ctx.database(create=False, require_schema=False)
    except SchemaError:
        return None


def _print_plan(plan: Plan, dry_run: bool) -> None:
    prefix = "would be " if dry_run else ""
    echo(f"site {plan.site}: {len(plan.added)} {prefix}added, {len(plan.updated)} {prefix}updated, "
         f"{len(plan.removed)} {prefix}removed, {len(plan.pruned)} {prefix}pruned, {len(plan.unchanged)} unchanged"
         + (" (dry run: nothing written)" if dry_run else ""))
    for spec in plan.added:
        sched = spec.cron_format or spec.frequency
        echo(f"  + {spec.name}  [{spec.frequency}{' ' + sched if spec.cron_format else ''}, queue {spec.queue}]")
    for change in plan.updated:
        parts = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in change.fields.items())
        echo(f"  ~ {change.name}  ({parts})")
    for name in plan.removed:
        echo(f"  - {name}  (removed from hooks: stops firing, history kept; --prune deletes it)")
    for name in plan.pruned:
        echo(f"  x {name}  (deleted with its history)")
