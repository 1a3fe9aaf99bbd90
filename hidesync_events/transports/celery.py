"""Celery mode: envelopes go to their category's queue; workers deliver them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from hidesync_events.categories import queue_name
from hidesync_events.celery_app import DELIVER_MANY_TASK, DELIVER_TASK, create_app
from hidesync_events.codec import Envelope
from hidesync_events.delivery import Delivery
from hidesync_events.publisher import Publisher
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry
from hidesync_events.transports.base import Receipt
from hidesync_events.worker import MetricsFlusher, WorkerDelivery


class CeleryTransport:
    """Sends each envelope as one ``deliver`` task to ``<queue_prefix>.<category>``.

    ``send`` returns once the broker has the message (Redis: the push returned;
    RabbitMQ: the publisher confirm arrived), or once it is in the local spool when
    the broker did not take it within ``publish_timeout_s``; the receipt says which.
    The same object serves workers: ``app`` is the Celery app they run, ``worker`` the
    body of its task.
    """

    def __init__(self, registry: HandlerRegistry, runtime: Runtime) -> None:
        self.delivery = Delivery(registry, runtime)
        self.worker = WorkerDelivery(self.delivery, self._resend)
        # Publishing processes share their counts too (published, spooled).
        self._flusher = MetricsFlusher(runtime)
        self.app = create_app(runtime.settings, self.worker, self._flusher)
        self.publisher = Publisher(
            self.app, DELIVER_TASK, DELIVER_MANY_TASK, runtime.settings
        )
        self._prefix = runtime.settings.queue_prefix

    @property
    def runtime(self) -> Runtime:
        return self.delivery.runtime

    def send(self, envelope: Envelope, *, only: str | None = None) -> Receipt:
        self._flusher.ensure_running()
        queue = queue_name(envelope.category, self._prefix)
        status = self.publisher.send(
            queue, envelope.text, kwargs={"handler": only} if only else None
        )
        if status == "spooled":
            self.runtime.metrics.count("spooled", envelope.event_type)
        return Receipt(envelope.event_id, status, queue)

    def send_many(self, envelopes: list[Envelope]) -> list[Receipt]:
        """One message per category and batch: at most ``BATCH_MAX_EVENTS`` envelopes
        and ``max_envelope_bytes`` of them. Each event keeps its own handlers,
        retries, duplicates check and dead letters on the worker."""
        self._flusher.ensure_running()
        by_queue: dict[str, list[int]] = {}
        for index, envelope in enumerate(envelopes):
            queue = queue_name(envelope.category, self._prefix)
            by_queue.setdefault(queue, []).append(index)

        receipts: list[Receipt | None] = [None] * len(envelopes)
        max_bytes = self.runtime.settings.max_envelope_bytes
        for queue, indexes in by_queue.items():
            for chunk in _batches(indexes, envelopes, max_bytes):
                status = self.publisher.send_many(
                    queue, [envelopes[i].text for i in chunk]
                )
                for i in chunk:
                    receipts[i] = Receipt(envelopes[i].event_id, status, queue)
        return [receipt for receipt in receipts if receipt is not None]

    def _resend(
        self, queue: str, envelope: str, kwargs: dict[str, Any], delay_s: float
    ) -> object:
        return self.publisher.send(queue, envelope, kwargs=kwargs, countdown=delay_s)

    async def send_async(self, envelope: Envelope) -> Receipt:
        # kombu's producers block on the socket: keep them off the caller's loop.
        return await asyncio.to_thread(self.send, envelope)

    async def drain(self, timeout_s: float | None = None) -> int:
        return 0

    def cancel_pending(self) -> int:
        return 0

    def close(self) -> None:
        self._flusher.flush_now()
        self.publisher.close()
        self.app.close()


#: The most events one batch message carries.
BATCH_MAX_EVENTS = 500


def _batches(
    indexes: list[int], envelopes: list[Envelope], max_bytes: int
) -> Iterator[list[int]]:
    batch: list[int] = []
    size = 0
    for index in indexes:
        length = len(envelopes[index].text) + 8  # JSON quoting and separators
        if batch and (size + length > max_bytes or len(batch) == BATCH_MAX_EVENTS):
            yield batch
            batch, size = [], 0
        batch.append(index)
        size += length
    if batch:
        yield batch
