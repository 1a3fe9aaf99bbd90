"""Single-event scenarios on RabbitMQ: hidesync-events against a raw Celery task on the
same broker, publishing and end to end, with real worker processes on both sides.

    python -m bench performance --amqp-url amqp://guest:guest@127.0.0.1:5672//

RabbitMQ is the broker only; the state store (claims, completion records, latency
samples) is a throwaway Redis, as in a fleet that moved its queues off Redis. A
RabbitMQ takes long to start, so the run uses the one at the URL given (loopback by
default), with queue names of a prefix of its own, deleted at the end; when none
answers, these rows are left out and the run says why.

Both publishers wait for RabbitMQ's publisher confirm, which hidesync-events asks for
on AMQP so that no message is lost between publish and broker: the raw Celery app is
configured the same way. A queue counts as drained when it holds no ready message;
with prefetch 1 and two processes, at most two of its messages are then still being
handled, on both sides alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import redis
from celery import Celery
from kombu import Connection

from bench.baselines import CELERY_SETTINGS, trivial_body
from bench.queues import (
    SINGLE_EVENT_KINDS,
    publish_celery,
    publish_ours,
    single_event_results,
    start_process,
    stop_process,
)
from bench.results import (
    Result,
    alternate,
    publish_rate,
)
from hidesync_events import configure, global_event_bus
from hidesync_events.categories import queue_name
from hidesync_events.redis_server import ThrowawayRedis
from tests.support.fleet import WorkerFleet
from tests.support.rabbitmq import RABBITMQ_URL, RabbitMQ, rabbitmq_reachable

#: The raw Celery app on RabbitMQ; its worker process reads the URL from the environment.
celery_app = Celery(
    "bench-amqp",
    broker=os.environ.get("BENCH_AMQP_URL", RABBITMQ_URL),
    set_as_current=False,
)
celery_app.conf.update(
    CELERY_SETTINGS, broker_transport_options={"confirm_publish": True}
)
trivial = celery_app.task(name="bench.trivial", shared=False)(trivial_body)


class AmqpLab:
    """A RabbitMQ (given), a throwaway Redis for state, our worker and a raw one."""

    def __init__(self, url: str) -> None:
        self.broker = RabbitMQ(url)
        self.redis = ThrowawayRedis()
        self.fleet = WorkerFleet(url)
        self.raw_worker: subprocess.Popen[bytes] | None = None
        self.client: redis.Redis
        self.connection = Connection(url)
        prefix = self.broker.prefix
        self.ours, self.ours_idle = (
            queue_name("bench", prefix),
            queue_name("bench_idle", prefix),
        )
        self.raw, self.raw_idle = f"{prefix}.celery", f"{prefix}.idle"

    def __enter__(self) -> AmqpLab:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.redis.start()
        self.client = self.redis.client()
        configure(**self.broker.settings(self.redis.url))
        os.environ["BENCH_AMQP_URL"] = self.broker.url
        os.environ["BENCH_STATE_URL"] = self.redis.url
        celery_app.conf.broker_url = self.broker.url  # type: ignore[misc]

        self.fleet.start(
            "ours-amqp",
            categories=("bench",),
            handler_modules=("bench.perf_handlers",),
            concurrency=2,
            env={
                **self.broker.worker_env(self.redis.url),
                "HIDESYNC_EVENTS_SLOW_HANDLER_S": "60",
            },
            loglevel="WARNING",
        )
        self.raw_worker = start_process(
            [
                sys.executable, "-m", "celery", "-A", "bench.amqp:celery_app",
                "worker", "-Q", self.raw, "-c", "2", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]
        )  # fmt: skip
        time.sleep(3)  # let the raw worker connect and declare its queue

    def __exit__(self, *exc: object) -> None:
        self.fleet.stop()
        stop_process(self.raw_worker)
        global_event_bus.close()
        try:
            self.broker.delete_queues(self.raw, self.raw_idle)
        finally:
            self.connection.release()
            self.redis.close()

    @property
    def trivial(self) -> Any:
        """The raw Celery task, on this RabbitMQ."""
        return trivial

    def ready(self, queue: str) -> int:
        """Messages waiting in ``queue`` (not those a worker holds)."""
        declared = self.connection.default_channel.queue_declare(queue, passive=True)
        return int(declared.message_count)

    def wait_drained(self, queue: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ready(queue):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue} not drained within {timeout_s}s")
            time.sleep(0.01)

    def purge(self, queue: str) -> None:
        self.connection.default_channel.queue_purge(queue)


def unavailable(url: str) -> str | None:
    """Why the RabbitMQ rows cannot run at ``url``, or None when they can."""
    return rabbitmq_reachable(url)


def run(runs: int, *, quick: bool, url: str) -> list[Result]:
    count = 500 if quick else 2000
    with AmqpLab(url) as lab:
        published = alternate(
            runs, lambda: publish_ours(lab, count), lambda: publish_celery(lab, count)
        )
        results = [
            publish_rate(
                "RabbitMQ: publish, one event per call (publisher confirms)",
                *published,
            )
        ]
        for event_type, handled in SINGLE_EVENT_KINDS:
            results += single_event_results(
                lab, runs, count, event_type, handled, broker="RabbitMQ"
            )
    return results
