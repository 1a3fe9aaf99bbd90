"""Which handlers run for which event types.

A :class:`Subscription` ties one handler to one event class under a stable name
(``module:qualname`` unless given). The :class:`HandlerRegistry` keeps them, resolves
the handlers of an event class including those subscribed to its base classes, and
caches that resolution per class until the next change.

Changes copy the registry's tuples instead of mutating them, so a dispatch that is
iterating one resolution never sees a handler disappear halfway: unsubscribing affects
the next event.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hidesync_events.errors import SubscriptionError
from hidesync_events.event import DomainEvent, as_event_type
from hidesync_events.retry import RetryPolicy

Handler = Callable[[Any], Any]


@dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    """One handler subscribed to one event class."""

    event_type: type[DomainEvent]
    handler: Handler
    name: str
    is_async: bool
    #: ``None`` means the default policy from the settings, read when the handler fails.
    retry: RetryPolicy | None
    order: int
    #: Runs again on a repeated delivery: no claim, no completion record.
    idempotent: bool = False


def handler_name(handler: Handler) -> str:
    """Return the stable ``module:qualname`` name of a handler."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func

    if inspect.ismethod(target):
        target = target.__func__

    if not hasattr(target, "__qualname__"):
        target = type(target)  # a callable instance: named after its class

    return f"{target.__module__}:{target.__qualname__}"


def is_async_handler(handler: Handler) -> bool:
    """Whether calling ``handler`` returns a coroutine to await."""
    if inspect.iscoroutinefunction(handler):
        return True

    call = getattr(handler, "__call__", None)  # noqa: B004 - callable instances
    return call is not None and inspect.iscoroutinefunction(call)


def event_types_from_hint(handler: Handler) -> tuple[type[DomainEvent], ...]:
    """Read the event classes a handler accepts from its first parameter's annotation.

    ``Union[A, B]`` and ``A | B`` give each member.
    """
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []

    if not parameters:
        raise SubscriptionError(
            f"{handler_name(handler)} takes no parameter to receive the event; "
            "define it as def handler(event: SomeEvent) -> None"
        )

    first = parameters[0]
    # A callable instance: its __call__ carries the hints.
    target = handler if inspect.isroutine(handler) else handler.__call__  # type: ignore[operator]
    try:
        annotation = typing.get_type_hints(target).get(first.name)
    except Exception as error:
        raise SubscriptionError(
            f"cannot resolve the type hint of {handler_name(handler)}'s parameter "
            f"{first.name!r} ({error}); pass the event type explicitly: "
            "bus.subscribe(EventClass, handler)"
        ) from error

    if annotation is None:
        raise SubscriptionError(
            f"{handler_name(handler)}'s parameter {first.name!r} has no type hint; "
            f"annotate it ({first.name}: WorkflowStartedEvent) or pass the event type: "
            "bus.subscribe(EventClass, handler)"
        )

    members = _union_members(annotation)
    return tuple(
        as_event_type(member) for member in members if member is not type(None)
    )


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)

    return (annotation,)


class HandlerRegistry:
    """Subscriptions by event class, safe to change from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[type[DomainEvent], tuple[Subscription, ...]] = {}
        self._resolved: dict[type[DomainEvent], tuple[Subscription, ...]] = {}
        self._order = itertools.count()

    def add(
        self,
        event_type: type[DomainEvent],
        handler: Handler,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool = False,
    ) -> Subscription:
        """Subscribe ``handler`` to ``event_type``; subscribing it again changes nothing."""
        if not callable(handler):
            raise SubscriptionError(f"handler must be callable, got {handler!r}")

        name = name or handler_name(handler)
        with self._lock:
            existing = self._by_type.get(event_type, ())
            for subscription in existing:
                if subscription.handler == handler and subscription.name == name:
                    return subscription

            self._check_name_free(event_type, handler, name)
            subscription = Subscription(
                event_type=event_type,
                handler=handler,
                name=name,
                is_async=is_async_handler(handler),
                retry=retry,
                order=next(self._order),
                idempotent=idempotent,
            )
            self._by_type = {**self._by_type, event_type: (*existing, subscription)}
            self._resolved = {}

        return subscription

    def remove(self, event_type: type[DomainEvent], handler: Handler) -> bool:
        """Unsubscribe ``handler`` from ``event_type``; return whether it was subscribed."""
        with self._lock:
            existing = self._by_type.get(event_type, ())
            kept = tuple(s for s in existing if s.handler != handler)
            if len(kept) == len(existing):
                return False

            by_type = dict(self._by_type)
            if kept:
                by_type[event_type] = kept
            else:
                del by_type[event_type]
            self._by_type = by_type
            self._resolved = {}

        return True

    def clear(self, event_type: type[DomainEvent] | None = None) -> None:
        """Remove every subscription, or those of one event class."""
        with self._lock:
            if event_type is None:
                self._by_type = {}
            else:
                self._by_type = {
                    cls: subs
                    for cls, subs in self._by_type.items()
                    if cls is not event_type
                }
            self._resolved = {}

    def handlers_for(self, event_cls: type[DomainEvent]) -> tuple[Subscription, ...]:
        """Return the subscriptions an event of ``event_cls`` runs, in subscription order.

        Subscriptions to base classes count (``DomainEvent`` receives everything); a
        handler subscribed to a class and to one of its bases runs once.
        """
        resolved = self._resolved.get(event_cls)
        if resolved is not None:
            return resolved

        with self._lock:
            found: dict[str, Subscription] = {}
            for cls in event_cls.__mro__:
                for subscription in self._by_type.get(cls, ()):
                    found.setdefault(subscription.name, subscription)
            resolved = tuple(sorted(found.values(), key=lambda s: s.order))
            self._resolved = {**self._resolved, event_cls: resolved}

        return resolved

    def find(self, event_cls: type[DomainEvent], name: str) -> Subscription | None:
        """Return the subscription named ``name`` among those of ``event_cls``."""
        for subscription in self.handlers_for(event_cls):
            if subscription.name == name:
                return subscription

        return None

    def subscriptions(self) -> Iterator[Subscription]:
        """Iterate over every subscription, in subscription order."""
        by_type = self._by_type  # replaced, never mutated: safe to read unlocked
        every = [s for group in by_type.values() for s in group]
        return iter(sorted(every, key=lambda s: s.order))

    def snapshot(self) -> dict[type[DomainEvent], list[Handler]]:
        """Return ``{event class: [handler, ...]}`` as it stands now."""
        by_type = self._by_type
        return {cls: [s.handler for s in subs] for cls, subs in by_type.items()}

    def _check_name_free(
        self, event_type: type[DomainEvent], handler: Handler, name: str
    ) -> None:
        # Workers find a handler again by name (for a retry), so within one event
        # class's resolution a name must mean one handler.
        for cls, subscriptions in self._by_type.items():
            related = issubclass(cls, event_type) or issubclass(event_type, cls)
            for subscription in subscriptions if related else ():
                if subscription.name == name and subscription.handler != handler:
                    raise SubscriptionError(
                        f"handler name {name!r} is already used by another handler "
                        f"for {cls.__name__}; pass a distinct name: "
                        f"subscribe({event_type.__name__}, handler, name='...')"
                    )


def resolve_event_types(value: object) -> tuple[type[DomainEvent], ...]:
    """Accept an event class, a registered wire name, or a tuple of them."""
    if isinstance(value, tuple):
        return tuple(as_event_type(item) for item in value)

    return (as_event_type(value),)
