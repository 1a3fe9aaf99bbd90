"""What the fleet is doing now, per category: what waits, who consumes, what was handled.

:func:`gather_stats` reads three places and returns one :class:`FleetStats`:

* the broker: each category queue's depth and, on Redis, how long its oldest message
  has waited (on other brokers, such as RabbitMQ, only the depth);
* the state store: the workers that announced their queues
  (:class:`~hidesync_events.fleet.ConsumerRegistry`), the metrics every process flushed
  (:meth:`~hidesync_events.metrics.Metrics.load`) and the dead letters.

The age of a waiting message is measured from its event's ``timestamp``, the only time
a message carries: an event published with an earlier timestamp (a recorded day
published in bulk, a replayed dead letter) looks as old as its timestamp says.

Events of a type this process has not imported have no known category: they count in
the fleet totals and the most common events, not in any category's figures.
``hidesync-events stats`` imports the handler modules first for that reason.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from kombu import Connection, Queue
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from kombu.utils.url import maybe_sanitize_url

from hidesync_events.categories import category_of_queue, known_categories, queue_name
from hidesync_events.codec import peek_header
from hidesync_events.dead_letters import DeadLetter, DeadLetterStore
from hidesync_events.event import registered_event_types
from hidesync_events.fleet import ConsumerRegistry
from hidesync_events.keyvalue import KeyValue, RedisKeyValue, open_keyvalue
from hidesync_events.metrics import Metrics, MetricsSnapshot
from hidesync_events.reaching import reaching
from hidesync_events.settings import Settings, get_settings, opens_with_redis_py

#: How long a connection attempt or a reply from the broker or state store may take.
TIMEOUT_S = 5.0

#: How many of the most delivered event types :func:`gather_stats` reports.
MOST_COMMON = 10


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How many messages wait in a queue, and for how long the oldest has waited.

    ``oldest_age_s`` is ``None`` when the queue is empty, when the broker cannot tell
    (RabbitMQ) or when the oldest message is not a readable ``deliver`` message.
    """

    depth: int
    oldest_age_s: float | None


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """The figures of one category and its queue.

    ``handled`` counts events delivered to the category's handlers (a retry of one
    handler is not counted again); ``failed`` counts handler runs that raised, retries
    included; ``dead_letters`` the letters kept now for events of the category.
    """

    category: str
    queue: str
    depth: int
    oldest_age_s: float | None
    consumers: tuple[str, ...]
    handled: int
    failed: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """Fleet-wide counts from the metrics processes flushed, and handler latency.

    ``spooled`` counts events a publishing process kept in its spool while the broker
    was away; it reaches the state store only from processes that flush their metrics.
    """

    handled: int
    handler_runs: int
    failed: int
    retries: int
    duplicates: int
    spooled: int
    dead_letters: int
    handler_p50_s: float
    handler_p99_s: float


@dataclass(frozen=True, slots=True)
class EventCount:
    """How many events of one type were delivered (``category`` None: not imported)."""

    event: str
    category: str | None
    handled: int


