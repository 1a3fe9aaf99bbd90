"""The baselines hidesync-events is measured against, in the same run.

* a trivial Celery task taking one string of the envelope's size, with the worker
  settings hidesync-events uses (JSON, late acks, prefetch 1, requeue on loss, the
  same soft and hard time limits);
* Dramatiq with its Redis broker, a trivial actor taking the same string;
* in-process dispatch: blinker, pyee, and a plain dict-of-lists bus.

Worker processes import this module by name (``celery -A bench.baselines``,
``dramatiq bench.baselines``); the broker URL comes from ``BENCH_BROKER_URL``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from celery import Celery
from dramatiq.brokers.redis import RedisBroker

from hidesync_events.settings import Settings

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6399/0")
CELERY_QUEUE = "bench.celery"
DRAMATIQ_QUEUE = "bench_dramatiq"

# -- raw Celery --------------------------------------------------------------------------

_LIMITS = Settings()
#: The raw Celery worker settings: those hidesync-events' workers run with.
CELERY_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "task_ignore_result": True,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
    "task_soft_time_limit": _LIMITS.handler_time_limit_s,
    "task_time_limit": _LIMITS.hard_time_limit_s,
}
celery_app = Celery("bench", broker=BROKER_URL, set_as_current=False)
celery_app.conf.update(CELERY_SETTINGS, task_default_queue=CELERY_QUEUE)


LATENCY_KEY = "bench:latency:celery"


def trivial_body(payload: str, sent_at: float = 0.0) -> None:
    """Does nothing with its payload (the cost measured is Celery's own), unless
    asked to record its latency, as the hidesync-events handler does."""
    if sent_at:
        latency_ms = (time.time() - sent_at) * 1000
        _redis().rpush(LATENCY_KEY, round(latency_ms, 3))


#: The raw task: a Celery app per broker registers the same body under one name.
trivial = celery_app.task(name="bench.trivial", shared=False)(trivial_body)

_client: list[redis.Redis] = []


def _redis() -> redis.Redis:
    # Latency samples go to the broker's Redis, or to BENCH_STATE_URL's when the
    # broker is not a Redis (RabbitMQ, in bench.amqp).
    if not _client:
        url = os.environ.get("BENCH_STATE_URL") or BROKER_URL
        _client.append(redis.Redis.from_url(url))
    return _client[0]


# -- Dramatiq ----------------------------------------------------------------------------

dramatiq.set_broker(RedisBroker(url=BROKER_URL))  # type: ignore[no-untyped-call]


@dramatiq.actor(queue_name=DRAMATIQ_QUEUE, max_retries=0)
def dramatiq_trivial(payload: str) -> None:
    """Does nothing with its payload."""


def point_at(broker_url: str) -> None:
    """Aim this process's baselines at ``broker_url`` (workers read the environment)."""
    global BROKER_URL
    BROKER_URL = broker_url
    celery_app.conf.broker_url = broker_url  # type: ignore[misc]
    broker = RedisBroker(url=broker_url)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    dramatiq_trivial.broker = broker
    broker.declare_actor(dramatiq_trivial)
    _client.clear()


# -- in process ------------------------------------------------------------------------------


class DictBus:
    """The simplest bus there is: a dict of lists of callables."""

    def __init__(self) -> None:
        self.handlers: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(
            list
        )

    def subscribe(self, event_type: type, handler: Callable[[Any], None]) -> None:
        self.handlers[event_type].append(handler)

    def publish(self, event: Any) -> None:
        for handler in self.handlers[type(event)]:
            handler(event)
