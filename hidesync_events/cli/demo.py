"""``hidesync-events demo``: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from hidesync_events.cli.common import EXIT_REJECTED, reporting_unreachable


@click.command()
@click.option(
    "--broker",
    "broker_url",
    metavar="URL",
    # Unlike the other commands: the demo's point is to need no server of yours.
    help="Publish to this broker (redis://..., amqp://...) for your own worker fleet; "
    "without it the demo runs a fleet of its own, whatever "
    "HIDESYNC_EVENTS_BROKER_URL says.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help="Embedded worker processes (each consumes a group of categories).",
)
@click.option(
    "--events",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON Lines file to publish instead of the recorded workshop day.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for the fleet to handle everything.",
)
def demo(
    broker_url: str | None, workers: int, path: Path | None, timeout_s: float
) -> None:
    """Publish a recorded workshop day through Celery and report what was handled.

    With no --broker it needs no server: it starts a throwaway redis-server and worker
    processes when redis-server is installed, and otherwise uses Celery's in-memory
    transport with a worker in this process. With --broker it publishes to your broker
    for your own worker fleet.
    """
    from hidesync_events.demo import run_demo

    with reporting_unreachable():
        figures = run_demo(
            Console(),
            broker_url=broker_url,
            workers=workers,
            path=path,
            timeout_s=timeout_s,
        )

    if not figures.complete:
        raise SystemExit(EXIT_REJECTED)
