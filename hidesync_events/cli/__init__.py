"""The ``hidesync-events`` command line.

    hidesync-events demo                      # the whole pipeline on the embedded default
    hidesync-events worker -c tools -c steps  # a worker for some categories
    hidesync-events publish day.jsonl         # bulk publish recorded events
    hidesync-events dead-letters list         # what could not be handled
    hidesync-events events                    # the event catalogue
    hidesync-events stats --watch             # queues, consumers, handled, failed

Exit codes: 0 success, 1 some input rejected or a check failed, 2 usage error,
3 the broker or state store could not be reached.
"""

from __future__ import annotations

import logging

import click

from hidesync_events.cli.dead_letters import dead_letters
from hidesync_events.cli.demo import demo
from hidesync_events.cli.events import events
from hidesync_events.cli.publish import publish
from hidesync_events.cli.stats import stats
from hidesync_events.cli.worker import worker
from hidesync_events.errors import ConfigurationError
from hidesync_events.handling import CorrelationFilter
from hidesync_events.settings import LOG_LEVEL_VARIABLE


class _Commands(click.Group):
    """The commands, with invalid settings reported as a usage error (exit 2) in one
    line: settings are read when a command first needs them, anywhere inside it."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            raise click.UsageError(str(error)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    envvar=LOG_LEVEL_VARIABLE,
    help="Level of the hidesync.events loggers.",
)
@click.version_option(package_name="hidesync-events")
def main(log_level: str) -> None:
    """Typed domain events for HideSync, dispatched in process or through Celery."""
    # The library never configures logging; its command line does.
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(CorrelationFilter())


main.add_command(demo)
main.add_command(worker)
main.add_command(publish)
main.add_command(dead_letters)
main.add_command(events)
main.add_command(stats)
