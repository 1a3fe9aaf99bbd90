"""The Celery app of hidesync-events: its configuration and the one ``deliver`` task.

The configuration comes from :class:`~hidesync_events.settings.Settings` and the
category table; ``celeryconfig.py`` exposes the same mapping to Celery tooling. One
task, ``hidesync_events.deliver``, carries an envelope as an opaque JSON string (so
kombu never re-types a value) plus, on a retry, the one handler to run again.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from celery import Celery, Task, signals
from kombu import Queue

from hidesync_events import prometheus
from hidesync_events.categories import known_categories, queue_name
from hidesync_events.errors import ConfigurationError
from hidesync_events.fleet import (
    ANNOUNCE_EVERY_S,
    ConsumerRegistry,
    warn_about_unconsumed_categories,
)
from hidesync_events.handling import CorrelationFilter
from hidesync_events.publisher import DEFAULT_EXCHANGE
from hidesync_events.settings import Settings
from hidesync_events.worker import (
    METRICS_FLUSH_INTERVAL_S,
    MetricsFlusher,
    WorkerDelivery,
)

logger = logging.getLogger("hidesync.events.worker")

DELIVER_TASK = "hidesync_events.deliver"
#: A batch of envelopes of one category, from ``publish_many``.
DELIVER_MANY_TASK = "hidesync_events.deliver_many"

#: How long after start a worker asks the fleet which queues have consumers.
CONSUMER_CHECK_DELAY_S = 5.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery settings hidesync-events needs, derived from ``settings``."""
    prefix = settings.queue_prefix
    # The default exchange routes by queue name: no bindings to lose (see publisher).
    queues = [
        Queue(
            queue_name(c, prefix), DEFAULT_EXCHANGE, routing_key=queue_name(c, prefix)
        )
        for c in known_categories()
    ]
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_s
    }
    if settings.broker_kind == "amqp":
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
        # A handler over its time limit fails (and is retried); a whole message over
        # the hard limit costs its worker process, and is delivered again.
        "task_soft_time_limit": settings.handler_time_limit_s,
        "task_time_limit": settings.hard_time_limit_s,
        # Poison messages (pickle, unknown task, broken protocol) become dead letters.
        "worker_consumer": "hidesync_events.consumer:DeadLetteringConsumer",
    }


def create_app(
    settings: Settings, worker: WorkerDelivery, flusher: MetricsFlusher
) -> Celery:
    """Create the Celery app whose ``deliver`` task runs ``worker``."""
    app = Celery("hidesync_events", set_as_current=False)
    app.conf.update(celery_config(settings))

    # shared=False: a shared task would be added to every later app, with this
    # app's delivery path. Both tasks are acknowledged once their handlers ran.
    delivery_task = functools.partial(
        app.task, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True
    )

    @delivery_task(name=DELIVER_TASK)
    def deliver(
        task: Task[Any, Any],
        envelope: Any,
        handler: str | None = None,
        attempt: int = 1,
        first_failed_at: str | None = None,
    ) -> None:
        flusher.ensure_running()
        _run(task, worker, [envelope], handler, attempt, first_failed_at)

    @delivery_task(name=DELIVER_MANY_TASK)
    def deliver_many(task: Task[Any, Any], envelopes: Any) -> None:
        flusher.ensure_running()
        batch = envelopes if isinstance(envelopes, list) else [envelopes]
        _run(task, worker, batch, None, 1, None)

    # Every record a handler logs carries its event's ids (see CorrelationFilter).
    signals.after_setup_logger.connect(_filter_handlers, weak=False)
    signals.after_setup_task_logger.connect(_filter_handlers, weak=False)
    signals.worker_process_shutdown.connect(flusher.flush_now, weak=False)
    signals.worker_shutdown.connect(flusher.flush_now, weak=False)
    signals.worker_ready.connect(
        lambda sender, **_: _join_fleet(sender, worker, flusher), weak=False
    )
    if settings.metrics_port is not None:
        signals.worker_init.connect(
            lambda sender, **_: _export_to_prometheus(sender, settings, worker),
            weak=False,
        )
    return app


def _filter_handlers(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        handler.addFilter(CorrelationFilter())


def _run(
    task: Task[Any, Any],
    worker: WorkerDelivery,
    envelopes: list[Any],
    handler: str | None,
    attempt: int,
    first_failed_at: str | None,
) -> None:
    request = task.request
    delivery_info = request.delivery_info or {}
    worker(
        envelopes,
        message_id=str(request.id),
        queue=delivery_info.get("routing_key") or "",
        redelivered=bool(delivery_info.get("redelivered")),
        handler=handler,
        attempt=attempt,
        first_failed_at=datetime.fromisoformat(first_failed_at)
        if first_failed_at
        else None,
    )


def _export_to_prometheus(
    controller: Any, settings: Settings, worker: WorkerDelivery
) -> None:
    # worker_init: in the main process, after the queues are chosen and before the
    # pool forks its children, which must inherit the multiprocess directory.
    assert settings.metrics_port is not None
    queues = controller.app.amqp.queues
    consumed = list(queues.consume_from or queues)
    try:
        directory = prometheus.prepare()
        worker.delivery.runtime.metrics.exporter = prometheus.PrometheusExporter()
        prometheus.serve(
            directory,
            settings.metrics_host,
            settings.metrics_port,
            [prometheus.QueueDepthCollector(settings.broker_url, consumed)],
        )
    except ConfigurationError as error:
        # Celery logs and swallows what a signal handler raises: a worker asked for
        # metrics it cannot serve stops here instead of running without them.
        logger.critical("%s", error)
        raise SystemExit(1) from error

    # Celery sets its logging up after worker_init: say where the metrics are once
    # the worker is ready.
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    signals.worker_ready.connect(
        lambda **_: logger.info("serving Prometheus metrics on %s", url), weak=False
    )


def _join_fleet(consumer: Any, worker: WorkerDelivery, flusher: MetricsFlusher) -> None:
    # Everything runs on the worker's own timer, on its main thread: a thread of
    # ours alive in the parent while the prefork pool forks could leave a child a
    # lock that is never released.
    runtime = worker.delivery.runtime
    registry = ConsumerRegistry(runtime.kv, key_prefix=runtime.settings.key_prefix)
    name = consumer.hostname
    queues = [queue.name for queue in consumer.task_consumer.queues]

    def announce() -> None:
        try:
            registry.announce(name, queues)
        except Exception:
            logger.warning("could not announce this worker's queues", exc_info=True)

    def check() -> None:
        consumed = [q for qs in registry.consumers().values() for q in qs] + queues
        prefix = runtime.settings.queue_prefix
        warn_about_unconsumed_categories(
            consumed, worker.delivery.registry, lambda c: queue_name(c, prefix)
        )

    announce()
    consumer.timer.call_repeatedly(ANNOUNCE_EVERY_S, announce)
    # The main process counts too (poison messages it dead-letters while consuming).
    consumer.timer.call_repeatedly(METRICS_FLUSH_INTERVAL_S, flusher.flush_now)
    # Other workers may still be starting: look a little later.
    consumer.timer.call_after(CONSUMER_CHECK_DELAY_S, check)
    signals.worker_shutdown.connect(lambda **_: registry.withdraw(name), weak=False)
