"""The handlers hidesync-events' benchmark workers run: as trivial as the baselines'."""

from __future__ import annotations

import time

from hidesync_events import DomainEvent, global_event_bus

LATENCY_KEY = "bench:latency:hidesync"


class BenchmarkPayload(DomainEvent, category="bench", abstract=True):
    """A payload string, sized like the baselines' argument, and a send time."""

    payload: str = ""
    sent_at: float = 0.0


class Benchmarked(BenchmarkPayload):
    """Handled once per event: a claim and a completion record per message."""


class BenchmarkedIdempotent(BenchmarkPayload):
    """Handled by a handler declared idempotent: no claim, no record."""


@global_event_bus.subscribe
def nothing(event: Benchmarked) -> None:
    """Does nothing with the event, unless asked to record its latency."""
    _record_latency(event)


@global_event_bus.subscribe(idempotent=True)
def nothing_idempotent(event: BenchmarkedIdempotent) -> None:
    """The same, declared idempotent."""
    _record_latency(event)


def _record_latency(event: BenchmarkPayload) -> None:
    if event.sent_at:
        latency_ms = (time.time() - event.sent_at) * 1000
        global_event_bus.runtime.kv.rpush(LATENCY_KEY, round(latency_ms, 3))


class BenchmarkedIdle(DomainEvent, category="bench_idle"):
    """The same event on a queue nobody consumes: publishing measured alone."""

    payload: str = ""
