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

from enum import StrEnum
from typing import NamedTuple

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


class CompletionLog:
    """Claims and completion records of ``(event_id, handler)`` pairs."""

    def __init__(self, kv: KeyValue, *, key_prefix: str, retention_s: int) -> None:
        self._kv = kv
        self._prefix = key_prefix
        self._retention_s = retention_s

    def claim(
        self, event_id: str, handler: str, *, owner: str, ttl_s: float
    ) -> ClaimResult:
        """Claim the pair for ``owner`` unless it is done or held by another owner."""
        status, busy_ms = self._kv.run(
            _CLAIM,
            [self._done_key(event_id, handler), self._claim_key(event_id, handler)],
            [owner, max(1, round(ttl_s * 1000))],
        )
        return ClaimResult(Claim(_text(status)), max(0, int(busy_ms)) / 1000)

    def complete(self, event_id: str, handler: str, batch: KeyValueBatch) -> None:
        """Record completion, and apply ``batch`` (the handler's effects) with it."""
        batch.set(self._done_key(event_id, handler), "1", ex_s=self._retention_s)
        batch.delete(self._claim_key(event_id, handler))
        batch.execute()

    def release(self, event_id: str, handler: str) -> None:
        """Give a claim up after a failure, so a retry can take it."""
        self._kv.delete(self._claim_key(event_id, handler))

    def is_done(self, event_id: str, handler: str) -> bool:
        """Whether ``handler`` completed the event ``event_id``."""
        return self._kv.exists(self._done_key(event_id, handler))

    def batch(self) -> KeyValueBatch:
        return self._kv.batch()

    def _done_key(self, event_id: str, handler: str) -> str:
        return f"{self._prefix}:done:{event_id}:{handler}"

    def _claim_key(self, event_id: str, handler: str) -> str:
        return f"{self._prefix}:claim:{event_id}:{handler}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
