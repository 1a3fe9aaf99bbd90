"""What a Celery worker does with a ``deliver`` message, and what it checks at start.

:class:`WorkerDelivery` is the task's body: it stops crash loops (a message delivered
again and again without finishing is dead-lettered as worker-lost), decodes, runs each
handler through the shared :class:`~hidesync_events.delivery.Delivery`, and sends a
delayed message for each handler to retry (or to look at again, when another delivery
held it). :func:`check_fleet_settings` refuses settings under which Redis would hand a
message to a second worker while the first still works on it.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from hidesync_events.categories import known_categories
from hidesync_events.codec import Envelope, peek_header
from hidesync_events.dead_letters import Reason
from hidesync_events.delivery import CLAIM_GRACE_S, Delivery, Outcome, Status
from hidesync_events.errors import ConfigurationError
from hidesync_events.event import DomainEvent, registered_event_types
from hidesync_events.retry import RetryPolicy
from hidesync_events.runtime import Runtime
from hidesync_events.settings import Settings
from hidesync_events.subscriptions import HandlerRegistry

logger = logging.getLogger("hidesync.events.worker")

#: Sends one deliver message: (queue, envelope, task kwargs, countdown in seconds).
Resend = Callable[[str, str, dict[str, Any], float], object]

#: How often a worker process adds its metrics to the fleet's totals.
METRICS_FLUSH_INTERVAL_S = 1.0


class WorkerDelivery:
    """The body of the ``deliver`` task."""

    def __init__(self, delivery: Delivery, resend: Resend) -> None:
        self.delivery = delivery
        self._resend = resend
        self._settings = delivery.runtime.settings
        self._deliveries_key = f"{self._settings.key_prefix}:deliveries"

    def __call__(
        self,
        raw: Any,
        *,
        message_id: str,
        queue: str,
        redelivered: bool,
        handler: str | None = None,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
    ) -> None:
        if redelivered and self._too_many_deliveries(raw, message_id, queue, handler):
            return

        envelope = self.delivery.decode(raw, queue=queue)
        if envelope is not None:
            for subscription in self.delivery.targets(envelope, only=handler):
                outcome = self.delivery.run(
                    subscription, envelope, attempt, first_failed_at, owner=message_id
                )
                self._follow_up(outcome, envelope, queue, first_failed_at)

        if redelivered:
            self.delivery.runtime.kv.hdel(self._deliveries_key, message_id)

    def _too_many_deliveries(
        self, raw: Any, message_id: str, queue: str, handler: str | None
    ) -> bool:
        # Only messages given back after a crash are counted: the first delivery
        # costs nothing. The count lives in Redis, where a crash cannot lose it.
        kv = self.delivery.runtime.kv
        count = kv.hincrby(self._deliveries_key, message_id)
        if count < self._settings.max_deliveries:
            logger.warning(
                "message %s from %s delivered again after a worker was lost (%d)",
                message_id,
                queue,
                count,
            )
            return False

        kv.hdel(self._deliveries_key, message_id)
        text = raw if isinstance(raw, str) else repr(raw)
        header = peek_header(text)
        letter = self.delivery.runtime.dead_letters.record(
            reason=Reason.WORKER_LOST,
            raw=text,
            error=f"delivered {count + 1} times without finishing: workers died on it",
            attempts=count + 1,
            event_type=_text(header.get("type")),
            event_id=_text(header.get("event_id")),
            handler=handler,
            queue=queue,
        )
        self.delivery.runtime.metrics.count("dead_letters", Reason.WORKER_LOST)
        logger.warning(
            "message %s from %s killed its worker %d times; kept as dead letter %s",
            message_id,
            queue,
            count + 1,
            letter.id,
        )
        return True

    def _follow_up(
        self,
        outcome: Outcome,
        envelope: Envelope,
        queue: str,
        first_failed_at: datetime | None,
    ) -> None:
        if outcome.status is Status.RETRY:
            failed_at = first_failed_at or datetime.now(UTC)
            kwargs = {
                "handler": outcome.handler,
                "attempt": outcome.attempt + 1,
                "first_failed_at": failed_at.isoformat(),
            }
        elif outcome.status is Status.BUSY:
            # Another delivery holds the handler: look again when its claim lapses.
            kwargs = {"handler": outcome.handler, "attempt": outcome.attempt}
            if first_failed_at is not None:
                kwargs["first_failed_at"] = first_failed_at.isoformat()
        else:
            return

        # A message of its own for this one handler: the others are not run again.
        # Celery's Task.retry re-sends the whole task under the same id, once per
        # request, so it cannot retry two handlers of one event separately.
        self._resend(queue, envelope.text, kwargs, outcome.delay_s)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def prepare_worker(settings: Settings, registry: HandlerRegistry) -> None:
    """Import the handler modules, then refuse settings the fleet cannot run with.

    Called before a worker starts consuming, so a bad configuration stops it at once
    rather than surfacing as a duplicate delivery an hour later.
    """
    for module in settings.handler_modules:
        importlib.import_module(module)
    check_fleet_settings(settings, registry)


def check_fleet_settings(settings: Settings, registry: HandlerRegistry) -> None:
    """Refuse settings under which a Redis broker would deliver a message twice.

    Redis hands a message that stays unacknowledged longer than the visibility timeout
    to another worker. A handler running longer than that, or a retry waiting longer
    (the worker holds delayed messages unacknowledged), would run twice.
    """
    if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return

    limit_s = settings.visibility_timeout_s
    longest_run_s = settings.handler_time_limit_s + CLAIM_GRACE_S
    problems = []
    if longest_run_s >= limit_s:
        problems.append(
            f"a handler may run {longest_run_s:g}s (HIDESYNC_EVENTS_HANDLER_TIME_LIMIT_S "
            f"plus {CLAIM_GRACE_S:g}s grace)"
        )

    policies = [("the default retry policy", RetryPolicy.from_settings(settings))]
    policies += [
        (f"{s.name}'s retry policy", s.retry)
        for s in registry.subscriptions()
        if s.retry
    ]
    for owner, policy in policies:
        if policy is not None and policy.longest_delay_s >= limit_s:
            problems.append(
                f"{owner} waits up to {policy.longest_delay_s:g}s between attempts"
            )

    if problems:
        raise ConfigurationError(
            f"the Redis visibility timeout (HIDESYNC_EVENTS_VISIBILITY_TIMEOUT_S = "
            f"{limit_s}s) must exceed how long a message can stay unacknowledged, but "
            f"{'; '.join(problems)}. Raise the visibility timeout or lower those limits."
        )


def warn_about_unconsumed_categories(
    consumed_queues: Iterable[str],
    registry: HandlerRegistry,
    queue_of: Callable[[str], str],
) -> list[str]:
    """Log a warning for each category that has handlers but no worker consuming it."""
    consumed = set(consumed_queues)
    handled = {
        category
        for category in known_categories()
        if any(registry.handlers_for(cls) for cls in _event_types_of(category))
    }
    missing = sorted(c for c in handled if queue_of(c) not in consumed)
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


class MetricsFlusher:
    """Adds a worker process's metrics to the fleet's totals every second or so."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        # Checked per message: after a fork the thread exists only in the parent.
        if self._thread is not None and self._thread.is_alive():
            return

        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="hidesync-events-metrics", daemon=True
                )
                self._thread.start()

    def flush_now(self, *args: Any, **kwargs: Any) -> None:
        runtime = self._runtime
        try:
            runtime.metrics.flush(runtime.kv, runtime.settings.key_prefix)
        except Exception:
            logger.warning("could not flush metrics to the state store", exc_info=True)

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(METRICS_FLUSH_INTERVAL_S):
            self.flush_now()
