"""Optional OpenTelemetry spans: one per publish, one per handler run.

Off unless ``HIDESYNC_EVENTS_TRACING=true``; it needs the ``otel`` extra
(``pip install 'hidesync-events[otel]'``, which brings ``opentelemetry-api`` only: the
SDK, its exporter and where spans go are the application's to set up, as with any
instrumented library).

A publish opens a ``publish <EventType>`` span (kind PRODUCER) and writes its context
into the envelope's ``trace`` header with the configured propagator (W3C
``traceparent`` and ``baggage`` by default); so does sending an existing envelope
again (``send_envelope``, a replay, ``hidesync-events publish``), whose trace header
is replaced by the sender's. A handler run opens a ``handle <EventType>`` span (kind
CONSUMER) whose parent is that context, so one trace follows a request from the web
process through every worker that handled its events, and through the events those
handlers published in turn. A handler that raises marks its span as an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hidesync_events.codec import Envelope
from hidesync_events.errors import ConfigurationError

INSTRUMENTATION_NAME = "hidesync_events"


class Tracing:
    """Starts the spans of publishing and handling on OpenTelemetry's global tracer."""

    def __init__(self) -> None:
        try:
            from opentelemetry import context, propagate, trace
        except ImportError as error:
            raise ConfigurationError(
                "tracing is on (HIDESYNC_EVENTS_TRACING) but OpenTelemetry is not "
                "installed; pip install 'hidesync-events[otel]'"
            ) from error

        from hidesync_events import __version__

        self._context = context
        self._propagate = propagate
        self._kinds = trace.SpanKind
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__)

    @contextmanager
    def publishing(self, label: str, category: str | None) -> Iterator[dict[str, str]]:
        """A ``publish <label>`` span; yields the trace context to put in envelopes."""
        attributes: dict[str, Any] = {"messaging.operation.type": "send"}
        if category is not None:
            attributes["hidesync.category"] = category
        with self._tracer.start_as_current_span(
            f"publish {label}", kind=self._kinds.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier)
            yield carrier

    @contextmanager
    def handling(
        self, envelope: Envelope, handler: str, attempt: int
    ) -> Iterator[None]:
        """A ``handle <type>`` span, child of the publish that sent ``envelope``.

        The whole context the publisher sent (its baggage too) is the handler's
        current context while it runs, so what it publishes carries it on.
        """
        token = (
            self._context.attach(self._propagate.extract(envelope.trace))
            if envelope.trace
            else None
        )
        attributes: dict[str, Any] = {
            "messaging.operation.type": "process",
            "messaging.message.id": envelope.event_id,
            "messaging.message.conversation_id": envelope.correlation_id,
            "hidesync.event_type": envelope.event_type,
            "hidesync.category": envelope.category,
            "hidesync.handler": handler,
            "hidesync.attempt": attempt,
        }
        try:
            with self._tracer.start_as_current_span(
                f"handle {envelope.event_type}",
                kind=self._kinds.CONSUMER,
                attributes=attributes,
            ):
                yield
        finally:
            if token is not None:
                self._context.detach(token)
