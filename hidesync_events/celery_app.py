"""The Celery app of hidesync-events: its configuration and the one ``deliver`` task.

The configuration comes from :class:`~hidesync_events.settings.Settings` and the
category table; ``celeryconfig.py`` exposes the same mapping to Celery tooling. One
task, ``hidesync_events.deliver``, carries an envelope as an opaque JSON string (so
kombu never re-types a value) plus, on a retry, the one handler to run again.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery import Celery, Task, signals
from celery.exceptions import Reject
from kombu import Queue

from hidesync_events.categories import known_categories, queue_name
from hidesync_events.delivery import Delivery, Status
from hidesync_events.settings import Settings

if TYPE_CHECKING:
    from hidesync_events.runtime import Runtime

logger = logging.getLogger("hidesync.events.worker")

DELIVER_TASK = "hidesync_events.deliver"

#: How often a worker process adds its metrics to the fleet's totals.
METRICS_FLUSH_INTERVAL_S = 1.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery settings hidesync-events needs, derived from ``settings``."""
    prefix = settings.queue_prefix
    queues = [
        Queue(queue_name(category, prefix), routing_key=queue_name(category, prefix))
        for category in known_categories()
    ]
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_s
    }
    if settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        transport_options["confirm_publish"] = True

    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        # JSON only: a pickle message is refused, never deserialised.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # Acknowledge after the handlers ran; give a message back if its worker dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_queues": queues,
        "task_default_queue": queue_name("default", prefix),
        "task_create_missing_queues": True,
        "imports": list(settings.handler_modules),
        "worker_hijack_root_logger": False,
    }


def create_app(settings: Settings, delivery: Delivery) -> Celery:
    """Create the Celery app that sends and delivers events with ``delivery``."""
    app = Celery("hidesync_events", set_as_current=False)
    app.conf.update(celery_config(settings))
    flusher = _MetricsFlusher(delivery.runtime)

    # shared=False: a shared task would be added to every later app, with this
    # app's delivery path.
    @app.task(
        bind=True,
        name=DELIVER_TASK,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
    )
    def deliver(
        task: Task[Any, Any],
        envelope: Any,
        handler: str | None = None,
        attempt: int = 1,
        first_failed_at: str | None = None,
    ) -> None:
        flusher.ensure_running()
        queue = (task.request.delivery_info or {}).get("routing_key")
        run_delivery(
            task,
            delivery,
            envelope,
            handler=handler,
            attempt=attempt,
            first_failed_at=datetime.fromisoformat(first_failed_at)
            if first_failed_at
            else None,
            queue=queue,
        )

    signals.worker_process_shutdown.connect(flusher.flush_now, weak=False)
    signals.worker_shutdown.connect(flusher.flush_now, weak=False)
    return app


def run_delivery(
    task: Task[Any, Any],
    delivery: Delivery,
    raw: Any,
    *,
    handler: str | None,
    attempt: int,
    first_failed_at: datetime | None,
    queue: str | None,
) -> None:
    """The body of the ``deliver`` task: decode, run each handler, schedule retries."""
    envelope = delivery.decode(raw, queue=queue)
    if envelope is None:
        return

    for subscription in delivery.targets(envelope, only=handler):
        outcome = delivery.run(subscription, envelope, attempt, first_failed_at)
        if outcome.status is not Status.RETRY:
            continue

        # Only the failed handler runs again, in a message of its own; handlers that
        # succeeded are not repeated. Celery's Task.retry re-sends the whole task under
        # the same id, once per request, so it cannot retry two handlers separately.
        try:
            task.apply_async(
                args=(envelope.text,),
                kwargs={
                    "handler": subscription.name,
                    "attempt": attempt + 1,
                    "first_failed_at": (
                        first_failed_at or datetime.now(UTC)
                    ).isoformat(),
                },
                countdown=outcome.delay_s,
                queue=queue or queue_name(envelope.category),
            )
        except Exception as error:
            # The retry could not be sent: give the whole message back to the queue.
            # Handlers that completed are recorded as done and will be skipped.
            raise Reject(
                f"could not schedule a retry: {error}", requeue=True
            ) from error


class _MetricsFlusher:
    """Adds a worker process's metrics to the shared totals every few seconds."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return

        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="hidesync-events-metrics", daemon=True
                )
                self._thread.start()

    def flush_now(self, *args: Any, **kwargs: Any) -> None:
        try:
            self._runtime.metrics.flush(
                self._runtime.kv, self._runtime.settings.key_prefix
            )
        except Exception:
            logger.warning("could not flush metrics to the state store", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(METRICS_FLUSH_INTERVAL_S):
            self.flush_now()
