"""``hidesync-events demo``: a recorded workshop day through the Celery path.

It publishes the recorded day (or a file of yours) to a fleet, watches the fleet's
counters until every event and every retry has been handled, and prints the figures
and what the reference handlers computed. See :mod:`hidesync_events.demo.fleet` for
where the events go.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from hidesync_events.bus import global_event_bus
from hidesync_events.demo.fleet import ExternalFleet, Fleet, embedded_fleet
from hidesync_events.demo.report import DemoFigures, render
from hidesync_events.event import new_event_id
from hidesync_events.metrics import MetricsSnapshot
from hidesync_events.recorded import Recorded, read_lines, recorded_workshop_day

__all__ = ["run_demo"]


def run_demo(
    console: Console,
    *,
    broker_url: str | None = None,
    workers: int = 2,
    path: Path | None = None,
    timeout_s: float = 300.0,
) -> DemoFigures:
    """Publish a recorded day to a fleet, wait for it to be handled, print the report.

    Each run gives the events fresh ids (keeping everything else), so a fleet that has
    handled the day before handles it again instead of skipping it as a duplicate.
    """
    source = path or recorded_workshop_day()
    lines = source.read_text(encoding="utf-8").splitlines()
    fleet = ExternalFleet(broker_url) if broker_url else embedded_fleet(workers)
    console.print(f"publishing {source.name} to {fleet.description}")

    with fleet, _progress(console) as progress:
        # Reference handlers are imported here too, to read their results.
        importlib.import_module("workers.handlers")

        before = fleet.totals()
        started = time.perf_counter()
        published, rejected = _publish(lines, progress)
        publish_s = time.perf_counter() - started

        complete = _wait_until_handled(
            fleet, before, sum(published.values()), progress, timeout_s
        )
        fleet.incomplete = not complete
        handle_s = time.perf_counter() - started
        figures = DemoFigures(
            published=published,
            rejected=rejected,
            publish_s=publish_s,
            handle_s=handle_s,
            metrics=_difference(fleet.totals(), before),
            complete=complete,
        )
        from hidesync_events.demo.results import reference_results

        render(console, figures, reference_results())
        if broker_url:
            console.print(
                "The reference handlers' figures are your fleet's totals, earlier runs "
                "included; the figures above them count this run only."
            )

    return figures


def _publish(lines: list[str], progress: Progress) -> tuple[Counter[str], int]:
    max_bytes = global_event_bus.settings.max_envelope_bytes
    task = progress.add_task("publishing", total=len(lines))
    published: Counter[str] = Counter()
    rejected = 0
    for item in read_lines(lines, max_bytes=max_bytes):
        if isinstance(item, Recorded):
            event = item.envelope.event.model_copy(update={"event_id": new_event_id()})
            global_event_bus.publish(event)
            published[item.envelope.event_type] += 1
        else:
            rejected += 1
        progress.update(task, completed=item.line)
    return published, rejected


def _wait_until_handled(
    fleet: Fleet,
    before: MetricsSnapshot,
    published: int,
    progress: Progress,
    timeout_s: float,
) -> bool:
    task = progress.add_task("handled", total=published)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _difference(fleet.totals(), before)
        delivered = (
            now.total("delivered")
            + now.total("dead_letters")
            - now["dead_letters"]["handler_failed"]
        )
        progress.update(task, completed=min(delivered, published))
        if delivered >= published and now.total("retried") >= now.total("retries"):
            return True
        time.sleep(0.25)
    return False


def _difference(after: MetricsSnapshot, before: MetricsSnapshot) -> MetricsSnapshot:
    result = MetricsSnapshot()
    for family, counter in after.counters.items():
        result.counters[family].update(counter)
        result.counters[family].subtract(before.counters[family])
        result.counters[family] = +result.counters[family]
    return result


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
