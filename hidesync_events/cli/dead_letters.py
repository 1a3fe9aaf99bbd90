"""``hidesync-events dead-letters``: list, show, replay and purge dead letters."""

from __future__ import annotations

import contextlib
import json
import re
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hidesync_events.bus import global_event_bus
from hidesync_events.cli.common import (
    EXIT_REJECTED,
    broker_option,
    handlers_option,
    import_handler_modules,
    reporting_unreachable,
    use_celery,
)
from hidesync_events.codec import decode
from hidesync_events.dead_letters import DeadLetter, Reason
from hidesync_events.errors import CodecError
from hidesync_events.reaching import reaching

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> timedelta | None:
    if value is None:
        return None

    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter(
            f"expected a duration like 30s, 15m, 2h or 7d, got {value!r}"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def _filters(function: Any) -> Any:
    options = [
        click.option(
            "--event-type", metavar="NAME", help="Only letters of this event type."
        ),
        click.option("--handler", metavar="NAME", help="Only letters of this handler."),
        click.option(
            "--reason",
            type=click.Choice([r.value for r in Reason]),
            help="Only this reason.",
        ),
        click.option(
            "--older-than",
            callback=_duration,
            metavar="AGE",
            help="Only letters older (2h).",
        ),
        click.option(
            "--newer-than",
            callback=_duration,
            metavar="AGE",
            help="Only letters newer (15m).",
        ),
        broker_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _select(broker_url: str | None, **filters: Any) -> list[DeadLetter]:
    use_celery(broker_url)
    with _reaching_the_store():
        return global_event_bus.dead_letters.list(**filters)


def _reaching_the_store() -> AbstractContextManager[None]:
    # Said as stats says it: the dead letters are in the state store, which need not
    # be the broker.
    return reaching("state store", global_event_bus.settings.resolved_state_url)


@click.group("dead-letters")
def dead_letters() -> None:
    """Events that could not be handled, kept with why (Celery mode's Redis store)."""


@dead_letters.command("list")
@_filters
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_letters(
    broker_url: str | None, limit: int | None, as_json: bool, **filters: Any
) -> None:
    """List dead letters, oldest first."""
    with reporting_unreachable():
        letters = _select(broker_url, limit=limit, **filters)

    if as_json:
        for letter in letters:
            click.echo(letter.to_json())
        return

    table = Table(
        "id", "failed at", "reason", "event type", "handler", "attempts", "error"
    )
    for letter in letters:
        table.add_row(
            letter.id,
            letter.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.reason,
            letter.event_type or "-",
            letter.handler or "-",
            str(letter.attempts),
            _one_line(f"{letter.error_type.rpartition('.')[2]}: {letter.error}", 60),
        )
    Console().print(table)
    click.echo(f"{len(letters)} dead letters")


@dead_letters.command("show")
@click.argument("letter_id")
@broker_option
def show(letter_id: str, broker_url: str | None) -> None:
    """Show one dead letter in full, envelope and traceback included."""
    with reporting_unreachable():
        [letter] = _by_ids((letter_id,), _select(broker_url))

    data = asdict(letter)
    data["first_failed_at"] = letter.first_failed_at.isoformat()
    data["last_failed_at"] = letter.last_failed_at.isoformat()
    if letter.envelope:
        with contextlib.suppress(ValueError):
            data["envelope"] = json.loads(letter.envelope)
    click.echo(json.dumps(data, indent=2))


@dead_letters.command("replay")
@click.argument("letter_ids", nargs=-1)
@_filters
@handlers_option
@click.option(
    "--dry-run", is_flag=True, help="Say what would be replayed; change nothing."
)
def replay(
    letter_ids: tuple[str, ...],
    broker_url: str | None,
    handler_modules: tuple[str, ...],
    dry_run: bool,
    **filters: Any,
) -> None:
    """Send dead letters back to the handler that failed (or to all, for a letter that
    never reached a handler), then remove them. Give ids, filters, or both.
    """
    # The application's event classes must be known to decode its letters.
    import_handler_modules(
        handler_modules, needed_for="letters of its event types cannot be replayed"
    )
    with reporting_unreachable():
        letters = _chosen(letter_ids, broker_url, filters)
        failed = 0
        for letter in letters:
            failed += not _replay_one(letter, dry_run)

    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(letters) - failed} of {len(letters)} dead letters")
    if failed:
        raise SystemExit(EXIT_REJECTED)


@dead_letters.command("purge")
@click.argument("letter_ids", nargs=-1)
@_filters
@click.option(
    "--dry-run", is_flag=True, help="Say what would be removed; change nothing."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(
    letter_ids: tuple[str, ...],
    broker_url: str | None,
    dry_run: bool,
    yes: bool,
    **filters: Any,
) -> None:
    """Remove dead letters for good. Give ids, filters, or both."""
    with reporting_unreachable():
        letters = _chosen(letter_ids, broker_url, filters)
        if dry_run:
            for letter in letters:
                click.echo(
                    f"would remove {letter.id} ({letter.reason}, {letter.event_type})"
                )
            click.echo(f"would remove {len(letters)} dead letters")
            return

        if letters and not yes:
            click.confirm(f"remove {len(letters)} dead letters?", abort=True)
        with _reaching_the_store():
            removed = global_event_bus.dead_letters.delete(
                *(letter.id for letter in letters)
            )

    click.echo(f"removed {removed} dead letters")


def _chosen(
    letter_ids: tuple[str, ...], broker_url: str | None, filters: dict[str, Any]
) -> list[DeadLetter]:
    if not letter_ids and not any(value is not None for value in filters.values()):
        raise click.UsageError("give dead letter ids or at least one filter")

    letters = _select(broker_url, **filters)
    return _by_ids(letter_ids, letters) if letter_ids else letters


def _by_ids(letter_ids: tuple[str, ...], letters: list[DeadLetter]) -> list[DeadLetter]:
    # An id may be shortened to any prefix that names one letter, as in git.
    chosen = []
    for wanted in letter_ids:
        matches = [letter for letter in letters if letter.id.startswith(wanted)]
        if not matches:
            raise click.ClickException(f"no dead letter with id {wanted!r}")
        if len(matches) > 1:
            raise click.ClickException(
                f"{wanted!r} is the start of {len(matches)} dead letter ids; give more of it"
            )
        chosen.append(matches[0])
    return chosen


def _replay_one(letter: DeadLetter, dry_run: bool) -> bool:
    target = letter.handler or "all handlers"
    try:
        if dry_run:
            decode(
                letter.envelope or "",
                max_bytes=global_event_bus.settings.max_envelope_bytes,
            )
            click.echo(f"would replay {letter.id} ({letter.event_type}) to {target}")
        else:
            global_event_bus.replay(letter)
            click.echo(f"replayed {letter.id} ({letter.event_type}) to {target}")
    except CodecError as error:
        click.echo(
            f"{letter.id}: still cannot be decoded ({error.reason}): {error}", err=True
        )
        return False
    except ValueError as error:
        click.echo(f"{letter.id}: {error}", err=True)
        return False
    return True


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
