"""What a Celery worker does with a ``deliver`` message, and what it checks at start.

:class:`WorkerDelivery` is the task's body: it stops crash loops (a message delivered
again and again without finishing is dead-lettered as worker-lost), decodes, runs each
handler through the shared :class:`~hidesync_events.delivery.Delivery`, and sends a
delayed message for each handler to retry (or to look at again, when another delivery
held it). :func:`check_fleet_settings` refuses settings under which Redis would hand a
message to a second worker while the first still works on it.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from hidesync_events.categories import queue_name
from hidesync_events.codec import Envelope, peek_header
from hidesync_events.dead_letters import Reason
from hidesync_events.delivery import Delivery, Outcome, Status
from hidesync_events.errors import ConfigurationError
from hidesync_events.retry import RetryPolicy
from hidesync_events.runtime import Runtime
from hidesync_events.settings import Settings
from hidesync_events.subscriptions import HandlerRegistry

logger = logging.getLogger("hidesync.events.worker")

#: Sends one deliver message: (queue, envelope, task kwargs, countdown in seconds).
Resend = Callable[[str, str, dict[str, Any], float], object]

#: How long a message's count of lost deliveries is kept.
DELIVERY_COUNT_TTL_S = 24 * 3600

#: How soon a delivery that found its handler busy elsewhere looks again.
BUSY_RECHECK_S = 2.0

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
        raws: Sequence[Any],
        *,
        message_id: str,
        queue: str,
        redelivered: bool,
        handler: str | None = None,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
    ) -> None:
        """Deliver the envelopes of one message (one, or a batch from ``publish_many``)."""
        if redelivered and self._too_many_deliveries(raws, message_id, queue, handler):
            return

        items = []
        seen: set[str] = set()
        for raw in raws:
            envelope = self.delivery.decode(raw, queue=queue)
            if envelope is None:
                continue

            # One event twice in a batch (published twice in one publish_many): the
            # copies share this message's claims, so only the first may run.
            if envelope.event_id in seen:
                subscriptions = self.delivery.registry.handlers_for(
                    type(envelope.event)
                )
                self.delivery.report.duplicate_in_message(envelope, subscriptions)
                continue

            seen.add(envelope.event_id)
            subscriptions = self.delivery.targets(envelope, only=handler)
            items += [(envelope, subscription) for subscription in subscriptions]

        outcomes = self.delivery.run_message(
            items, attempt, first_failed_at, owner=message_id
        )
        for (envelope, _), outcome in zip(items, outcomes, strict=True):
            self._follow_up(outcome, envelope, queue, first_failed_at)

        if redelivered:
            self.delivery.runtime.kv.delete(f"{self._deliveries_key}:{message_id}")

    def _too_many_deliveries(
        self, raws: Sequence[Any], message_id: str, queue: str, handler: str | None
    ) -> bool:
        # Only messages given back after a crash are counted: the first delivery
        # costs nothing. The count lives in Redis, where a crash cannot lose it.
        kv = self.delivery.runtime.kv
        key = f"{self._deliveries_key}:{message_id}"
        batch = kv.batch().hincrby(key, "lost").expire(key, DELIVERY_COUNT_TTL_S)
        count, _ = batch.execute()
        if count < self._settings.max_deliveries:
            logger.warning(
                "message %s from %s delivered again after a worker was lost (%d)",
                message_id,
                queue,
                count,
            )
            return False

        kv.delete(key)
        for raw in raws:
            self._keep_lost(raw, count, queue, handler)
        logger.warning(
            "message %s from %s killed its worker %d times; its %d events are kept as "
            "dead letters",
            message_id,
            queue,
            count,
            len(raws),
        )
        return True

    def _keep_lost(self, raw: Any, count: int, queue: str, handler: str | None) -> None:
        text = raw if isinstance(raw, str) else repr(raw)
        header = peek_header(text)
        self.delivery.runtime.dead_letters.record(
            reason=Reason.WORKER_LOST,
            raw=text,
            error=f"delivered {count} times, and each time its worker process died",
            attempts=count,
            event_type=_text(header.get("type")),
            event_id=_text(header.get("event_id")),
            handler=handler,
            queue=queue,
        )
        self.delivery.runtime.metrics.count("dead_letters", Reason.WORKER_LOST)

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
            # Another delivery holds the handler: look again soon (it may finish) and
            # at the latest when its claim lapses (its process may have died).
            kwargs = {"handler": outcome.handler, "attempt": outcome.attempt}
            outcome = outcome._replace(delay_s=min(outcome.delay_s, BUSY_RECHECK_S))
            if first_failed_at is not None:
                kwargs["first_failed_at"] = first_failed_at.isoformat()
        else:
            return

        # A message of its own for this one handler: the others are not run again.
        # Celery's Task.retry re-sends the whole task under the same id, once per
        # request, so it cannot retry two handlers of one event separately.
        prefix = self._settings.queue_prefix
        self._resend(
            queue or queue_name(envelope.category, prefix),
            envelope.text,
            kwargs,
            outcome.delay_s,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def import_handler_modules(settings: Settings) -> None:
    """Import the modules whose handlers (and application events) a worker runs.

    Done before the Celery app is built, so the categories those modules declare are
    in its queue table.
    """
    import_modules(settings.handler_modules)


def import_modules(modules: Iterable[str]) -> None:
    """Import handler modules by name.

    A module that does not exist is a :class:`ConfigurationError` naming it; an error
    raised while a module that exists is imported (a bug in it, a dependency of its
    own missing) propagates as it is, with its traceback.
    """
    for module in modules:
        if not module or module.startswith("."):
            raise ConfigurationError(
                f"handler modules are named in full (package.module), got {module!r}"
            )

        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            missing = error.name or ""
            if module != missing and not module.startswith(f"{missing}."):
                raise
            raise ConfigurationError(
                f"cannot import handler module {module!r}: {error} (check "
                "--handlers or HIDESYNC_EVENTS_HANDLER_MODULES, and that the "
                "application is on the Python path)"
            ) from error


def check_fleet_settings(settings: Settings, registry: HandlerRegistry) -> None:
    """Refuse settings under which the broker would deliver a message twice.

    Redis hands a message that stays unacknowledged longer than the visibility timeout
    to another worker; RabbitMQ closes the channel of a delivery unacknowledged past
    its consumer timeout, and delivers it again. A worker holds a delayed retry
    unacknowledged for its whole delay and then runs it: a handler running longer
    than the limit, or a retry waiting longer than the limit less the run, would run
    twice.
    """
    limit = settings.unacknowledged_limit
    if limit is None:
        return

    longest_run_s = settings.hard_time_limit_s
    problems = []
    if longest_run_s >= limit.seconds:
        problems.append(
            f"a delivery may run {longest_run_s:g}s (HIDESYNC_EVENTS_HANDLER_TIME_LIMIT_S "
            "plus its grace)"
        )

    policies = [("the default retry policy", RetryPolicy.from_settings(settings))]
    policies += [
        (f"{s.name}'s retry policy", s.retry)
        for s in registry.subscriptions()
        if s.retry
    ]
    for owner, policy in policies:
        if (
            policy is not None
            and policy.longest_delay_s >= settings.longest_retry_delay_s
        ):
            problems.append(
                f"{owner} waits up to {policy.longest_delay_s:g}s between attempts, "
                f"and the attempt may then run {longest_run_s:g}s"
            )

    if problems:
        raise ConfigurationError(
            f"{limit.what} ({limit.variable} = {limit.seconds}s) must exceed how long "
            f"a message can stay unacknowledged, but {'; '.join(problems)}. Raise "
            "it or lower those limits."
        )


class MetricsFlusher:
    """Adds a worker process's metrics to the fleet's totals every second or so."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False

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
                # What was counted since the last flush is not lost at exit.
                atexit.register(self.flush_at_exit)

    def flush_now(self, *args: Any, **kwargs: Any) -> None:
        runtime = self._runtime
        try:
            runtime.metrics.flush(runtime.kv, runtime.settings.key_prefix)
        except Exception as error:
            # Once per outage: the counts wait in memory and go with the next flush.
            if not self._failing:
                logger.warning("could not flush metrics to the state store: %s", error)
            self._failing = True
        else:
            self._failing = False

    def flush_at_exit(self) -> None:
        # The store may be gone by now (tests stop it first): say so in one line.
        runtime = self._runtime
        try:
            runtime.metrics.flush(runtime.kv, runtime.settings.key_prefix)
        except Exception as error:
            logger.info("metrics not flushed at exit: %s", error)

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(METRICS_FLUSH_INTERVAL_S):
            self.flush_now()
