"""``hidesync-events worker``: run a Celery worker for some categories."""

from __future__ import annotations

import os

import click

from hidesync_events.bus import global_event_bus
from hidesync_events.categories import known_categories, queue_name
from hidesync_events.cli.common import broker_option, use_celery
from hidesync_events.errors import ConfigurationError
from hidesync_events.transports import CeleryTransport
from hidesync_events.worker import check_fleet_settings, import_handler_modules


@click.command()
@click.argument("categories", nargs=-1, metavar="[CATEGORY]...")
@click.option(
    "-m",
    "--handlers",
    "handler_modules",
    multiple=True,
    metavar="MODULE",
    help="A module whose handlers to run (repeatable); "
    "default: HIDESYNC_EVENTS_HANDLER_MODULES.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Worker processes or threads.",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
)
@click.option(
    "--task-events",
    is_flag=True,
    help="Send task events, for Flower and celery events.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port "
    "(default: HIDESYNC_EVENTS_METRICS_PORT; none).",
)
@click.option(
    "-n",
    "--hostname",
    metavar="NAME",
    help="The worker's node name, as Celery's -n (%h: this host). It is the name "
    "stats shows as the consumer of the worker's queues. Default: hidesync-<process "
    "id>@%h, so that each worker on a host is told apart.",
)
@broker_option
@click.option(
    "--loglevel", default="INFO", show_default=True, help="Celery's log level."
)
def worker(
    categories: tuple[str, ...],
    handler_modules: tuple[str, ...],
    concurrency: int | None,
    pool: str,
    task_events: bool,
    metrics_port: int | None,
    hostname: str | None,
    broker_url: str | None,
    loglevel: str,
) -> None:
    """Run a Celery worker for the queues of CATEGORY... (default: every category).

    \b
        hidesync-events worker tools workflows --concurrency 4
    """
    overrides: dict[str, object] = {}
    if handler_modules:
        overrides["handler_modules"] = handler_modules
    if metrics_port:
        overrides["metrics_port"] = metrics_port
    use_celery(broker_url, **overrides)

    # Handler modules may declare application categories: import them before
    # checking the names asked for.
    import_handler_modules(global_event_bus.settings)
    transport = global_event_bus.transport
    assert isinstance(transport, CeleryTransport)
    try:
        check_fleet_settings(transport.runtime.settings, global_event_bus.registry)
    except ConfigurationError as error:
        raise click.UsageError(str(error)) from None

    known = known_categories()
    unknown = [name for name in categories if name not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown categories {', '.join(unknown)}; known: {', '.join(known)}",
            param_hint="CATEGORY",
        )

    queues = ",".join(queue_name(name) for name in categories or known)
    # A worker announces its queues under its node name: Celery's default,
    # celery@<host>, is the same for every worker on a host, so the last one to
    # start would hide the others.
    hostname = hostname or f"hidesync-{os.getpid()}@%h"
    argv = ["worker", "-Q", queues, "--hostname", hostname]
    argv += ["--pool", pool, "--loglevel", loglevel]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if task_events:
        argv.append("--task-events")
    transport.app.worker_main(argv)
