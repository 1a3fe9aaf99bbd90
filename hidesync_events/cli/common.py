"""What the commands share: choosing the broker, exit codes, error reporting."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import redis
from kombu.exceptions import OperationalError

from hidesync_events.errors import BrokerUnavailableError, ConfigurationError
from hidesync_events.settings import configure, get_settings
from hidesync_events.worker import import_modules

EXIT_REJECTED = 1
EXIT_UNREACHABLE = 3

broker_option = click.option(
    "--broker",
    "broker_url",
    metavar="URL",
    help="Broker URL (redis://..., amqp://...); default: HIDESYNC_EVENTS_BROKER_URL.",
)

handlers_option = click.option(
    "-m",
    "--handlers",
    "handler_modules",
    multiple=True,
    metavar="MODULE",
    help="Import these modules for their event types and handlers "
    "(default: HIDESYNC_EVENTS_HANDLER_MODULES).",
)


def import_handler_modules(
    handler_modules: tuple[str, ...], *, needed_for: str
) -> None:
    """Import the modules given with --handlers (as a worker does: a module that does
    not exist is a usage error), or else the settings' (a warning says what
    ``needed_for`` then lacks)."""
    # Application event types, and their handlers, are declared in these modules.
    if handler_modules:
        import_modules(handler_modules)
        return

    for module in get_settings().handler_modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            click.echo(
                f"warning: cannot import handler module {module!r} ({error}); "
                f"{needed_for}",
                err=True,
            )


def use_celery(broker_url: str | None, **overrides: Any) -> None:
    """Switch this process to Celery mode, keeping the other settings."""
    settings = get_settings().model_dump()
    settings.update(mode="celery", **overrides)
    if broker_url:
        settings["broker_url"] = broker_url
    configure(**settings)


@contextmanager
def reporting_unreachable() -> Iterator[None]:
    """Turn "cannot reach the broker or the state store" into one line and exit 3."""
    try:
        yield
    except (BrokerUnavailableError, OperationalError, redis.RedisError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    except ConfigurationError as error:
        raise click.UsageError(str(error)) from None
