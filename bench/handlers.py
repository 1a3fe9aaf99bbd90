"""Handlers the benchmark's worker processes run.

Each records its effect through :func:`hidesync_events.effects`, so a count above one
for an event is a duplicate effect, and the time from publish to handling.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from hidesync_events import DomainEvent, RetryPolicy, effects, global_event_bus

EFFECTS = "bench:effects"
LATENCY_MS = "bench:latency_ms"
STARTED = "bench:started"
ATTEMPTS = "bench:attempts"

#: Exact delays (no jitter), so observed waits can be set against the policy.
DOOMED_POLICY = RetryPolicy(
    max_attempts=5, backoff_s=0.25, max_backoff_s=2.0, jitter=False
)


class Work(DomainEvent, category="bench"):
    """One unit of work; ``sleep_s`` makes the handler take its time."""

    sequence: int = 0
    sleep_s: float = 0.0


class Doomed(DomainEvent, category="bench"):
    """An event whose handler always fails."""

    sequence: int = 0


@global_event_bus.subscribe
def do_work(event: Work) -> None:
    kv = global_event_bus.runtime.kv
    if event.sleep_s:
        kv.hset(STARTED, {event.event_id: os.getpid()})
        time.sleep(event.sleep_s)

    latency_ms = (datetime.now(UTC) - event.timestamp).total_seconds() * 1000
    effects().hincrby(EFFECTS, event.event_id).hset(
        LATENCY_MS, {event.event_id: round(latency_ms, 3)}
    )


@global_event_bus.subscribe(retry=DOOMED_POLICY)
def always_fail(event: Doomed) -> None:
    global_event_bus.runtime.kv.rpush(f"{ATTEMPTS}:{event.event_id}", time.time())
    raise RuntimeError(f"doomed event {event.sequence} fails every time")
