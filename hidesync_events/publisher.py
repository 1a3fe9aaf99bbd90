"""Sending ``deliver`` messages to the broker within a time budget, spooling the rest.

``Publisher.send`` builds the Celery task message (protocol 2, through Celery's own
``app.amqp``) and publishes it on a connection of the calling thread. Every attempt is
bounded by socket timeouts; a failed connection is dropped and a new one tried until the
budget (``publish_timeout_s``, 1 s by default) runs out. Then the message goes to the
:class:`~hidesync_events.spool.Spool` and a relay thread sends it on, in order, once the
broker answers again. While the spool holds messages, new ones queue behind them.

Messages go through the default exchange (``""``), routed by queue name: Redis keeps
no exchange bindings for it, so a Redis that restarted empty still receives every
message (a producer relying on bindings it declared once would lose them silently).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import weakref
from typing import Any, Literal

import redis
from celery import Celery
from celery.utils import uuid
from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import KombuError
from kombu.utils.url import maybe_sanitize_url

from hidesync_events.errors import BrokerUnavailableError, SpoolFullError
from hidesync_events.settings import Settings
from hidesync_events.spool import Spool, Spooled

logger = logging.getLogger("hidesync.events.publisher")

DEFAULT_EXCHANGE = Exchange("")

#: Errors that mean "the broker did not take it"; anything else is a bug to raise.
_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    KombuError,
    OSError,
    socket.timeout,
    redis.RedisError,
)

Sent = Literal["sent", "spooled"]


class Publisher:
    """Publishes deliver-task messages; one per transport, safe for many threads."""

    def __init__(
        self, app: Celery, task_name: str, batch_task_name: str, settings: Settings
    ) -> None:
        self._app = app
        self._task_name = task_name
        self._batch_task_name = batch_task_name
        self._settings = settings
        self._budget_s = settings.publish_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._spool: Spool | None = None
        self._backlog = False
        self._relay: threading.Thread | None = None
        _renew_in_forked_children(self)
        self._resume_spooled()

    def send(
        self,
        queue: str,
        envelope: str,
        *,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
    ) -> Sent:
        """Hand one envelope to the broker, or to the spool when the broker is away."""
        options = {"kwargs": kwargs or {}, "countdown": countdown}
        return self._send(queue, envelope, options)

    def send_many(self, queue: str, envelopes: list[str]) -> Sent:
        """Hand several envelopes to the broker as one batch message."""
        return self._send(
            queue, envelopes, {"kwargs": {}, "countdown": None, "many": True}
        )

    def _send(
        self, queue: str, payload: str | list[str], options: dict[str, Any]
    ) -> Sent:
        with self._lock:
            backlog = self._backlog
        if backlog:
            return self._spool_message(queue, payload, options, reason="messages wait")

        try:
            self._send_within(
                time.monotonic() + self._budget_s, queue, payload, options
            )
        except BrokerUnavailableError as error:
            if not self._settings.spool_enabled:
                raise
            return self._spool_message(queue, payload, options, reason=str(error))
        return "sent"

    @property
    def spooled(self) -> int:
        """How many messages wait in the spool."""
        return len(self._spool) if self._spool is not None else 0

    def after_fork(self) -> None:
        """Start afresh in a forked child (Celery's prefork pool).

        The parent's relay thread does not exist in the child, and a lock it held at
        the moment of the fork would stay held for ever; connections and the spool's
        database handle must not be shared across processes either.
        """
        self._lock = threading.Lock()
        self._local = threading.local()
        self._relay = None
        self._spool = None

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.release()
        self._local.connection = self._local.producer = None

    # -- one message, within a deadline -----------------------------------------------

    def _send_within(
        self,
        deadline: float,
        queue: str,
        payload: str | list[str],
        options: dict[str, Any],
    ) -> None:
        pause_s = 0.05
        while True:
            try:
                self._publish(queue, payload, options)
                return
            except _BROKER_ERRORS as error:
                self._drop_connection()
                if time.monotonic() + pause_s >= deadline:
                    raise BrokerUnavailableError(
                        f"the broker at {self._broker_url()} did not take a message for "
                        f"{queue} within {self._budget_s}s: {error}"
                    ) from error
                logger.debug("publish to %s failed (%s); trying again", queue, error)
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.25)

    def _publish(
        self, queue: str, payload: str | list[str], options: dict[str, Any]
    ) -> None:
        amqp = self._app.amqp
        many = bool(options.get("many"))
        task = self._batch_task_name if many else self._task_name
        message = amqp.create_task_message(
            uuid(),
            task,
            (payload,),
            options["kwargs"],
            countdown=options["countdown"],
            ignore_result=True,
            # Celery copies a repr of the arguments into the headers, for its logs: the
            # envelope a second time. A short label keeps queued messages small.
            argsrepr=f"<{len(payload)} envelopes>" if many else "<envelope>",
        )
        amqp.send_task_message(
            self._producer(),
            task,
            message,
            # Batches of envelopes compress well (the same keys over and over); the
            # worker decompresses by the message's header.
            compression="zlib" if many else None,
            queue=Queue(queue, DEFAULT_EXCHANGE, routing_key=queue),
            exchange=DEFAULT_EXCHANGE,
            routing_key=queue,
            retry=False,
            timeout=self._budget_s,
        )

    def _producer(self) -> Producer:
        producer: Producer | None = getattr(self._local, "producer", None)
        if producer is None:
            timeout_s = self._budget_s / 2
            connection: Connection = self._app.connection_for_write(
                connect_timeout=timeout_s,
                transport_options={
                    "socket_timeout": timeout_s,
                    "socket_connect_timeout": timeout_s,
                    "retry_on_timeout": False,
                    # One connection attempt per try: this class retries, within the
                    # budget; kombu's own retries wait two seconds at first.
                    "max_retries": 0,
                },
            )
            producer = Producer(connection.default_channel, serializer="json")
            self._local.connection, self._local.producer = connection, producer
        return producer

    def _drop_connection(self) -> None:
        # A connection that failed once (idle drop, server restart) is not reused.
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.producer = None
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                logger.debug(
                    "could not release a broken broker connection", exc_info=True
                )

    def _broker_url(self) -> str:
        return str(maybe_sanitize_url(self._settings.broker_url))

    # -- the spool and its relay ------------------------------------------------------

    def _spool_message(
        self,
        queue: str,
        payload: str | list[str],
        options: dict[str, Any],
        *,
        reason: str,
    ) -> Sent:
        if not self._settings.spool_enabled:
            raise SpoolFullError(
                "the publish spool is disabled (HIDESYNC_EVENTS_SPOOL_ENABLED)"
            )

        with self._lock:
            spool = self._open_spool()
            text = payload if isinstance(payload, str) else json.dumps(payload)
            spool.append(queue, text, options)
            if not self._backlog:
                logger.warning("spooling events to %s: %s", spool.path, reason)
            self._backlog = True
            self._start_relay()
        return "spooled"

    def _open_spool(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(
                self._settings.spool_dir, max_events=self._settings.spool_max_events
            )
        return self._spool

    def _resume_spooled(self) -> None:
        # Messages spooled by an earlier run of this program are sent first.
        path = self._settings.spool_dir / "spool.sqlite3"
        if self._settings.spool_enabled and path.exists() and len(self._open_spool()):
            with self._lock:
                self._backlog = True
                self._start_relay()

    def _start_relay(self) -> None:
        if self._relay is None or not self._relay.is_alive():
            self._relay = threading.Thread(
                target=self._relay_loop, name="hidesync-events-relay", daemon=True
            )
            self._relay.start()

    def _relay_loop(self) -> None:
        spool = self._open_spool()
        pause_s = 0.2
        while True:
            with self._lock:
                if not len(spool):
                    self._backlog = False
                    logger.warning("the publish spool is empty again; sending directly")
                    return
            try:
                self._relay_batch(spool)
                pause_s = 0.2
            except BrokerUnavailableError as error:
                logger.debug("relay: broker still unavailable (%s)", error)
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 5.0)

    def _relay_batch(self, spool: Spool) -> None:
        with spool.relaying() as ours:
            if not ours:
                time.sleep(0.2)  # another process is sending the spool on
                return
            for message in spool.oldest(100):
                self._send_spooled(message)
                spool.remove(message.id)

    def _send_spooled(self, message: Spooled) -> None:
        deadline = time.monotonic() + self._budget_s
        many = message.options.get("many")
        payload = json.loads(message.envelope) if many else message.envelope
        self._send_within(deadline, message.queue, payload, message.options)


def _renew_in_forked_children(publisher: Publisher) -> None:
    # A weak reference: registering must not keep every publisher alive.
    reference = weakref.ref(publisher)

    def renew() -> None:
        alive = reference()
        if alive is not None:
            alive.after_fork()

    os.register_at_fork(after_in_child=renew)
