"""One way to drive the conformance suite in either mode."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hidesync_events import DeadLetter, DomainEvent, Receipt, global_event_bus
from tests.support import conformance

T = TypeVar("T")


@dataclass
class Harness:
    """Publishes on the global bus and waits for what handlers record.

    In eager mode everything has happened when ``publish`` returns; in Celery mode the
    waits poll the Redis the workers write to, up to ``timeout_s``.
    """

    mode: str
    timeout_s: float = 30.0

    @staticmethod
    def token() -> str:
        return uuid.uuid4().hex

    def publish(self, event: DomainEvent) -> Receipt:
        return global_event_bus.publish(event)

    def records(self, handler: str, token: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``handler`` recorded at least ``count`` lines for ``token``."""
        return self.wait(
            lambda: conformance.records(handler, token),
            lambda found: len(found) >= count,
            f"{handler} to record {count} lines for {token}",
        )

    def dead_letters(self, event_id: str, count: int = 1) -> list[DeadLetter]:
        """Wait until ``count`` dead letters exist for ``event_id``."""
        return self.wait(
            lambda: [
                d
                for d in global_event_bus.dead_letters.list()
                if d.event_id == event_id
            ],
            lambda found: len(found) >= count,
            f"{count} dead letters for {event_id}",
        )

    def wait(self, read: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
        deadline = time.monotonic() + (0 if self.mode == "eager" else self.timeout_s)
        while True:
            value = read()
            if done(value) or time.monotonic() >= deadline:
                assert done(value), f"waited for {what}; found {value!r}"
                return value
            time.sleep(0.02)
