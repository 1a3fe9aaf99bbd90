"""The handlers hidesync-events' benchmark workers run: as trivial as the baselines'."""

from __future__ import annotations

import time

from hidesync_events import DomainEvent, global_event_bus

LATENCY_KEY = "bench:latency:hidesync"


class Benchmarked(DomainEvent, category="bench"):
    """An event with a payload string, sized like the baselines' argument."""

    payload: str = ""
    sent_at: float = 0.0


@global_event_bus.subscribe
def nothing(event: Benchmarked) -> None:
    """Does nothing with the event, unless asked to record its latency."""
    if event.sent_at:
        latency_ms = (time.time() - event.sent_at) * 1000
        global_event_bus.runtime.kv.rpush(LATENCY_KEY, round(latency_ms, 3))


class BenchmarkedIdle(DomainEvent, category="bench_idle"):
    """The same event on a queue nobody consumes: publishing measured alone."""

    payload: str = ""
