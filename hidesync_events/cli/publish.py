"""``hidesync-events publish FILE.jsonl``: bulk publish recorded events."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from hidesync_events.bus import global_event_bus
from hidesync_events.cli.common import (
    EXIT_REJECTED,
    broker_option,
    handlers_option,
    import_handler_modules,
    reporting_unreachable,
    use_celery,
)
from hidesync_events.errors import BrokerUnavailableError
from hidesync_events.recorded import Recorded, read_lines


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected lines are written, as they were; default: beside PATH, "
    "named after it (day.jsonl: day.rejects.jsonl).",
)
@click.option(
    "--from-line",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Skip the lines before this one (to resume an interrupted run).",
)
@broker_option
@handlers_option
def publish(
    path: Path,
    rejects: Path | None,
    from_line: int,
    broker_url: str | None,
    handler_modules: tuple[str, ...],
) -> None:
    """Publish every event of PATH (JSON Lines) to the broker.

    Each line is {"type": "<event name>", "payload": {...}} or a full envelope. Bad
    lines are reported with their line numbers and written to the rejects file; the
    good lines are published all the same. Exits 1 when any line was rejected.
    """
    every_line = path.read_text(encoding="utf-8").splitlines()
    # Resuming past the end publishes nothing: most likely a mistyped line number.
    if from_line > max(len(every_line), 1):
        raise click.BadParameter(
            f"{path} has only {_count(len(every_line), 'line')}",
            param_hint="'--from-line'",
        )

    # A bulk load stops when the broker is away rather than filling the local spool.
    use_celery(broker_url, spool_enabled=False)
    # The application's event classes must be known to read lines of their types.
    import_handler_modules(
        handler_modules, needed_for="lines of its event types are rejected"
    )

    rejects = rejects or path.with_name(f"{path.stem}.rejects.jsonl")
    lines = every_line[from_line - 1 :]
    max_bytes = global_event_bus.settings.max_envelope_bytes
    console = Console(stderr=True)

    published = rejected = 0
    with (
        reporting_unreachable(),
        rejects.open("w", encoding="utf-8") as aside,
        _progress(console) as progress,
    ):
        task = progress.add_task("publishing", total=len(lines))
        for item in read_lines(lines, max_bytes=max_bytes):
            number = item.line + from_line - 1
            if isinstance(item, Recorded):
                _send(item, number)
                published += 1
            else:
                console.print(
                    f"line {number}: {item.reason}: {item.error}", markup=False
                )
                aside.write(item.raw + "\n")
                rejected += 1
            progress.update(task, completed=item.line)

    click.echo(f"published {_count(published, 'event')} from {path}")
    if rejected:
        click.echo(
            f"rejected {_count(rejected, 'line')}, written to {rejects}", err=True
        )
        raise SystemExit(EXIT_REJECTED)

    rejects.unlink()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _send(item: Recorded, number: int) -> None:
    try:
        global_event_bus.send_envelope(item.envelope)
    except BrokerUnavailableError as error:
        raise BrokerUnavailableError(
            f"{error}\nline {number} and the lines after it were not published; "
            f"resume with --from-line {number}"
        ) from error


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
