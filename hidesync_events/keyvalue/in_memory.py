"""The in-memory implementation of :class:`~hidesync_events.keyvalue.KeyValue`."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from hidesync_events.keyvalue import KeyValueBatch, RecordedBatch, Script, Value


class MemoryKeyValue:
    """:class:`KeyValue` in one process's memory, with Redis's semantics for each command.

    Values are kept as text, as Redis returns them with ``decode_responses=True``.
    Expired keys are dropped when read and in a sweep every few thousand writes.
    """

    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._writes = 0

    # plain keys

    def get(self, name: str) -> str | None:
        with self._lock:
            value = self._live(name)
            return value if isinstance(value, str) else None

    def set(
        self,
        name: str,
        value: Value,
        *,
        ex_s: int | None = None,
        px_ms: int | None = None,
        nx: bool = False,
    ) -> bool:
        with self._lock:
            if nx and self._live(name) is not None:
                return False

            self._write(name, str(value))
            if ex_s is not None:
                self._expires[name] = time.monotonic() + ex_s
            elif px_ms is not None:
                self._expires[name] = time.monotonic() + px_ms / 1000
            return True

    def pttl(self, name: str) -> int:
        with self._lock:
            if self._live(name) is None:
                return -2
            deadline = self._expires.get(name)
            if deadline is None:
                return -1
            return max(0, round((deadline - time.monotonic()) * 1000))

    def run(self, script: Script, keys: list[str], args: list[Value]) -> Any:
        with self._lock:
            return script.in_memory(self, keys, args)

    def delete(self, *names: str) -> int:
        with self._lock:
            removed = 0
            for name in names:
                removed += self._live(name) is not None
                self._data.pop(name, None)
                self._expires.pop(name, None)
            return removed

    def exists(self, name: str) -> bool:
        with self._lock:
            return self._live(name) is not None

    def expire(self, name: str, seconds: int) -> bool:
        with self._lock:
            if self._live(name) is None:
                return False

            self._expires[name] = time.monotonic() + seconds
            return True

    # hashes

    def hget(self, name: str, field: str) -> str | None:
        with self._lock:
            result: str | None = self._live(name, {}).get(field)
            return result

    def hmget(self, name: str, fields: list[str]) -> list[str | None]:
        with self._lock:
            found = self._live(name, {})
            return [found.get(field) for field in fields]

    def hgetall(self, name: str) -> dict[str, str]:
        with self._lock:
            return dict(self._live(name, {}))

    def hset(self, name: str, mapping: Mapping[str, Value]) -> None:
        if not mapping:
            return  # Redis never keeps an empty hash

        with self._lock:
            found = self._container(name, dict)
            found.update((key, str(value)) for key, value in mapping.items())

    def hdel(self, name: str, *fields: str) -> int:
        with self._lock:
            found = self._live(name, {})
            removed = sum(found.pop(field, None) is not None for field in fields)
            self._drop_if_empty(name)
            return removed

    def hincrby(self, name: str, field: str, amount: int = 1) -> int:
        with self._lock:
            found = self._container(name, dict)
            value = int(found.get(field, 0)) + amount
            found[field] = str(value)
            return value

    def hincrbyfloat(self, name: str, field: str, amount: float) -> float:
        with self._lock:
            found = self._container(name, dict)
            value = float(found.get(field, 0)) + amount
            found[field] = repr(value)
            return value

    def hlen(self, name: str) -> int:
        with self._lock:
            return len(self._live(name, {}))

    # lists

    def rpush(self, name: str, *values: Value) -> int:
        with self._lock:
            found = self._container(name, list)
            found.extend(str(value) for value in values)
            return len(found)

    def ltrim(self, name: str, start: int, end: int) -> bool:
        with self._lock:
            found = self._live(name, [])
            found[:] = found[_slice(start, end, len(found))]
            self._drop_if_empty(name)
            return True

    def lrange(self, name: str, start: int, end: int) -> list[str]:
        with self._lock:
            found = self._live(name, [])
            return list(found[_slice(start, end, len(found))])

    def llen(self, name: str) -> int:
        with self._lock:
            return len(self._live(name, []))

    # sorted sets

    def zadd(self, name: str, mapping: Mapping[str, float]) -> None:
        if not mapping:
            return

        with self._lock:
            self._container(name, dict).update(mapping)

    def zrange(self, name: str, start: int, end: int) -> list[str]:
        with self._lock:
            found = self._live(name, {})
            ordered = sorted(found, key=lambda member: (found[member], member))
            return ordered[_slice(start, end, len(ordered))]

    def zrem(self, name: str, *members: str) -> int:
        with self._lock:
            found = self._live(name, {})
            removed = sum(found.pop(member, None) is not None for member in members)
            self._drop_if_empty(name)
            return removed

    def zcard(self, name: str) -> int:
        with self._lock:
            return len(self._live(name, {}))

    def batch(self) -> KeyValueBatch:
        return _MemoryBatch(self)

    def ping(self) -> bool:
        return True

    # internals

    def _live(self, name: str, default: Any = None) -> Any:
        deadline = self._expires.get(name)
        if deadline is not None and deadline <= time.monotonic():
            self._data.pop(name, None)
            del self._expires[name]
        return self._data.get(name, default)

    def _container(self, name: str, kind: type) -> Any:
        found = self._live(name)
        if found is None:
            found = kind()
            self._write(name, found)
        elif not isinstance(found, kind):
            raise TypeError(
                f"key {name!r} holds a {type(found).__name__}, not a {kind}"
            )
        return found

    def _write(self, name: str, value: Any) -> None:
        self._data[name] = value
        self._expires.pop(name, None)
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            self._sweep()

    def _drop_if_empty(self, name: str) -> None:
        if name in self._data and not self._data[name]:
            del self._data[name]
            self._expires.pop(name, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for name in [
            name for name, deadline in self._expires.items() if deadline <= now
        ]:
            self._data.pop(name, None)
            del self._expires[name]


def _slice(start: int, end: int, length: int) -> slice:
    # Redis ranges are inclusive at both ends and accept negative indexes.
    if start < 0:
        start = max(0, length + start)
    if end < 0:
        end = length + end
    if end < 0:
        return slice(0, 0)  # the range ends before the first element
    return slice(start, end + 1)


class _MemoryBatch(RecordedBatch):
    """Recorded writes that :meth:`execute` applies under the store's lock."""

    def __init__(self, store: MemoryKeyValue) -> None:
        super().__init__()
        self._store = store

    def execute(self) -> list[Any]:
        calls, self.calls = self.calls, []
        with self._store._lock:
            return [getattr(self._store, cmd)(*args, **kw) for cmd, args, kw in calls]
