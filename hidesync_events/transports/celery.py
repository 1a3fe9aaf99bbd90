"""Celery mode: envelopes go to their category's queue; workers deliver them."""

from __future__ import annotations

import asyncio
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from hidesync_events.categories import queue_name
from hidesync_events.celery_app import DELIVER_TASK, create_app
from hidesync_events.codec import Envelope
from hidesync_events.delivery import Delivery
from hidesync_events.errors import BrokerUnavailableError
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry
from hidesync_events.transports.base import Receipt


class CeleryTransport:
    """Sends each envelope as one ``deliver`` task to ``<queue_prefix>.<category>``.

    ``send`` returns once the broker has the message (Redis: the push returned;
    RabbitMQ: the publisher confirm arrived). The same object serves workers: its
    ``app`` is the Celery app they run and its ``delivery`` the path their task takes.
    """

    def __init__(self, registry: HandlerRegistry, runtime: Runtime) -> None:
        self.delivery = Delivery(registry, runtime)
        self.app = create_app(runtime.settings, self.delivery)
        self._task: Any = self.app.tasks[DELIVER_TASK]
        self._prefix = runtime.settings.queue_prefix

    @property
    def runtime(self) -> Runtime:
        return self.delivery.runtime

    def send(self, envelope: Envelope, *, only: str | None = None) -> Receipt:
        queue = queue_name(envelope.category, self._prefix)
        kwargs = {"handler": only} if only else None
        try:
            self._task.apply_async(args=(envelope.text,), kwargs=kwargs, queue=queue)
        except Exception as error:
            url = maybe_sanitize_url(self.runtime.settings.broker_url)
            raise BrokerUnavailableError(
                f"the broker at {url} did not accept {envelope.event_type} "
                f"{envelope.event_id} for queue {queue}: {error}"
            ) from error

        return Receipt(envelope.event_id, "sent", queue)

    async def send_async(self, envelope: Envelope) -> Receipt:
        # kombu's producers block on the socket: keep them off the caller's loop.
        return await asyncio.to_thread(self.send, envelope)

    async def drain(self, timeout_s: float | None = None) -> int:
        return 0

    def cancel_pending(self) -> int:
        return 0

    def close(self) -> None:
        self.app.close()
