"""What a running handler can reach: its envelope, and its atomic effects.

Both live in a context variable set around each handler call, so they follow the
handler into threads (``asyncio.to_thread``) and onto the process's handler loop.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from hidesync_events.codec import Envelope
from hidesync_events.keyvalue import KeyValueBatch, RecordedBatch


class HandlerScope:
    """The running handler's name and envelope, and the writes it recorded."""

    __slots__ = ("batch", "envelope", "handler")

    def __init__(self, envelope: Envelope, handler: str = "") -> None:
        self.envelope = envelope
        self.handler = handler
        self.batch: RecordedBatch | None = None


_scope: contextvars.ContextVar[HandlerScope | None] = contextvars.ContextVar(
    "hidesync_events_handler_scope", default=None
)


#: Make a scope the running handler's; pass the token it returns to :func:`leave_scope`.
#: (The context variable's own methods: this runs around every handler call.)
enter_scope = _scope.set
leave_scope = _scope.reset


@contextmanager
def handling(envelope: Envelope) -> Iterator[HandlerScope]:
    """Make ``envelope`` the current one for the code run inside."""
    scope = HandlerScope(envelope)
    token = enter_scope(scope)
    try:
        yield scope
    finally:
        leave_scope(token)


def current_envelope() -> Envelope | None:
    """The envelope whose handler is running in this context, if any.

    Events published while a handler runs take its correlation id, and its event id
    as their causation id.
    """
    scope = _scope.get()
    return scope.envelope if scope is not None else None


def effects() -> KeyValueBatch:
    """The running handler's writes to the bus's store, applied exactly once.

    Writes queued on this batch are applied in one atomic step together with the
    record that the handler completed: if the handler raises, or its process dies
    first, none of them happen and the handler runs again; once they happened, a
    redelivered event skips the handler. Keep a handler's own state this way and its
    effect happens once per event even though delivery is at least once.

        effects().hincrby("workshop:steps", event.step_type, 1)
    """
    scope = _scope.get()
    if scope is None:
        raise RuntimeError("effects() is only available while a handler runs")

    if scope.batch is None:
        scope.batch = RecordedBatch()
    return scope.batch


class CorrelationFilter(logging.Filter):
    """Adds the running handler's event to every log record made while it runs.

    Records get ``event_type``, ``event_id``, ``correlation_id``, ``causation_id`` and
    ``handler`` (``None`` outside a handler), so a JSON formatter can index them and a
    text format can show them (``%(correlation_id)s``). Attach it to a handler of your
    logging configuration; the command line and the worker attach it to theirs. It
    never drops a record, and leaves fields a record already has.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get()
        envelope = scope.envelope if scope is not None else None
        fields = {
            "event_type": envelope.event_type if envelope else None,
            "event_id": envelope.event_id if envelope else None,
            "correlation_id": envelope.correlation_id if envelope else None,
            "causation_id": envelope.causation_id if envelope else None,
            "handler": scope.handler if scope is not None else None,
        }
        for name, value in fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
