"""What the demo prints at the end: the pipeline's figures and the handlers' results."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table

from hidesync_events.categories import known_categories
from hidesync_events.event import registered_event_types
from hidesync_events.metrics import MetricsSnapshot


@dataclass(frozen=True)
class DemoFigures:
    """The figures of one demo run, as differences over the run."""

    published: Counter[str]
    rejected: int
    publish_s: float
    handle_s: float
    metrics: MetricsSnapshot
    complete: bool


def render(console: Console, figures: DemoFigures, results: list[Table]) -> None:
    # Which fleet ran is the first line the demo printed, before its progress bars.
    console.print(
        "\n[bold]hidesync-events demo[/bold]: the day as the fleet handled it"
    )
    console.print(_pipeline_table(figures))
    console.print(_categories_table(figures.published, figures.metrics))
    console.print(_handlers_table(figures.metrics))
    console.print(Group(*results))
    if not figures.complete:
        console.print(
            "[yellow]the fleet had not handled every event when the wait ended; "
            "the figures above are partial[/yellow]"
        )


def _pipeline_table(figures: DemoFigures) -> Table:
    metrics = figures.metrics
    table = Table("pipeline", "value", title="The run", title_justify="left")
    published = sum(figures.published.values())
    rate = published / figures.publish_s if figures.publish_s else 0.0
    rows = [
        ("events published", f"{published:,}"),
        ("lines rejected", f"{figures.rejected:,}"),
        ("publish time", f"{figures.publish_s:.2f} s ({rate:,.0f} events/s)"),
        ("time until all handled", f"{figures.handle_s:.2f} s"),
        ("events delivered", f"{metrics.total('delivered'):,}"),
        ("handler runs", f"{metrics.total('handler_runs'):,}"),
        ("handler errors", f"{metrics.total('handler_errors'):,}"),
        ("retries", f"{metrics.total('retries'):,}"),
        ("dead letters", f"{metrics.total('dead_letters'):,}"),
        ("handler latency p50", _ms(metrics.duration_percentile_s(0.50))),
        ("handler latency p99", _ms(metrics.duration_percentile_s(0.99))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _categories_table(
    published_by_type: Counter[str], metrics: MetricsSnapshot
) -> Table:
    category_of = {
        name: cls.__event_meta__.category
        for name, cls in registered_event_types().items()
    }
    published: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    for name, count in published_by_type.items():
        published[category_of.get(name, "?")] += count
    for name, count in metrics["delivered"].items():
        delivered[category_of.get(name, "?")] += count

    table = Table(title="Events per category", title_justify="left")
    table.add_column("category")
    table.add_column("published", justify="right")
    table.add_column("delivered", justify="right")
    for category in known_categories():
        if published[category] or delivered[category]:
            table.add_row(
                category, f"{published[category]:,}", f"{delivered[category]:,}"
            )
    return table


def _handlers_table(metrics: MetricsSnapshot) -> Table:
    errors: Counter[str] = Counter()
    for key, count in metrics["handler_errors"].items():
        errors[key.rsplit(":", 1)[0]] += count

    table = Table(title="Handlers", title_justify="left")
    table.add_column("handler", overflow="fold")
    for column in ("runs", "errors", "retries", "p50", "p99"):
        table.add_column(column, justify="right")
    for name, runs in sorted(metrics["handler_runs"].items()):
        table.add_row(
            _short(name),
            f"{runs:,}",
            f"{errors[name]:,}",
            f"{metrics['retries'][name]:,}",
            _ms(metrics.duration_percentile_s(0.50, name)),
            _ms(metrics.duration_percentile_s(0.99, name)),
        )
    return table


def _short(handler: str) -> str:
    # "workers.handlers.tools:ToolAvailability.returned" -> "tools:returned"
    module, _, qualname = handler.partition(":")
    return f"{module.rpartition('.')[2]}:{qualname.rpartition('.')[2]}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
