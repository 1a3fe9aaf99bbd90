"""``EventBus``: subscribe handlers, publish events; and ``global_event_bus``.

The bus owns a :class:`~hidesync_events.subscriptions.HandlerRegistry` and, built from
the settings on first use, a transport: eager (deliver in this process) or Celery (send
to the category's queue). Every published event is encoded to its envelope and decoded
back before the transport sees it, so an event that could not reach a worker intact is
refused by ``publish`` in every mode.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar, overload

from hidesync_events.codec import Envelope, decode, seal
from hidesync_events.dead_letters import DeadLetter, DeadLetterStore
from hidesync_events.delivery import current_envelope
from hidesync_events.event import DomainEvent
from hidesync_events.fidelity import ensure_lossless
from hidesync_events.metrics import Metrics
from hidesync_events.retry import RetryPolicy
from hidesync_events.runtime import Runtime
from hidesync_events.settings import Mode, Settings, get_settings
from hidesync_events.subscriptions import (
    Handler,
    HandlerRegistry,
    event_types_from_hint,
    resolve_event_types,
)
from hidesync_events.transports import (
    CeleryTransport,
    EagerTransport,
    Receipt,
    Transport,
)

H = TypeVar("H", bound=Callable[..., Any])
#: Called with the envelope of every event a bus publishes (see ``add_publish_listener``).
PublishListener = Callable[[Envelope], None]
EventTypes = type[DomainEvent] | str | tuple[type[DomainEvent] | str, ...]


class EventBus:
    """Publishes events to the handlers subscribed to their type or its base classes.

    With no arguments the bus follows the process settings (``configure()`` or
    ``HIDESYNC_EVENTS_*``), switching transport when they change; ``mode`` or
    ``settings`` pin it.
    """

    def __init__(
        self,
        *,
        mode: Mode | None = None,
        settings: Settings | None = None,
        registry: HandlerRegistry | None = None,
    ) -> None:
        self.registry = registry or HandlerRegistry()
        self._mode = mode
        self._settings = settings
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._built_from: Settings | None = None
        # Replaced, never mutated, so publish reads it without the lock.
        self._publish_listeners: tuple[PublishListener, ...] = ()

    # -- subscriptions ------------------------------------------------------------------

    @overload
    def subscribe(
        self,
        event_type: EventTypes,
        handler: H,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool = False,
    ) -> H: ...

    @overload
    def subscribe(self, event_type: H, /) -> H: ...

    @overload
    def subscribe(
        self,
        event_type: EventTypes | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool = False,
    ) -> Callable[[H], H]: ...

    def subscribe(
        self,
        event_type: Any = None,
        handler: Any = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Subscribe a handler to an event class (and so to its subclasses).

        ``subscribe(WorkflowStartedEvent, handler)``; ``subscribe("WorkflowStartedEvent",
        handler)`` with a registered wire name; or as a decorator, ``@bus.subscribe``
        reading the event class from the first parameter's type hint (a ``Union`` hint
        subscribes to each member) or ``@bus.subscribe(EventClass, retry=...)``.
        ``name`` overrides the handler's ``module:qualname``; ``retry`` its policy.
        Returns the handler, so a decorated function stays callable.

        ``idempotent=True`` declares that running the handler twice for one event
        does no harm: no completion record is kept for it, which saves a worker two
        Redis round trips per message when all of a message's handlers are
        idempotent. It then runs again whenever its event is delivered again (a
        redelivery after a crash, a second publish of the same event); its
        ``effects()`` are still applied atomically, once per successful run.
        """
        add = partial(self._add, name=name, retry=retry, idempotent=idempotent)
        if handler is not None:
            add(resolve_event_types(event_type), handler)
            return handler

        if _looks_like_handler(event_type):
            add(event_types_from_hint(event_type), event_type)
            return event_type

        def decorator(function: H) -> H:
            if event_type is None:
                types = event_types_from_hint(function)
            else:
                types = resolve_event_types(event_type)
            add(types, function)
            return function

        return decorator

    async def subscribe_async(
        self,
        event_type: EventTypes,
        handler: H,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool = False,
    ) -> H:
        """:meth:`subscribe`, awaitable from a running event loop (it never blocks it)."""
        return self.subscribe(
            event_type, handler, name=name, retry=retry, idempotent=idempotent
        )

    def unsubscribe(self, event_type: EventTypes, handler: Handler) -> bool:
        """Remove ``handler`` from ``event_type``; return whether it was subscribed.

        A dispatch already under way still runs it for the current event.
        """
        removed = [
            self.registry.remove(cls, handler)
            for cls in resolve_event_types(event_type)
        ]
        return any(removed)

    async def unsubscribe_async(self, event_type: EventTypes, handler: Handler) -> bool:
        """:meth:`unsubscribe`, awaitable from a running event loop."""
        return self.unsubscribe(event_type, handler)

    def clear_subscriptions(self, event_type: EventTypes | None = None) -> None:
        """Remove every subscription, or every subscription to ``event_type``."""
        if event_type is None:
            self.registry.clear()
            return

        for cls in resolve_event_types(event_type):
            self.registry.clear(cls)

    async def clear_subscriptions_async(
        self, event_type: EventTypes | None = None
    ) -> None:
        """:meth:`clear_subscriptions`, awaitable from a running event loop."""
        self.clear_subscriptions(event_type)

    @property
    def subscribers(self) -> dict[type[DomainEvent], list[Handler]]:
        """A snapshot: ``{event class: [handler, ...]}`` in subscription order."""
        return self.registry.snapshot()

    # -- publishing ---------------------------------------------------------------------

    def publish(self, event: DomainEvent) -> Receipt:
        """Publish one event; what happens before it returns depends on the mode.

        Eager mode: every sync handler has run (failures retried at once, then
        dead-lettered; never raised here). Async handlers have run too when no event
        loop is running in this thread; inside a running loop they are scheduled as
        tasks on it (``await bus.drain()`` waits for them). Celery mode: the broker has
        the message. Raises :class:`~hidesync_events.errors.CodecError` subclasses for
        an event that cannot travel intact, and
        :class:`~hidesync_events.errors.BrokerUnavailableError` when the broker
        refuses it.
        """
        transport = self.transport
        tracing = transport.runtime.tracing
        if tracing is None:
            return transport.send(self._prepare(event, transport.runtime))

        with tracing.publishing(*_span_naming(event)) as trace:
            return transport.send(self._prepare(event, transport.runtime, trace))

    def publish_many(self, events: Iterable[DomainEvent]) -> list[Receipt]:
        """Publish several events at once; one receipt per event, in order.

        Celery mode groups them by category into batch messages (within the size
        cap), far cheaper per event than one message each; on the worker every event
        still has its own handlers, retries, duplicates check and dead letters.
        Eager mode publishes them one after the other. Every event is checked before
        any is sent: one that cannot travel intact raises and nothing is published.
        """
        transport = self.transport
        runtime = transport.runtime
        if runtime.tracing is None:
            return transport.send_many([self._prepare(e, runtime) for e in events])

        # One span for the batch: its events travel, and are handled, under it.
        with runtime.tracing.publishing("many", None) as trace:
            envelopes = [self._prepare(event, runtime, trace) for event in events]
            return transport.send_many(envelopes)

    async def publish_async(self, event: DomainEvent) -> Receipt:
        """Publish one event from a coroutine without blocking the loop.

        Eager mode: awaits every handler, async ones on this loop and sync ones in a
        worker thread. Celery mode: the message is sent from a worker thread.
        """
        transport = self.transport
        tracing = transport.runtime.tracing
        if tracing is None:
            return await transport.send_async(self._prepare(event, transport.runtime))

        with tracing.publishing(*_span_naming(event)) as trace:
            envelope = self._prepare(event, transport.runtime, trace)
            return await transport.send_async(envelope)

    def send_envelope(self, envelope: Envelope, *, only: str | None = None) -> Receipt:
        """Send an envelope as it is, ids and correlation kept (recorded or replayed
        messages); ``only`` restricts delivery to the handler of that name.
        """
        transport = self.transport
        runtime = transport.runtime
        if runtime.tracing is None:
            return self._send_as_is(transport, envelope, only)

        # The sender's trace, not the one the envelope was first published under.
        with runtime.tracing.publishing(
            envelope.event_type, envelope.category
        ) as trace:
            retraced = seal(
                envelope.event,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.causation_id,
                trace=trace,
                max_bytes=runtime.settings.max_envelope_bytes,
            )
            return self._send_as_is(transport, retraced, only)

    def _send_as_is(
        self, transport: Transport, envelope: Envelope, only: str | None
    ) -> Receipt:
        transport.runtime.metrics.count("published", envelope.event_type)
        self._announce(envelope)
        return transport.send(envelope, only=only)

    def replay(self, letter: DeadLetter) -> Receipt:
        """Send a dead letter's event back, then forget the letter.

        It goes to the handler that failed, or to all of the event's handlers when it
        never reached one (it could not be decoded then; the missing class may have
        been deployed since). Raises :class:`~hidesync_events.errors.CodecError` when
        it still cannot be decoded and ``ValueError`` when only its hash was kept;
        the letter stays in both cases.
        """
        text = letter.kept_envelope()
        envelope = decode(text, max_bytes=self.settings.max_envelope_bytes)
        receipt = self.send_envelope(envelope, only=letter.handler)
        self.dead_letters.delete(letter.id)
        return receipt

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for async handlers that ``publish`` scheduled on the running loop.

        Returns how many were still running when ``timeout_s`` ran out (0 when all
        finished).
        """
        return await self.transport.drain(timeout_s)

    def _prepare(
        self,
        event: DomainEvent,
        runtime: Runtime,
        trace: dict[str, str] | None = None,
    ) -> Envelope:
        if not isinstance(event, DomainEvent):
            raise TypeError(
                f"publish() takes a DomainEvent instance, got {event!r}; "
                "build the event first: bus.publish(WorkflowStartedEvent(...))"
            )

        parent = current_envelope()
        envelope = seal(
            event,
            correlation_id=parent.correlation_id if parent else None,
            causation_id=parent.event_id if parent else None,
            trace=trace,
            max_bytes=runtime.settings.max_envelope_bytes,
        )
        ensure_lossless(event, envelope.event)
        runtime.metrics.count("published", envelope.event_type)
        self._announce(envelope)
        return envelope

    # -- publish listeners --------------------------------------------------------------

    def add_publish_listener(self, listener: PublishListener) -> None:
        """Call ``listener(envelope)`` for every event this bus publishes from now on.

        It runs in the publishing thread once the event is validated and encoded,
        before any handler runs or the broker sees it: listeners see events in the
        order they were published, an event published by a handler after the event
        that handler received, and events that no handler subscribes to. The same
        goes for :meth:`send_envelope` and :meth:`replay`. An exception the listener
        raises propagates from ``publish``. Meant for tests, as
        :mod:`hidesync_events.testing` uses it; keep listeners quick.
        """
        with self._lock:
            self._publish_listeners = (*self._publish_listeners, listener)

    def remove_publish_listener(self, listener: PublishListener) -> bool:
        """Stop calling ``listener``; return whether it was listening."""
        with self._lock:
            listeners = self._publish_listeners
            kept = tuple(known for known in listeners if known != listener)
            self._publish_listeners = kept
        return len(kept) < len(listeners)

    def _announce(self, envelope: Envelope) -> None:
        for listener in self._publish_listeners:
            listener(envelope)

    # -- transport and state ------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings this bus works with now."""
        settings = self._settings or get_settings()
        if self._mode is not None and settings.mode != self._mode:
            settings = settings.model_copy(update={"mode": self._mode})
        return settings

    @property
    def mode(self) -> Mode:
        return self.settings.mode

    @property
    def transport(self) -> Transport:
        """The transport for the current settings, built on first use."""
        source = self._settings or get_settings()
        transport = self._transport
        if transport is not None and self._built_from is source:
            return transport

        with self._lock:
            if self._transport is None or self._built_from is not source:
                if self._transport is not None:
                    self._transport.close()
                self._transport = self._build_transport(self.settings)
                self._built_from = source
            return self._transport

    @property
    def runtime(self) -> Runtime:
        return self.transport.runtime

    @property
    def dead_letters(self) -> DeadLetterStore:
        """The dead letters of this bus's mode (memory in eager mode, Redis in Celery)."""
        return self.runtime.dead_letters

    @property
    def metrics(self) -> Metrics:
        """This process's counters: events, handler runs and errors, durations."""
        return self.runtime.metrics

    def close(self) -> None:
        """Release the transport; the next publish builds a new one."""
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._transport = None
            self._built_from = None

    def _build_transport(self, settings: Settings) -> Transport:
        if settings.mode == "celery":
            return CeleryTransport(self.registry, Runtime.shared(settings))

        return EagerTransport(self.registry, Runtime.in_memory(settings))

    def _add(
        self,
        event_types: tuple[type[DomainEvent], ...],
        handler: Handler,
        *,
        name: str | None,
        retry: RetryPolicy | None,
        idempotent: bool,
    ) -> None:
        for event_type in event_types:
            self.registry.add(
                event_type, handler, name=name, retry=retry, idempotent=idempotent
            )


def _span_naming(event: object) -> tuple[str, str | None]:
    # Anything may be passed to publish; _prepare is where a non-event is refused.
    meta = getattr(type(event), "__event_meta__", None)
    if meta is None:
        return type(event).__name__, None

    return meta.name, meta.category


def _looks_like_handler(value: object) -> bool:
    return callable(value) and not isinstance(value, type | str | tuple)


#: The process-wide bus that the application and the workers share.
global_event_bus = EventBus()
