"""A pytest plugin for testing code that publishes and handles hidesync events.

Installed with the package and loaded by pytest on its own (the ``pytest11`` entry
point), it offers these fixtures:

* ``hidesync_bus``: the ``global_event_bus`` in eager mode with fresh in-memory dead
  letters, metrics and completions; its subscriptions are put back as they were after
  the test.
* ``published_events``: a :class:`PublishedEvents` recording every event published on
  the global bus during the test, with ``expect()`` / ``expect_none()`` assertions and
  ``await settled()``.
* ``strict_handlers``, or the marker ``@pytest.mark.hidesync_strict``: a handler that
  raises fails the test (its exception comes out of ``publish``) instead of being
  logged, retried and dead-lettered.

    def test_starting_a_workflow_reserves_its_tools(published_events):
        start_workflow(workflow_id=1)

        published_events.expect(WorkflowStartedEvent, workflow_id=1)
        published_events.expect_none(WorkflowCancelledEvent)

Outside pytest fixtures, :func:`isolated_global_bus` and :func:`capture_published` are
the same tools as context managers.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from hidesync_events.bus import EventBus, global_event_bus
from hidesync_events.codec import Envelope
from hidesync_events.event import DomainEvent
from hidesync_events.settings import configure, reset_settings
from hidesync_events.subscriptions import HandlerRegistry, Subscription, handler_name
from hidesync_events.transports import EagerTransport

__all__ = [
    "PublishedEvents",
    "capture_published",
    "hidesync_bus",
    "isolated_global_bus",
    "published_events",
    "strict_handlers",
]

E = TypeVar("E", bound=DomainEvent)

#: Fields every event has; they differ from one event to the next, so failure
#: messages leave them out.
_IDENTITY_FIELDS = frozenset({"event_id", "timestamp"})
_MAX_EVENTS_SHOWN = 20
_MAX_VALUE_CHARS = 60
_MAX_LINE_CHARS = 200

STRICT_MARKER = "hidesync_strict"


# -- an isolated global bus -----------------------------------------------------------


@contextmanager
def isolated_global_bus(**settings: Any) -> Iterator[EventBus]:
    """Give the block the ``global_event_bus`` fresh, and undo what the block did to it.

    On entry the process settings are replaced by ``configure(**settings)`` (so
    ``HIDESYNC_EVENTS_*`` variables still apply to what ``settings`` does not name)
    and the bus's transport is closed: the next publish builds a new one, with empty
    dead letters, metrics and completions. On exit the settings are read from the
    environment again, the transport is closed, and the subscriptions are put back as
    they were: those the block made are removed, those it removed come back with their
    names and retry policies. Subscriptions made by modules imported for the first time
    inside the block stay, since importing those modules again will not make them.
    """
    bus = global_event_bus
    kept = list(bus.registry.subscriptions())
    modules_before = set(sys.modules)
    configure(**settings)
    bus.close()

    try:
        yield bus
    finally:
        reset_settings()
        bus.close()
        imported = set(sys.modules) - modules_before
        _restore_subscriptions(bus.registry, kept, imported)


def _restore_subscriptions(
    registry: HandlerRegistry, kept: list[Subscription], imported: set[str]
) -> None:
    kept_ids = {id(subscription) for subscription in kept}
    for subscription in list(registry.subscriptions()):
        made_now = id(subscription) not in kept_ids
        if made_now and not _made_by_import(subscription, imported):
            registry.remove(subscription.event_type, subscription.handler)

    present = {id(subscription) for subscription in registry.subscriptions()}
    for subscription in kept:
        if id(subscription) not in present:
            registry.add(
                subscription.event_type,
                subscription.handler,
                name=subscription.name,
                retry=subscription.retry,
                idempotent=subscription.idempotent,
            )


def _made_by_import(subscription: Subscription, imported: set[str]) -> bool:
    # A handler subscribed under a name of its own still has its module.
    modules = {
        subscription.name.partition(":")[0],
        handler_name(subscription.handler).partition(":")[0],
    }
    return not modules.isdisjoint(imported)


# -- capturing published events -------------------------------------------------------


class PublishedEvents:
    """The events published on a bus, in the order they were published.

    Events are recorded when ``publish`` (or ``publish_async``, ``send_envelope``,
    ``replay``) accepts them, before any handler runs: an event nobody handles is
    recorded, and an event a handler publishes comes after the event that handler
    received. What is recorded is the event as handlers receive it, decoded from its
    envelope. An event ``publish`` refuses (it cannot be encoded) is not recorded.

    In eager mode a sync ``publish`` has run every handler, and so recorded every
    event they published, by the time it returns; only async handlers scheduled on a
    running loop may still be at work: ``await settled()`` waits for them.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._events: list[DomainEvent] = []
        # Under publish_async, handlers run (and publish) in worker threads.
        self._lock = threading.Lock()

    @property
    def all(self) -> list[DomainEvent]:
        """Every event recorded so far, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    def of(self, event_type: type[E]) -> list[E]:
        """The recorded events of ``event_type`` or its subclasses, oldest first."""
        _check_event_type(event_type)
        return [event for event in self.all if isinstance(event, event_type)]

    def clear(self) -> None:
        """Forget what was recorded so far (say, the events of a test's setup)."""
        with self._lock:
            self._events.clear()

    def expect(self, event_type: type[E], /, **fields: Any) -> E:
        """Return the first recorded ``event_type`` event whose fields equal ``fields``.

        ``expect(WorkflowStartedEvent, workflow_id=1)``. Raises ``AssertionError``
        listing what was published instead when no event matches, and ``TypeError``
        when ``event_type`` has no field of one of the given names.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        matches = self._matching(event_type, fields)
        if matches:
            return matches[0]

        raise AssertionError(self._report(event_type, fields))

    def expect_none(self, event_type: type[DomainEvent], /, **fields: Any) -> None:
        """Raise ``AssertionError`` when a recorded ``event_type`` event matches.

        With no ``fields``, no event of ``event_type`` may have been published. The
        message lists the events that matched.
        """
        __tracebackhide__ = True
        matches = self._matching(event_type, fields)
        if not matches:
            return

        wanted = _describe_expectation(event_type, fields)
        lines = [_describe(event, fields) for event in matches[:_MAX_EVENTS_SHOWN]]
        raise AssertionError(
            f"expected no published {wanted}; {len(matches)} published:\n"
            + "\n".join(f"  {line}" for line in lines)
        )

    async def settled(self, timeout_s: float | None = None) -> None:
        """Wait until every handler task that publishing scheduled has finished.

        Only needed inside a running event loop, where ``publish`` schedules async
        handlers as tasks; events those handlers publish schedule more, and this
        waits for them too (``bus.drain()`` until nothing is pending). A sync
        ``publish`` outside a loop, and ``await publish_async``, are settled when they
        return. Raises ``AssertionError`` when tasks are still running after
        ``timeout_s`` seconds, and, with strict handlers, a handler task's exception.
        """
        __tracebackhide__ = True
        left = await self.bus.drain(timeout_s)
        if left:
            raise AssertionError(
                f"{left} event handler task(s) still running after {timeout_s}s"
            )

    def _record(self, envelope: Envelope) -> None:
        with self._lock:
            self._events.append(envelope.event)

    def _matching(self, event_type: type[E], fields: dict[str, Any]) -> list[E]:
        _check_event_type(event_type)
        _check_field_names(event_type, fields)
        return [event for event in self.of(event_type) if _has_fields(event, fields)]

    def _report(self, event_type: type[DomainEvent], fields: dict[str, Any]) -> str:
        wanted = _describe_expectation(event_type, fields)
        events = self.all
        if not events:
            return f"expected a published {wanted}; no event was published"

        shown = _pick_shown(events, event_type)
        lines = [f"  #{i + 1} {_describe(events[i], fields)}" for i in sorted(shown)]
        hidden = Counter(
            type(event).__name__ for i, event in enumerate(events) if i not in shown
        )
        if hidden:
            others = ", ".join(f"{n} {name}" for name, n in hidden.most_common())
            lines.append(f"  ... and {hidden.total()} more: {others}")

        return (
            f"expected a published {wanted}; published instead ({len(events)}):\n"
            + "\n".join(lines)
        )


@contextmanager
def capture_published(bus: EventBus | None = None) -> Iterator[PublishedEvents]:
    """Record the events published on ``bus`` (default: the global bus) in the block."""
    bus = bus or global_event_bus
    capture = PublishedEvents(bus)
    bus.add_publish_listener(capture._record)

    try:
        yield capture
    finally:
        bus.remove_publish_listener(capture._record)


def _check_event_type(event_type: object) -> None:
    if not (isinstance(event_type, type) and issubclass(event_type, DomainEvent)):
        raise TypeError(
            f"expected an event class (a DomainEvent subclass), got {event_type!r}; "
            "pass the class itself: expect(WorkflowStartedEvent, workflow_id=1)"
        )


def _check_field_names(event_type: type[DomainEvent], fields: dict[str, Any]) -> None:
    # A misspelt name would make expect_none() pass whatever was published.
    known = _field_names(event_type)
    if known is None:
        return

    unknown = [name for name in fields if name not in known]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise TypeError(
            f"{event_type.__name__} and its subclasses have no field {names}; "
            f"pass some of {', '.join(sorted(known))}"
        )


def _field_names(event_type: type[DomainEvent]) -> set[str] | None:
    """The fields of ``event_type`` and its subclasses; None when any name may exist
    (an older-style event keeps attributes its ``__init__`` assigns as extras)."""
    names: set[str] = set()
    for cls in (event_type, *_subclasses(event_type)):
        if cls.model_config.get("extra") == "allow":
            return None
        names.update(cls.model_fields)
    return names


def _subclasses(cls: type[DomainEvent]) -> Iterator[type[DomainEvent]]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _has_fields(event: DomainEvent, fields: dict[str, Any]) -> bool:
    missing = object()
    return all(getattr(event, name, missing) == value for name, value in fields.items())


def _pick_shown(events: list[DomainEvent], event_type: type[DomainEvent]) -> set[int]:
    # Events of the expected type are the likeliest near misses: show them first.
    by_relevance = sorted(
        range(len(events)), key=lambda i: not isinstance(events[i], event_type)
    )
    return set(by_relevance[:_MAX_EVENTS_SHOWN])


def _describe_expectation(event_type: type[DomainEvent], fields: dict[str, Any]) -> str:
    if not fields:
        return event_type.__name__

    named = ", ".join(f"{name}={_short(value)}" for name, value in fields.items())
    return f"{event_type.__name__} with {named}"


def _describe(event: DomainEvent, named: Iterable[str]) -> str:
    """``Type(field=value, ...)``: the fields named in the expectation, then those not
    at their default, each value shortened."""
    named = list(named)
    values = event.model_dump()
    shown = [name for name in named if name in values]
    shown += [
        name
        for name in values
        if name not in shown
        and name not in _IDENTITY_FIELDS
        and not _is_default(event, name, values[name])
    ]
    inner = ", ".join(f"{name}={_short(values[name])}" for name in shown)
    return _truncate(f"{type(event).__name__}({inner})", _MAX_LINE_CHARS)


def _is_default(event: DomainEvent, name: str, value: Any) -> bool:
    field = type(event).model_fields.get(name)
    if field is None or field.default_factory is not None:
        return False

    return bool(value == field.default)


def _short(value: Any) -> str:
    return _truncate(repr(value), _MAX_VALUE_CHARS)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the pytest plugin ----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{STRICT_MARKER}: a hidesync event handler that raises fails the test "
        "(its exception comes out of publish, without a retry)",
    )


@pytest.fixture
def hidesync_bus() -> Iterator[EventBus]:
    """The ``global_event_bus``, fresh and in eager mode, restored after the test.

    Settings come from ``HIDESYNC_EVENTS_*`` variables with ``mode`` set to eager;
    dead letters, metrics and completions start empty. After the test its
    subscriptions are as they were before (see :func:`isolated_global_bus`) and the
    settings are read from the environment again.
    """
    with isolated_global_bus(mode="eager") as bus:
        yield bus


@pytest.fixture
def published_events(hidesync_bus: EventBus) -> Iterator[PublishedEvents]:
    """Every event published on the (fresh, eager) global bus during the test.

    ``published_events.expect(WorkflowStartedEvent, workflow_id=1)`` returns the first
    match or fails listing what was published; ``.expect_none(...)``, ``.of(Type)``,
    ``.all``, ``.clear()``; ``await published_events.settled()`` inside a running loop.
    """
    with capture_published(hidesync_bus) as capture:
        yield capture


@pytest.fixture
def strict_handlers(hidesync_bus: EventBus) -> Iterator[None]:
    """Make a handler's exception fail the test: it is raised from ``publish``.

    The handler runs once (no retries) and its exception comes out of ``publish`` or
    ``publish_async`` as it was raised, or out of ``await bus.drain()`` /
    ``published_events.settled()`` for an async handler scheduled on a running loop;
    one such error nobody awaited fails the test at teardown. The same as marking the
    test ``@pytest.mark.hidesync_strict``. Eager mode only.
    """
    strictness = _Strictness(hidesync_bus)
    hidesync_bus.add_publish_listener(strictness.apply)
    strictness.apply()

    yield

    hidesync_bus.remove_publish_listener(strictness.apply)
    strictness.release()


@pytest.fixture(autouse=True)
def _hidesync_strict_marker(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.hidesync_strict`` requests ``strict_handlers`` for the test."""
    if request.node.get_closest_marker(STRICT_MARKER) is not None:
        request.getfixturevalue("strict_handlers")


class _Strictness:
    """Keeps the bus's eager transports raising handler errors.

    ``configure()`` inside a test builds a new transport, so this is applied again on
    every publish, not only once at set-up.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._transports: list[EagerTransport] = []

    def apply(self, envelope: Envelope | None = None) -> None:
        transport = self._bus.transport
        if isinstance(transport, EagerTransport) and not transport.raise_errors:
            transport.raise_errors = True
            self._transports.append(transport)

    def release(self) -> None:
        """Make the transports lenient again, then raise an error no one awaited."""
        for transport in self._transports:
            transport.raise_errors = False

        for transport in self._transports:
            transport.raise_task_error()
