"""``hidesync-events events``: the event catalogue, with queues and handlers."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hidesync_events.asyncapi import ASYNCAPI_VERSION, asyncapi_text, build_asyncapi
from hidesync_events.bus import global_event_bus
from hidesync_events.categories import queue_name
from hidesync_events.event import DomainEvent, registered_event_types
from hidesync_events.worker import import_modules


@click.command()
@click.option(
    "-m",
    "--handlers",
    "handler_modules",
    multiple=True,
    metavar="MODULE",
    help="Import these handler modules first (default: HIDESYNC_EVENTS_HANDLER_MODULES).",
)
@click.option("--json", "as_json", is_flag=True, help="The catalogue as JSON.")
@click.option("--json-schema", is_flag=True, help="The JSON Schema of every event.")
@click.option(
    "--asyncapi",
    "asyncapi_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="PATH",
    help="Write an AsyncAPI 3.0.0 document of the queues and events to PATH "
    "(YAML if it ends in .yaml or .yml, else JSON; - for standard output).",
)
def events(
    handler_modules: tuple[str, ...],
    as_json: bool,
    json_schema: bool,
    asyncapi_path: Path | None,
) -> None:
    """List every registered event: wire name, category, queue, fields, handlers."""
    if asyncapi_path is not None and (as_json or json_schema):
        raise click.UsageError(
            "--asyncapi cannot be combined with --json or --json-schema"
        )

    import_modules(handler_modules or global_event_bus.settings.handler_modules)

    if asyncapi_path is not None:
        _write_asyncapi(asyncapi_path)
        return

    event_types = sorted(
        registered_event_types().values(),
        key=lambda cls: (cls.__event_meta__.category, cls.__event_meta__.name),
    )
    if json_schema:
        schemas = {
            cls.__event_meta__.name: cls.model_json_schema() for cls in event_types
        }
        click.echo(json.dumps(schemas, indent=2))
        return

    rows = [_describe(cls) for cls in event_types]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return

    table = Table()
    for column in ("event", "category", "queue", "fields", "handlers"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["event"]),
            str(row["category"]),
            str(row["queue"]),
            ", ".join(row["fields"]),  # type: ignore[arg-type]
            "\n".join(row["handlers"]) or "-",  # type: ignore[arg-type]
        )
    Console().print(table)


def _write_asyncapi(path: Path) -> None:
    document = build_asyncapi()
    try:
        text = asyncapi_text(document, path)
    except ImportError as error:
        raise click.ClickException(str(error)) from None

    if str(path) == "-":
        click.echo(text, nl=False)
        return

    path.write_text(text, encoding="utf-8")
    click.echo(
        f"wrote an AsyncAPI {ASYNCAPI_VERSION} document to {path}: "
        f"{len(document['channels'])} channels, "
        f"{len(document['components']['messages'])} messages"
    )


def _describe(cls: type[DomainEvent]) -> dict[str, object]:
    meta = cls.__event_meta__
    base_fields = DomainEvent.model_fields
    return {
        "event": meta.name,
        "category": meta.category,
        "queue": queue_name(meta.category),
        "schema_version": meta.schema_version,
        "fields": [name for name in cls.model_fields if name not in base_fields],
        "handlers": [s.name for s in global_event_bus.registry.handlers_for(cls)],
    }
