"""Which workers consume which queues, as each worker announces it in the state store.

A worker writes its name and queues under ``<key_prefix>:consumers:<worker>`` when it
is ready and every :data:`ANNOUNCE_EVERY_S` seconds after, with an expiry a few times
longer: a worker that stopped drops out on its own. The fleet's view is read back from
there, which costs one Redis scan rather than a broadcast every worker must answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from hidesync_events.categories import known_categories
from hidesync_events.event import DomainEvent, registered_event_types
from hidesync_events.keyvalue import KeyValue
from hidesync_events.subscriptions import HandlerRegistry

logger = logging.getLogger("hidesync.events.fleet")

#: How often a worker renews its announcement; it lapses after three missed ones.
ANNOUNCE_EVERY_S = 30.0


class ConsumerRegistry:
    """Workers and the queues they consume."""

    def __init__(self, kv: KeyValue, *, key_prefix: str) -> None:
        self._kv = kv
        self._index = f"{key_prefix}:consumers"

    def announce(self, worker: str, queues: Iterable[str]) -> None:
        """Say that ``worker`` consumes ``queues`` (for the next few announce periods)."""
        key = f"{self._index}:{worker}"
        ttl_s = round(ANNOUNCE_EVERY_S * 3)
        self._kv.batch().set(key, json.dumps(sorted(queues)), ex_s=ttl_s).zadd(
            self._index, {worker: 0}
        ).execute()

    def withdraw(self, worker: str) -> None:
        """Say that ``worker`` stopped."""
        self._kv.delete(f"{self._index}:{worker}")
        self._kv.zrem(self._index, worker)

    def consumers(self) -> dict[str, list[str]]:
        """``{worker: [queue, ...]}`` for every worker whose announcement is current."""
        found: dict[str, list[str]] = {}
        for worker in self._kv.zrange(self._index, 0, -1):
            queues = self._kv.get(f"{self._index}:{worker}")
            if queues is None:
                self._kv.zrem(self._index, worker)  # lapsed: forget it
            else:
                found[worker] = json.loads(queues)
        return found


def unconsumed_categories(
    consumed_queues: Iterable[str],
    registry: HandlerRegistry,
    queue_of: Callable[[str], str],
) -> list[str]:
    """The categories that have handlers but whose queue no worker consumes."""
    consumed = set(consumed_queues)
    handled = {
        category
        for category in known_categories()
        if any(registry.handlers_for(cls) for cls in _event_types_of(category))
    }
    return sorted(c for c in handled if queue_of(c) not in consumed)


def warn_about_unconsumed_categories(
    consumed_queues: Iterable[str],
    registry: HandlerRegistry,
    queue_of: Callable[[str], str],
) -> list[str]:
    """Log a warning for each category that has handlers but no worker consuming it."""
    missing = unconsumed_categories(consumed_queues, registry, queue_of)
    for category in missing:
        logger.warning(
            "events of category %r have handlers but no worker consumes %s",
            category,
            queue_of(category),
        )
    return missing


def _event_types_of(category: str) -> list[type[DomainEvent]]:
    return [
        c
        for c in registered_event_types().values()
        if c.__event_meta__.category == category
    ]
