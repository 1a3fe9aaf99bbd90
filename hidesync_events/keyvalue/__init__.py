"""The small key-value interface that dead letters, completions, metrics and the
reference handlers keep their state behind.

Two implementations: :class:`RedisKeyValue` (Celery mode; every worker of a fleet sees
the same state) and :class:`MemoryKeyValue` (eager mode and tests; one process). The
interface is a subset of Redis commands with the same meaning, so each store is written
once and tested against both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

import redis

Value = str | int | float


class KeyValueBatch(Protocol):
    """Writes queued and applied together, atomically, by :meth:`execute`."""

    def set(self, name: str, value: Value, *, ex_s: int | None = None) -> Self: ...
    def delete(self, *names: str) -> Self: ...
    def expire(self, name: str, seconds: int) -> Self: ...
    def hset(self, name: str, mapping: Mapping[str, Value]) -> Self: ...
    def hdel(self, name: str, *fields: str) -> Self: ...
    def hincrby(self, name: str, field: str, amount: int = 1) -> Self: ...
    def hincrbyfloat(self, name: str, field: str, amount: float) -> Self: ...
    def rpush(self, name: str, *values: Value) -> Self: ...
    def ltrim(self, name: str, start: int, end: int) -> Self: ...
    def zadd(self, name: str, mapping: Mapping[str, float]) -> Self: ...
    def zrem(self, name: str, *members: str) -> Self: ...
    def execute(self) -> list[Any]: ...


@dataclass(frozen=True, eq=False)
class Script:
    """A small atomic operation: Lua run by Redis, and the same logic in Python for
    :class:`MemoryKeyValue` (run under its lock). Both return the same values.

    Redis may run a script twice: a connection that drops after the script ran loses
    its reply, and the call is made again. Write scripts that answer the same then.
    """

    lua: str
    in_memory: Callable[[MemoryKeyValue, list[str], list[Value]], Any]


class KeyValue(Protocol):
    """Reads, single writes, :meth:`batch` for atomic groups, :meth:`run` for scripts."""

    def get(self, name: str) -> str | None: ...
    def set(
        self,
        name: str,
        value: Value,
        *,
        ex_s: int | None = None,
        px_ms: int | None = None,
        nx: bool = False,
    ) -> bool: ...
    def pttl(self, name: str) -> int: ...
    def run(self, script: Script, keys: list[str], args: list[Value]) -> Any: ...
    def delete(self, *names: str) -> int: ...
    def exists(self, name: str) -> bool: ...
    def expire(self, name: str, seconds: int) -> bool: ...
    def hget(self, name: str, field: str) -> str | None: ...
    def hmget(self, name: str, fields: list[str]) -> list[str | None]: ...
    def hgetall(self, name: str) -> dict[str, str]: ...
    def hset(self, name: str, mapping: Mapping[str, Value]) -> None: ...
    def hdel(self, name: str, *fields: str) -> int: ...
    def hincrby(self, name: str, field: str, amount: int = 1) -> int: ...
    def hincrbyfloat(self, name: str, field: str, amount: float) -> float: ...
    def hlen(self, name: str) -> int: ...
    def rpush(self, name: str, *values: Value) -> int: ...
    def lrange(self, name: str, start: int, end: int) -> list[str]: ...
    def llen(self, name: str) -> int: ...
    def zadd(self, name: str, mapping: Mapping[str, float]) -> None: ...
    def zrange(self, name: str, start: int, end: int) -> list[str]: ...
    def zrem(self, name: str, *members: str) -> int: ...
    def zcard(self, name: str) -> int: ...
    def batch(self) -> KeyValueBatch: ...
    def ping(self) -> bool: ...


class RecordedBatch:
    """Writes recorded now and applied later, onto any store's batch.

    A handler's :func:`~hidesync_events.effects` are recorded here while it runs; the
    delivery applies them in the same atomic step as the completion record, together
    with those of the other handlers of the message that succeeded.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def _record(self, command: str, *args: Any, **kwargs: Any) -> Self:
        self.calls.append((command, args, kwargs))
        return self

    def set(self, name: str, value: Value, *, ex_s: int | None = None) -> Self:
        return self._record("set", name, value, ex_s=ex_s)

    def delete(self, *names: str) -> Self:
        return self._record("delete", *names)

    def expire(self, name: str, seconds: int) -> Self:
        return self._record("expire", name, seconds)

    def hset(self, name: str, mapping: Mapping[str, Value]) -> Self:
        return self._record("hset", name, dict(mapping))

    def hdel(self, name: str, *fields: str) -> Self:
        return self._record("hdel", name, *fields)

    def hincrby(self, name: str, field: str, amount: int = 1) -> Self:
        return self._record("hincrby", name, field, amount)

    def hincrbyfloat(self, name: str, field: str, amount: float) -> Self:
        return self._record("hincrbyfloat", name, field, amount)

    def rpush(self, name: str, *values: Value) -> Self:
        return self._record("rpush", name, *values)

    def ltrim(self, name: str, start: int, end: int) -> Self:
        return self._record("ltrim", name, start, end)

    def zadd(self, name: str, mapping: Mapping[str, float]) -> Self:
        return self._record("zadd", name, dict(mapping))

    def zrem(self, name: str, *members: str) -> Self:
        return self._record("zrem", name, *members)

    def execute(self) -> list[Any]:
        raise RuntimeError(
            "a handler's effects are applied when it returns, with the record that it "
            "completed; do not execute them yourself"
        )

    def apply_to(self, batch: KeyValueBatch) -> KeyValueBatch:
        """Queue the recorded writes on ``batch`` (which the caller executes)."""
        for command, args, kwargs in self.calls:
            getattr(batch, command)(*args, **kwargs)
        return batch


#: What a store that cannot be reached raises (Redis down, restarting, cut off).
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
)


def open_keyvalue(url: str) -> KeyValue:
    """Return the store at ``url``: ``memory://`` or a ``redis://`` URL."""
    if url.startswith("memory://"):
        return MemoryKeyValue()

    return RedisKeyValue(redis.Redis.from_url(url, decode_responses=True))


from hidesync_events.keyvalue.in_memory import MemoryKeyValue  # noqa: E402
from hidesync_events.keyvalue.in_redis import RedisKeyValue  # noqa: E402

__all__ = [
    "KeyValue",
    "KeyValueBatch",
    "MemoryKeyValue",
    "RecordedBatch",
    "RedisKeyValue",
    "Script",
    "Value",
]
