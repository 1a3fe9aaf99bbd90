"""Once per (event, handler): claims while a handler runs, a record once it completed.

Delivery is at least once: a message can arrive again after a worker crash, a Redis
visibility timeout or a republish, and two workers can receive copies at the same moment.
Before a handler runs, one atomic step looks its ``(event_id, handler)`` pair up:

* ``DONE``: it completed before; skip it.
* ``CLAIMED``: nobody else holds it; this delivery runs it. The claim expires after the
  handler time limit, so a claim left by a process that died is not held for ever, and
  the redelivery of the very message whose process died takes its claim over at once.
* ``BUSY``: another delivery is running it now; look again when that claim expires.

When the handler succeeds, the completion record is written in the same atomic batch as
the handler's own :func:`~hidesync_events.delivery.effects`, so either both happen or
neither does. Records are kept ``completion_retention_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from enum import StrEnum
from typing import NamedTuple, Protocol

from hidesync_events.event import new_event_id
from hidesync_events.keyvalue import (
    KeyValue,
    KeyValueBatch,
    MemoryKeyValue,
    Script,
    Value,
)


class Claim(StrEnum):
    DONE = "done"
    CLAIMED = "claimed"
    BUSY = "busy"


class ClaimResult(NamedTuple):
    claim: Claim
    #: For BUSY: how long the other delivery's claim still runs.
    busy_for_s: float = 0.0


def _claim_in_memory(
    kv: MemoryKeyValue, keys: list[str], args: list[Value]
) -> list[Value]:
    done, claim = keys
    owner, ttl_ms = str(args[0]), int(args[1])
    if kv.exists(done):
        return ["done", 0]

    if kv.set(claim, owner, px_ms=ttl_ms, nx=True) or kv.get(claim) == owner:
        kv.set(claim, owner, px_ms=ttl_ms)
        return ["claimed", 0]

    return ["busy", kv.pttl(claim)]


_CLAIM = Script(
    lua="""
    if redis.call('EXISTS', KEYS[1]) == 1 then return {'done', 0} end
    if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
        or redis.call('GET', KEYS[2]) == ARGV[1] then
        redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
        return {'claimed', 0}
    end
    return {'busy', redis.call('PTTL', KEYS[2])}
    """,
    in_memory=_claim_in_memory,
)


class Completions(Protocol):
    """Claims and completion records of ``(event_id, handler)`` pairs."""

    def claim(
        self, event_id: str, handler: str, *, owner: str | None, ttl_s: float
    ) -> ClaimResult: ...
    def complete(
        self, event_id: str, handler: str, batch: KeyValueBatch | None
    ) -> None: ...
    def release(self, event_id: str, handler: str) -> None: ...
    def is_done(self, event_id: str, handler: str) -> bool: ...


class CompletionLog:
    """Claims and completion records kept in a key-value store (Redis: the fleet's)."""

    def __init__(self, kv: KeyValue, *, key_prefix: str, retention_s: int) -> None:
        self._kv = kv
        self._prefix = key_prefix
        self._retention_s = retention_s

    def claim(
        self, event_id: str, handler: str, *, owner: str | None, ttl_s: float
    ) -> ClaimResult:
        """Claim the pair for ``owner`` unless it is done or held by another owner.

        ``owner`` None stands for a delivery that can never take a claim over.
        """
        status, busy_ms = self._kv.run(
            _CLAIM,
            [self._done_key(event_id, handler), self._claim_key(event_id, handler)],
            [owner or new_event_id(), max(1, round(ttl_s * 1000))],
        )
        return ClaimResult(Claim(_text(status)), max(0, int(busy_ms)) / 1000)

    def complete(
        self, event_id: str, handler: str, batch: KeyValueBatch | None
    ) -> None:
        """Record completion, and apply ``batch`` (the handler's effects) with it."""
        batch = batch or self._kv.batch()
        batch.set(self._done_key(event_id, handler), "1", ex_s=self._retention_s)
        batch.delete(self._claim_key(event_id, handler))
        batch.execute()

    def release(self, event_id: str, handler: str) -> None:
        """Give a claim up after a failure, so a retry can take it."""
        self._kv.delete(self._claim_key(event_id, handler))

    def is_done(self, event_id: str, handler: str) -> bool:
        """Whether ``handler`` completed the event ``event_id``."""
        return self._kv.exists(self._done_key(event_id, handler))

    def _done_key(self, event_id: str, handler: str) -> str:
        return f"{self._prefix}:done:{event_id}:{handler}"

    def _claim_key(self, event_id: str, handler: str) -> str:
        return f"{self._prefix}:claim:{event_id}:{handler}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MemoryCompletionLog:
    """Claims and completion records in this process's memory (eager mode).

    The same answers as :class:`CompletionLog`, with plain dictionaries: eager mode
    asks for every handler of every event, and a script run per question would cost
    more than the handler. A process holds its own claims, so none is ever left by
    a process that died, and ``owner`` plays no part.
    """

    def __init__(self, *, retention_s: int) -> None:
        self._lock = threading.Lock()
        self._retention_s = retention_s
        self._done: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self._claimed: set[tuple[str, str]] = set()

    def claim(
        self, event_id: str, handler: str, *, owner: str | None, ttl_s: float
    ) -> ClaimResult:
        with self._lock:
            done = self._done.get(event_id)
            if done is not None and handler in done[1]:
                return ClaimResult(Claim.DONE)

            pair = (event_id, handler)
            if pair in self._claimed:
                return ClaimResult(Claim.BUSY, ttl_s)

            self._claimed.add(pair)
            return ClaimResult(Claim.CLAIMED)

    def complete(
        self, event_id: str, handler: str, batch: KeyValueBatch | None
    ) -> None:
        if batch is not None:
            batch.execute()

        now = time.monotonic()
        with self._lock:
            self._claimed.discard((event_id, handler))
            done = self._done.get(event_id)
            if done is None:
                self._done[event_id] = (now, {handler})
                self._forget_older_than(now - self._retention_s)
            else:
                done[1].add(handler)

    def release(self, event_id: str, handler: str) -> None:
        with self._lock:
            self._claimed.discard((event_id, handler))

    def is_done(self, event_id: str, handler: str) -> bool:
        with self._lock:
            done = self._done.get(event_id)
            return done is not None and handler in done[1]

    def _forget_older_than(self, horizon: float) -> None:
        # Events are kept in the order they first completed: the oldest come first.
        while self._done:
            first = next(iter(self._done.values()))
            if first[0] >= horizon:
                return
            self._done.popitem(last=False)
