"""RabbitMQ for the integration suite: the machine's server, a queue prefix of our own.

Tests never touch queues they did not create: every queue name starts with a prefix
made for the session, and those queues are deleted at the end. Dead letters and the
other state stay on the throwaway Redis (RabbitMQ is only the broker).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Exchange, Queue

from hidesync_events.categories import known_categories, queue_name

#: Where the suite looks for RabbitMQ (the default guest account, loopback only).
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmq_reachable(url: str = RABBITMQ_URL) -> str | None:
    """None when a RabbitMQ answers at ``url``; otherwise why not."""
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        return f"no RabbitMQ at {url}: {error}"
    return None


@dataclass
class RabbitMQ:
    url: str = RABBITMQ_URL
    prefix: str = field(default_factory=lambda: f"hidesync.test{uuid.uuid4().hex[:10]}")

    def settings(self, state_url: str) -> dict[str, Any]:
        """``configure()`` arguments for a publisher of this test run."""
        return {
            "mode": "celery",
            "broker_url": self.url,
            "state_url": state_url,
            "queue_prefix": self.prefix,
            "handler_modules": (),
        }

    def worker_env(self, state_url: str) -> dict[str, str]:
        """Environment for a worker of this test run."""
        return {
            "HIDESYNC_EVENTS_STATE_URL": state_url,
            "HIDESYNC_EVENTS_QUEUE_PREFIX": self.prefix,
        }

    def delete_queues(self, *others: str) -> None:
        """Delete every queue this run may have declared, and ``others``, each with the
        exchange of the same name that Celery declares with a queue."""
        names = [queue_name(category, self.prefix) for category in known_categories()]
        with Connection(self.url, connect_timeout=2) as connection:
            channel = connection.default_channel
            # RabbitMQ answers a deletion of what does not exist with success.
            for name in [*names, *others]:
                Queue(name).bind(channel).delete()
                Exchange(name).bind(channel).delete()
