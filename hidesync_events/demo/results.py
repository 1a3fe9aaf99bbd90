"""Tables of what HideSync's reference handlers computed from the day."""

from __future__ import annotations

from rich.table import Table

from workers import handlers


def reference_results() -> list[Table]:
    """One table per reference handler group, read from the fleet's state."""
    return [_analytics(), _resources(), _tools(), _audit()]


def _table(title: str) -> Table:
    return Table("measure", "value", title=title, title_justify="left")


def _analytics() -> Table:
    report = handlers.analytics.report()
    table = _table("Workflow analytics")
    table.add_row("executions started", f"{report.started:,}")
    table.add_row("executions completed", f"{report.completed:,}")
    table.add_row("executions cancelled", f"{report.cancelled:,}")
    if report.completed:
        mean = report.completed_minutes / report.completed
        table.add_row("mean execution time", f"{mean:.1f} min")
    for step in report.steps:
        table.add_row(
            f"  {step.step_type} steps",
            f"{step.completed:,} done, mean {step.mean_minutes:.1f} min",
        )
    return table


def _resources() -> Table:
    report = handlers.resources.report()
    table = _table("Resource tracking")
    table.add_row("reservations", f"{report.reserved:,}")
    table.add_row("releases", f"{report.released:,}")
    table.add_row("still reserved at day's end", f"{len(report.open_reservations):,}")
    table.add_row("shortage alerts", f"{len(report.shortages):,}")
    return table


def _tools() -> Table:
    report = handlers.tools.report()
    table = _table("Tool availability")
    table.add_row("check-outs", f"{report.checkouts:,}")
    table.add_row("still checked out", f"{len(report.checked_out):,}")
    table.add_row("returned with issues", f"{report.returned_with_issues:,}")
    table.add_row(
        "in maintenance", ", ".join(map(str, report.in_maintenance)) or "none"
    )
    return table


def _audit() -> Table:
    report = handlers.audit.report(latest=0)
    table = _table("Audit trail")
    table.add_row("events recorded", f"{report.recorded:,}")
    table.add_row("event types seen", f"{len(report.by_type)}")
    return table
