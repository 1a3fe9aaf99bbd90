"""Events and handlers of the conformance suite.

The same module runs in the test process (eager mode) and in ``celery worker``
subprocesses (Celery mode). Handlers write what they saw to the bus's key-value store
(memory in eager mode, the test's Redis in Celery mode), where the tests read it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from celery import current_task
from opentelemetry import trace
from pydantic import Field

from hidesync_events import (
    DomainEvent,
    RetryPolicy,
    current_envelope,
    effects,
    global_event_bus,
)

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_s=0.05, max_backoff_s=0.2)


class Grain(enum.Enum):
    VEGETABLE_TANNED = "veg"
    CHROME_TANNED = "chrome"


class Ping(DomainEvent, category="conformance"):
    token: str = ""


class PingOfTools(Ping, category="tools"):
    """A subclass on another queue: base-class handlers still receive it."""


class FlakyJob(DomainEvent, category="conformance"):
    token: str = ""


class DoomedJob(DomainEvent, category="conformance"):
    token: str = ""


class AsyncJob(DomainEvent, category="conformance"):
    token: str = ""


class HideOrdered(DomainEvent, category="conformance"):
    """Declared fields of every type that JSON does not carry natively."""

    token: str = ""
    price: Decimal = Decimal("0")
    supplier_ref: UUID | None = None
    ordered_at: datetime | None = None
    delivery_day: date | None = None
    grain: Grain = Grain.VEGETABLE_TANNED
    swatch: bytes = b""
    colours: set[str] = Field(default_factory=set)


class LegacyHideShipped(DomainEvent, category="conformance"):
    """The older style: a custom __init__ assigning attributes, an enum's name."""

    def __init__(self, token: str, carrier: str, grain: Grain) -> None:
        super().__init__()
        self.token = token
        self.carrier = carrier
        self.grain = grain.name


class HideRestocked(DomainEvent, category="conformance"):
    """Handled once per event by one handler and on every delivery by another."""

    token: str = ""


class FlakyIdempotentJob(DomainEvent, category="conformance"):
    token: str = ""


class CascadeStarted(DomainEvent, category="conformance"):
    token: str = ""


class CascadeFollowed(DomainEvent, category="conformance"):
    token: str = ""


def record(handler: str, event: DomainEvent, **details: Any) -> None:
    """Append what ``handler`` saw to its list in the bus's store."""
    envelope = current_envelope()
    task = current_task  # set on a worker, None in eager mode
    request = task.request if task else None
    line = {
        "worker": request.hostname if request else None,
        "queue": (request.delivery_info or {}).get("routing_key") if request else None,
        "event_id": event.event_id,
        "token": getattr(event, "token", ""),
        "type": type(event).__name__,
        "pid": os.getpid(),
        "correlation_id": envelope.correlation_id if envelope else None,
        "causation_id": envelope.causation_id if envelope else None,
        "trace_id": _current_trace_id(),
        **details,
    }
    kv = global_event_bus.runtime.kv
    kv.rpush(f"conformance:{handler}", json.dumps(line, default=str))


def _current_trace_id() -> str | None:
    # The span a handler runs in, when tracing is on (HIDESYNC_EVENTS_TRACING).
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def records(handler: str, token: str) -> list[dict[str, Any]]:
    """What ``handler`` recorded for events carrying ``token``."""
    kv = global_event_bus.runtime.kv
    lines = [json.loads(text) for text in kv.lrange(f"conformance:{handler}", 0, -1)]
    return [line for line in lines if line["token"] == token]


@global_event_bus.subscribe
def on_ping(event: Ping) -> None:
    record("on_ping", event)


@global_event_bus.subscribe
def on_any_event(event: DomainEvent) -> None:
    record("on_any_event", event)


def fail_twice(handler: str, event: DomainEvent) -> None:
    """Record the attempt; fail the first two of each event."""
    key = f"conformance:attempts:{event.event_id}"
    attempt = global_event_bus.runtime.kv.hincrby(key, handler)
    record(handler, event, attempt=attempt)
    if attempt < 3:
        raise ConnectionError(f"supplier unreachable (attempt {attempt})")


@global_event_bus.subscribe(retry=FAST_RETRY)
def flaky(event: FlakyJob) -> None:
    fail_twice("flaky", event)


@global_event_bus.subscribe
def flaky_sibling(event: FlakyJob) -> None:
    record("flaky_sibling", event)


@global_event_bus.subscribe(retry=FAST_RETRY)
def doomed(event: DoomedJob) -> None:
    record("doomed", event)
    raise ValueError(f"hide {event.token} is not in stock")


@global_event_bus.subscribe
async def async_job(event: AsyncJob) -> None:
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    record("async_job", event, loop=id(loop), thread=threading.current_thread().name)


@global_event_bus.subscribe
def hide_ordered(event: HideOrdered) -> None:
    values = {
        name: [type(getattr(event, name)).__name__, repr(getattr(event, name))]
        for name in HideOrdered.model_fields
        if name != "colours"
    }
    values["colours"] = ["set", sorted(event.colours)]
    record("hide_ordered", event, values=values)


@global_event_bus.subscribe
def legacy_hide_shipped(event: LegacyHideShipped) -> None:
    record(
        "legacy_hide_shipped",
        event,
        carrier=event.carrier,  # type: ignore[attr-defined]
        grain=event.grain,  # type: ignore[attr-defined]
        klass=type(event).__name__,
    )


@global_event_bus.subscribe
def cascade_started(event: CascadeStarted) -> None:
    record("cascade_started", event)
    global_event_bus.publish(CascadeFollowed(token=event.token))


@global_event_bus.subscribe
def cascade_followed(event: CascadeFollowed) -> None:
    record("cascade_followed", event)


@global_event_bus.subscribe
def restock_once(event: HideRestocked) -> None:
    record("restock_once", event)


@global_event_bus.subscribe(idempotent=True)
def restock_count(event: HideRestocked) -> None:
    # Subscribed after restock_once: by its second record, the second delivery has
    # already asked restock_once too.
    effects().hincrby(f"conformance:restock:{event.token}", "counted")
    record("restock_count", event)


@global_event_bus.subscribe(retry=FAST_RETRY, idempotent=True)
def flaky_idempotent(event: FlakyIdempotentJob) -> None:
    fail_twice("flaky_idempotent", event)
