"""An AsyncAPI 3.0.0 document of the events: the broker, one channel per category
queue, one message per registered event type, and who sends and receives on each.

Every schema is derived from the pydantic models. A message's payload is the envelope
(see :mod:`hidesync_events.codec`), whose ``payload`` property refers to the event
class's own JSON Schema; both live once under ``components/schemas`` and are reached
by ``$ref``. The event's ``event_id`` and ``timestamp`` travel in the envelope's header,
though the event schema lists them as the model has them.

On the broker each envelope is the first argument of a Celery task message of the
``hidesync_events.deliver`` task (protocol 2, JSON); the document describes the
envelope, the part an application reads and writes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic.json_schema import models_json_schema

from hidesync_events import __version__
from hidesync_events.categories import known_categories, queue_name
from hidesync_events.celery_app import DELIVER_TASK
from hidesync_events.codec import ENVELOPE_VERSION, _envelope_model
from hidesync_events.event import DomainEvent, registered_event_types
from hidesync_events.settings import Settings, get_settings

ASYNCAPI_VERSION = "3.0.0"

#: The id of the one server, the configured broker, under ``servers``.
SERVER_ID = "broker"

_PROTOCOLS = {
    "redis": "redis",
    "rediss": "rediss",
    "unix": "redis",
    "amqp": "amqp",
    "pyamqp": "amqp",
    "amqps": "amqps",
}
#: What AsyncAPI allows in a component's key.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_]")


def build_asyncapi(
    settings: Settings | None = None,
    event_types: Iterable[type[DomainEvent]] | None = None,
) -> dict[str, Any]:
    """Return the AsyncAPI document, as JSON values, of ``event_types`` (default: every
    registered event type) on the broker and queues of ``settings``.
    """
    settings = settings or get_settings()
    chosen = sorted(
        registered_event_types().values() if event_types is None else event_types,
        key=lambda cls: (cls.__event_meta__.category, cls.__event_meta__.name),
    )
    keys = _message_keys(chosen)
    schemas, payloads = _schemas(chosen)
    server, secured = _server(settings.broker_url)

    components: dict[str, Any] = {
        "schemas": schemas,
        "messages": {
            keys[cls]: _message(cls, payloads[cls], keys[cls]) for cls in chosen
        },
        "messageTraits": {"deliverTask": _deliver_task_trait()},
        "correlationIds": {
            "correlationId": {
                "description": "Shared by an event and the events it caused.",
                "location": "$message.payload#/correlation_id",
            }
        },
    }
    if secured:
        components["securitySchemes"] = {
            "brokerPassword": {
                "type": "userPassword",
                "description": "The user and password of the broker URL.",
            }
        }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for category in known_categories():
        members = [keys[c] for c in chosen if c.__event_meta__.category == category]
        queue = queue_name(category, settings.queue_prefix)
        channels[category] = _channel(category, queue, members)
        operations.update(_operations(category, queue, members))

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": {SERVER_ID: server},
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def asyncapi_text(document: dict[str, Any], path: str | Path) -> str:
    """Return ``document`` as YAML when ``path`` ends with .yaml or .yml, else JSON.

    YAML needs PyYAML; without it this raises ``ImportError`` saying so.
    """
    if Path(path).suffix.lower() not in (".yaml", ".yml"):
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ImportError(
            f"writing {path} as YAML needs PyYAML (pip install pyyaml); "
            "or give a path ending in .json"
        ) from None

    # A copy through JSON shares no objects, so YAML writes no anchors and aliases.
    text: str = yaml.safe_dump(
        json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True
    )
    return text


# -- the parts ----------------------------------------------------------------------


def _info() -> dict[str, Any]:
    return {
        "title": "hidesync-events",
        "version": __version__,
        "description": (
            "Typed domain events of HideSync, the workshop-management backend. Each "
            "category of events has its Celery queue; publishers send an event's JSON "
            "envelope as the first argument of the `hidesync_events.deliver` task and "
            "workers receive it, run the handlers of its type, retry them and keep "
            "what fails as dead letters."
        ),
    }


def _server(broker_url: str) -> tuple[dict[str, Any], bool]:
    # Only the host and port: the user and password never reach the document.
    parts = urlsplit(broker_url)
    hostname = parts.hostname or "localhost"
    host = f"[{hostname}]" if ":" in hostname else hostname
    if parts.port is not None:
        host = f"{host}:{parts.port}"

    server: dict[str, Any] = {
        "host": host,
        "protocol": _PROTOCOLS.get(parts.scheme, parts.scheme),
        "title": "Celery broker",
        "description": "The broker of Celery mode (HIDESYNC_EVENTS_BROKER_URL).",
    }
    if parts.path not in ("", "/"):
        server["pathname"] = parts.path
    secured = bool(parts.username or parts.password)
    if secured:
        server["security"] = [{"$ref": "#/components/securitySchemes/brokerPassword"}]
    return server, secured


def _schemas(
    event_types: list[type[DomainEvent]],
) -> tuple[dict[str, Any], dict[type[DomainEvent], str]]:
    """Return every schema by component key, and each event's envelope schema key."""
    envelopes = {cls: _envelope_model(cls) for cls in event_types}
    refs, top = models_json_schema(
        [(model, "validation") for model in envelopes.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    payloads = {}
    for cls, model in envelopes.items():
        key = refs[(model, "validation")]["$ref"].rpartition("/")[2]
        _pin_header(schemas[key], cls)
        payloads[cls] = key
    return schemas, payloads


def _pin_header(envelope: dict[str, Any], cls: type[DomainEvent]) -> None:
    # The model types the header; the codec also fixes these three values per class.
    meta = cls.__event_meta__
    properties = envelope["properties"]
    properties["envelope_version"]["const"] = ENVELOPE_VERSION
    properties["type"]["const"] = meta.name
    properties["category"]["const"] = meta.category
    properties["timestamp"]["format"] = "date-time"
    envelope["description"] = (
        f"The envelope of a {meta.name} event (schema version {meta.schema_version}): "
        "the header, and the event's fields under payload."
    )


def _message(cls: type[DomainEvent], payload_key: str, key: str) -> dict[str, Any]:
    meta = cls.__event_meta__
    message: dict[str, Any] = {
        "name": meta.name,
        "title": cls.__name__,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{payload_key}"},
        "correlationId": {"$ref": "#/components/correlationIds/correlationId"},
        "traits": [{"$ref": "#/components/messageTraits/deliverTask"}],
        "tags": [{"name": meta.category}],
    }
    if cls.__doc__:
        message["summary"] = inspect.cleandoc(cls.__doc__).partition("\n")[0]
    return message


def _deliver_task_trait() -> dict[str, Any]:
    return {
        "description": "The Celery task message that carries the envelope.",
        "headers": {
            "type": "object",
            "properties": {
                "task": {"type": "string", "const": DELIVER_TASK},
                "id": {"type": "string", "description": "The Celery task id."},
            },
            "required": ["task", "id"],
        },
    }


def _channel(category: str, queue: str, members: list[str]) -> dict[str, Any]:
    return {
        "address": queue,
        "title": f"{category} events",
        "description": f"The Celery queue of the events of category {category!r}.",
        "servers": [{"$ref": f"#/servers/{SERVER_ID}"}],
        "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in members},
    }


def _operations(category: str, queue: str, members: list[str]) -> dict[str, Any]:
    def messages() -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{category}/messages/{key}"} for key in members]

    return {
        f"send_{category}": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{category}"},
            "title": f"Publish {category} events",
            "summary": f"EventBus.publish in Celery mode sends to {queue}.",
            "messages": messages(),
        },
        f"receive_{category}": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{category}"},
            "title": f"Handle {category} events",
            "summary": f"Workers (hidesync-events worker {category}) consume {queue}.",
            "messages": messages(),
        },
    }


def _message_keys(event_types: list[type[DomainEvent]]) -> dict[type[DomainEvent], str]:
    # A wire name may hold characters a component key may not; keys stay unique.
    keys: dict[type[DomainEvent], str] = {}
    taken: set[str] = set()
    for cls in event_types:
        base = _KEY_UNSAFE.sub("_", cls.__event_meta__.name)
        key, n = base, 2
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        keys[cls] = key
        taken.add(key)
    return keys
