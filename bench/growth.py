"""How costs grow: with event size, handler count, queue depth and worker count.

    python -m bench growth

Prints one table per dimension, each figure the best of three runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from bench import inprocess
from bench.perf_handlers import Benchmarked, BenchmarkedIdle
from bench.queues import OUR_IDLE, OUR_QUEUE
from hidesync_events import DomainEvent, EventBus, configure, global_event_bus
from hidesync_events.redis_server import ThrowawayRedis
from tests.support.fleet import WorkerFleet


class Sized(DomainEvent, category="bench"):
    """An event whose payload is a text of the size under test."""

    text: str = ""


def eager_by_size(sizes: list[int], number: int) -> list[tuple[str, str]]:
    bus = EventBus(mode="eager")
    bus.subscribe(Sized, lambda event: None, name="bench:sized")
    rows = []
    for size in sizes:
        events = iter([Sized(text="x" * size) for _ in range(number * 3 + 10)])

        def publish_next(it: Iterator[Sized] = events) -> None:
            bus.publish(next(it))

        cost = inprocess.per_call_us(publish_next, number)
        rows.append((f"{size:,} B payload", f"{cost:.1f} us per eager publish"))
    return rows


def eager_by_handlers(counts: list[int], number: int) -> list[tuple[str, str]]:
    return [
        (
            f"{count} handlers",
            f"{inprocess.eager_publish_us(count, number):.1f} us per publish",
        )
        for count in counts
    ]


def publish_by_depth(redis: ThrowawayRedis, depths: list[int]) -> list[tuple[str, str]]:
    rows = []
    for depth in depths:
        redis.client().delete(OUR_IDLE)
        global_event_bus.publish_many([BenchmarkedIdle() for _ in range(depth)])
        events = [BenchmarkedIdle() for _ in range(1000)]
        started = time.perf_counter()
        for event in events:
            global_event_bus.publish(event)
        rate = len(events) / (time.perf_counter() - started)
        rows.append((f"{depth:,} messages already queued", f"{rate:,.0f} publishes/s"))
    redis.client().delete(OUR_IDLE)
    return rows


def e2e_by_workers(
    redis: ThrowawayRedis, counts: list[int], events: int
) -> list[tuple[str, str]]:
    rows = []
    for processes in counts:
        fleet = WorkerFleet(redis.url)
        fleet.start(
            f"growth{processes}",
            categories=("bench",),
            handler_modules=("bench.perf_handlers",),
            concurrency=processes,
            loglevel="WARNING",
        )
        batch = [Benchmarked() for _ in range(events)]
        started = time.perf_counter()
        for chunk in range(0, events, 500):
            global_event_bus.publish_many(batch[chunk : chunk + 500])
        client = redis.client()
        while client.llen(OUR_QUEUE) or client.hlen("unacked"):
            time.sleep(0.01)
        rate = events / (time.perf_counter() - started)
        fleet.stop()
        rows.append(
            (
                f"{processes} worker processes",
                f"{rate:,.0f} events/s end to end, batched",
            )
        )
    return rows


def table(title: str, rows: list[tuple[str, str]]) -> Table:
    shown = Table(title=title, title_justify="left")
    shown.add_column("setting")
    shown.add_column("measured")
    for setting, measured in rows:
        shown.add_row(setting, measured)
    return shown


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m bench growth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    console = Console(width=100)
    console.print(
        table(
            "Event size (eager, one handler)",
            eager_by_size([100, 1000, 10000, 100000], 2000),
        )
    )
    console.print(
        table("Handler count (eager)", eager_by_handlers([0, 1, 10, 100], 2000))
    )
    with ThrowawayRedis() as redis:
        configure(mode="celery", broker_url=redis.url, handler_modules=())
        console.print(
            table(
                "Queue depth (publishing to Redis)",
                publish_by_depth(redis, [0, 100000]),
            )
        )
        console.print(table("Worker count", e2e_by_workers(redis, [1, 2, 4], 20000)))
        global_event_bus.close()
    return 0