@dataclass(frozen=True, slots=True)
class FleetStats:
    """One reading of the fleet: per category, totals, and the most common events."""

    broker: str
    taken_at: datetime
    oldest_age_known: bool
    categories: tuple[CategoryStats, ...]
    totals: FleetTotals
    most_common: tuple[EventCount, ...]

    def category(self, name: str) -> CategoryStats:
        """Return the figures of category ``name``; ``KeyError`` if there are none."""
        for stats in self.categories:
            if stats.category == name:
                return stats

        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON values, categories keyed by name."""
        categories = {}
        for stats in self.categories:
            entry = asdict(stats)
            del entry["category"]
            entry["consumers"] = list(stats.consumers)
            categories[stats.category] = entry

        return {
            "broker": self.broker,
            "taken_at": self.taken_at.isoformat(),
            "oldest_age_known": self.oldest_age_known,
            "categories": categories,
            "totals": asdict(self.totals),
            "most_common_events": [asdict(count) for count in self.most_common],
        }


def gather_stats(settings: Settings | None = None) -> FleetStats:
    """Read the fleet's figures from the broker and state store of ``settings``.

    Raises ``redis.ConnectionError`` (Redis) or ``kombu.exceptions.OperationalError``
    (other brokers) when either cannot be reached within :data:`TIMEOUT_S`.
    """
    settings = settings or get_settings()
    state_url = settings.resolved_state_url
    queues = {c: queue_name(c, settings.queue_prefix) for c in known_categories()}
    category_of = _categories_by_event_type()
    now = datetime.now(UTC)

    depths = queue_depths(settings.broker_url, list(queues.values()))
    kv = _open_state(state_url)
    with reaching("state store", state_url):
        consumers = ConsumerRegistry(kv, key_prefix=settings.key_prefix).consumers()
        metrics = Metrics.load(kv, key_prefix=settings.key_prefix)
        letters = DeadLetterStore(
            kv,
            key_prefix=settings.key_prefix,
            max_envelope_bytes=settings.max_envelope_bytes,
        ).list()

    handled, failed = _per_category(metrics, category_of)
    letters_by_category = Counter(
        _letter_category(letter, category_of, settings.queue_prefix)
        for letter in letters
    )
    return FleetStats(
        broker=str(maybe_sanitize_url(settings.broker_url)),
        taken_at=now,
        oldest_age_known=opens_with_redis_py(settings.broker_url),
        categories=tuple(
            CategoryStats(
                category=category,
                queue=queue,
                depth=depths[queue].depth,
                oldest_age_s=depths[queue].oldest_age_s,
                consumers=tuple(
                    sorted(w for w, consumed in consumers.items() if queue in consumed)
                ),
                handled=handled[category],
                failed=failed[category],
                dead_letters=letters_by_category[category],
            )
            for category, queue in queues.items()
        ),
        totals=_totals(metrics, dead_letters=len(letters)),
        most_common=tuple(
            EventCount(event, category_of.get(event), count)
            for event, count in metrics["delivered"].most_common(MOST_COMMON)
        ),
    )


def queue_depths(broker_url: str, queues: Sequence[str]) -> dict[str, QueueDepth]:
    """Return how many messages wait in each of ``queues`` at ``broker_url``.

    On Redis the oldest message of a queue is the one at its tail (kombu pushes on the
    left and pops on the right), read without taking it; other brokers are asked with
    a passive ``queue.declare``, which gives the count only.
    """
    if opens_with_redis_py(broker_url):
        return _redis_depths(broker_url, queues)

    return _declared_depths(broker_url, queues)


def message_timestamp(message: str | bytes) -> datetime | None:
    """Return the event time inside a kombu message of the ``deliver`` task.

    The message is kombu's JSON; its ``body`` (base64) holds Celery's
    ``[[envelope], kwargs, embed]``, and the envelope its ``timestamp``. ``None`` when
    any of that cannot be read.
    """
    try:
        data = json.loads(message)
        body = data["body"]
        if data.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True)
        envelope = json.loads(body)[0][0]
        stamp = datetime.fromisoformat(peek_header(envelope)["timestamp"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None

    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# -- the broker ---------------------------------------------------------------------


def _redis_depths(broker_url: str, queues: Sequence[str]) -> dict[str, QueueDepth]:
    # kombu keeps a message of priority p > 0 in a list of its own, "<queue>SEP<p>".
    lists = {
        queue: [_priority_list(queue, p) for p in PRIORITY_STEPS] for queue in queues
    }
    client = redis.Redis.from_url(
        broker_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
    )
    with reaching("broker", broker_url), client:
        pipeline = client.pipeline(transaction=False)
        for names in lists.values():
            for name in names:
                pipeline.llen(name)
                pipeline.lindex(name, -1)
        replies = iter(pipeline.execute())
    # After the read: a message published since the figures were started is not
    # given a negative age.
    now = datetime.now(UTC)

    depths = {}
    for queue, names in lists.items():
        depth, ages = 0, []
        for _ in names:
            length, tail = next(replies), next(replies)
            depth += length
            stamp = message_timestamp(tail) if tail is not None else None
            if stamp is not None:
                ages.append((now - stamp).total_seconds())
        depths[queue] = QueueDepth(depth, max(ages) if ages else None)
    return depths


def _priority_list(queue: str, priority: int) -> str:
    return f"{queue}{RedisChannel.sep}{priority}" if priority else queue


def _declared_depths(broker_url: str, queues: Sequence[str]) -> dict[str, QueueDepth]:
    with (
        reaching("broker", broker_url),
        Connection(broker_url, connect_timeout=TIMEOUT_S) as connection,
    ):
        connection.ensure_connection(max_retries=1)
        return {
            queue: QueueDepth(_declared_count(connection, queue), None)
            for queue in queues
        }


def _declared_count(connection: Connection, queue: str) -> int:
    channel = connection.channel()
    try:
        # The stubs say str | None; kombu returns (name, message_count, consumer_count).
        declared: Any = Queue(queue, channel=channel).queue_declare(passive=True)
        return int(declared.message_count)
    except connection.channel_errors as error:
        # No worker has declared the queue yet, so nothing waits in it.
        if _is_not_found(error):
            return 0
        raise
    finally:
        connection.maybe_close_channel(channel)


def _is_not_found(error: BaseException) -> bool:
    return getattr(error, "code", None) == 404 or "NOT_FOUND" in str(error)


# -- the state store ----------------------------------------------------------------


def _open_state(url: str) -> KeyValue:
    if not opens_with_redis_py(url):
        return open_keyvalue(url)

    return RedisKeyValue(
        redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
    )


def _per_category(
    metrics: MetricsSnapshot, category_of: dict[str, str]
) -> tuple[Counter[str], Counter[str]]:
    handled: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for event_type, count in metrics["delivered"].items():
        if event_type in category_of:
            handled[category_of[event_type]] += count
    for key, count in metrics["handler_errors"].items():
        # "module:qualname:EventType": the handler's name has a colon of its own.
        event_type = key.rpartition(":")[2]
        if event_type in category_of:
            failed[category_of[event_type]] += count
    return handled, failed


def _letter_category(
    letter: DeadLetter, category_of: dict[str, str], queue_prefix: str
) -> str | None:
    if letter.event_type in category_of:
        return category_of[letter.event_type]

    if letter.queue and letter.queue.startswith(f"{queue_prefix}."):
        return category_of_queue(letter.queue, queue_prefix)

    header = peek_header(letter.envelope) if letter.envelope else {}
    category = header.get("category")
    return category if isinstance(category, str) else None


def _categories_by_event_type() -> dict[str, str]:
    return {
        name: cls.__event_meta__.category
        for name, cls in registered_event_types().items()
    }


def _totals(metrics: MetricsSnapshot, *, dead_letters: int) -> FleetTotals:
    return FleetTotals(
        handled=metrics.total("delivered"),
        handler_runs=metrics.total("handler_runs"),
        failed=metrics.total("handler_errors"),
        retries=metrics.total("retries"),
        duplicates=metrics.total("duplicates"),
        spooled=metrics.total("spooled"),
        dead_letters=dead_letters,
        handler_p50_s=metrics.duration_percentile_s(0.50),
        handler_p99_s=metrics.duration_percentile_s(0.99),
    )
