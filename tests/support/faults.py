"""Events and handlers for the fault tests: effects that must happen once, a slow
handler to kill in the middle, and a handler that kills its own process.

Handlers record in the bus's store (the test's Redis, in Celery mode); effects go
through :func:`hidesync_events.effects`, applied once per event with the completion
record.
"""

from __future__ import annotations

import os
import signal
import time

from hidesync_events import DomainEvent, effects, global_event_bus

EFFECTS = "faults:effects"
RUNS = "faults:runs"
STARTED = "faults:started"
ORDER = "faults:order"


class Tally(DomainEvent, category="faults"):
    token: str = ""
    sequence: int = 0
    sleep_s: float = 0.0


class Crash(DomainEvent, category="faults"):
    token: str = ""


def _kv():  # type: ignore[no-untyped-def]
    return global_event_bus.runtime.kv


@global_event_bus.subscribe
def count_fast(event: Tally) -> None:
    """Counts the event once, and the order events arrived in."""
    _kv().hincrby(RUNS, f"fast:{event.token}")
    effects().hincrby(EFFECTS, f"fast:{event.token}").rpush(
        f"{ORDER}:{event.token}", event.sequence
    )


@global_event_bus.subscribe
def count_slow(event: Tally) -> None:
    """Says it started (with its process id), takes its time, then counts once."""
    _kv().hincrby(RUNS, f"slow:{event.token}")
    _kv().hset(STARTED, {event.token: os.getpid()})
    time.sleep(event.sleep_s)
    effects().hincrby(EFFECTS, f"slow:{event.token}")


@global_event_bus.subscribe
def crash(event: Crash) -> None:
    """Kills the process running it, every time: a message no worker survives."""
    _kv().hincrby(RUNS, f"crash:{event.token}")
    os.kill(os.getpid(), signal.SIGKILL)


def effect(kind: str, token: str) -> int:
    return int(_kv().hget(EFFECTS, f"{kind}:{token}") or 0)


def runs(kind: str, token: str) -> int:
    return int(_kv().hget(RUNS, f"{kind}:{token}") or 0)


def started_pid(token: str) -> int | None:
    pid = _kv().hget(STARTED, token)
    return int(pid) if pid else None


def order(token: str) -> list[int]:
    return [int(n) for n in _kv().lrange(f"{ORDER}:{token}", 0, -1)]
