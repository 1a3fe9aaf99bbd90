"""``hidesync-events stats``: what waits in each queue, who consumes it, what was handled."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import click
import redis
from kombu.exceptions import OperationalError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hidesync_events.cli.common import (
    broker_option,
    handlers_option,
    import_handler_modules,
    reporting_unreachable,
    use_celery,
)
from hidesync_events.stats import CategoryStats, FleetStats, gather_stats

#: Seconds between two refreshes of ``--watch`` when no number is given.
DEFAULT_WATCH_S = 2.0

_UNREACHABLE = (redis.ConnectionError, OperationalError)


@click.command()
@broker_option
@handlers_option
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@click.option(
    "--watch",
    "watch_s",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=DEFAULT_WATCH_S,
    default=None,
    metavar="[SECONDS]",
    help=f"Refresh a live view every SECONDS ({DEFAULT_WATCH_S:g}) until Ctrl-C.",
)
def stats(
    broker_url: str | None,
    handler_modules: tuple[str, ...],
    as_json: bool,
    watch_s: float | None,
) -> None:
    """Per category: messages waiting and the oldest one's age, consuming workers,
    events handled and failed, dead letters; then fleet totals and the most common
    events. Counts come from the metrics the workers flush every second.
    """
    if as_json and watch_s is not None:
        raise click.UsageError("--json and --watch cannot be combined")

    with reporting_unreachable():
        use_celery(broker_url)
        import_handler_modules(
            handler_modules, needed_for="events of its types count in the totals only"
        )
        figures = gather_stats()

    if as_json:
        click.echo(json.dumps(figures.to_dict(), indent=2))
    elif watch_s is None:
        Console().print(render_stats(figures))
    else:
        watch(Console(), render_stats(figures), gather_stats, watch_s)


def watch(
    console: Console,
    first: RenderableType,
    gather: Callable[[], FleetStats],
    interval_s: float,
) -> None:
    """Show ``first``, then a fresh :func:`live_frame` every ``interval_s``, until Ctrl-C."""
    with Live(first, console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                live.update(live_frame(gather), refresh=True)
        except KeyboardInterrupt:
            pass


def live_frame(gather: Callable[[], FleetStats]) -> RenderableType:
    """One frame of ``--watch``: the figures now, or why they could not be read."""
    try:
        return render_stats(gather())
    except _UNREACHABLE as error:
        # Keep watching: the broker may be back at the next refresh.
        return Text(f"{error}; trying again", style="bold red")


def render_stats(figures: FleetStats) -> RenderableType:
    """The figures as rich tables: categories, fleet totals, most common events."""
    title = Text.assemble(
        ("hidesync-events stats", "bold"),
        f": {figures.broker} at {figures.taken_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    return Group(
        title,
        _categories_table(figures),
        _totals_table(figures),
        _most_common_table(figures),
    )


def _categories_table(figures: FleetStats) -> Table:
    table = Table(title="Queues", title_justify="left")
    table.add_column("category", no_wrap=True)
    table.add_column("waiting", justify="right")
    table.add_column("oldest", justify="right")
    table.add_column("consumers", overflow="fold")
    for column in ("handled", "failed", "dead letters"):
        table.add_column(column, justify="right")
    for row in figures.categories:
        table.add_row(
            escape(row.category),
            f"{row.depth:,}",
            _oldest(row, known=figures.oldest_age_known),
            "\n".join(escape(w) for w in row.consumers) or _none_if_waiting(row),
            f"{row.handled:,}",
            f"{row.failed:,}",
            f"{row.dead_letters:,}",
        )
    return table


def _totals_table(figures: FleetStats) -> Table:
    totals = figures.totals
    table = Table("fleet", "value", title="Totals", title_justify="left")
    rows = [
        ("events handled", f"{totals.handled:,}"),
        ("handler runs", f"{totals.handler_runs:,}"),
        ("handler runs failed", f"{totals.failed:,}"),
        ("retries", f"{totals.retries:,}"),
        ("duplicates skipped", f"{totals.duplicates:,}"),
        ("spooled at publish", f"{totals.spooled:,}"),
        ("dead letters kept", f"{totals.dead_letters:,}"),
        ("handler latency p50", _ms(totals.handler_p50_s)),
        ("handler latency p99", _ms(totals.handler_p99_s)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _most_common_table(figures: FleetStats) -> Table:
    table = Table(title="Most common events", title_justify="left")
    table.add_column("event")
    table.add_column("category")
    table.add_column("handled", justify="right")
    for count in figures.most_common:
        table.add_row(
            escape(count.event), escape(count.category or "?"), f"{count.handled:,}"
        )
    return table


def _oldest(row: CategoryStats, *, known: bool) -> str:
    if not known:
        return "n/a"

    if not row.depth:
        return "-"

    if row.oldest_age_s is None:
        return "?"  # the oldest message is not one of ours, or not readable

    return _age(max(row.oldest_age_s, 0.0))


def _none_if_waiting(row: CategoryStats) -> str:
    # Messages waiting with nobody to take them is what an operator must see.
    return "[bold red]none[/bold red]" if row.depth else "-"


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"

    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"

    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"

    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
