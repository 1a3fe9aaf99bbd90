"""The Redis implementation of :class:`~hidesync_events.keyvalue.KeyValue`."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, Self, cast

import redis
from hiredis import pack_command
from redis.exceptions import NoScriptError

from hidesync_events.keyvalue import KeyValueBatch, Script, Value


class RedisKeyValue:
    """:class:`KeyValue` on a redis-py client created with ``decode_responses=True``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts: dict[Script, str] = {}
        self._lanes = _Lanes(client)

    def get(self, name: str) -> str | None:
        return cast(str | None, self.client.get(name))

    def set(
        self,
        name: str,
        value: Value,
        *,
        ex_s: int | None = None,
        px_ms: int | None = None,
        nx: bool = False,
    ) -> bool:
        return bool(self.client.set(name, value, ex=ex_s, px=px_ms, nx=nx))

    def pttl(self, name: str) -> int:
        return self.client.pttl(name)

    def run(self, script: Script, keys: list[str], args: list[Value]) -> Any:
        """Run ``script`` by its SHA-1, loading it into Redis when Redis lacks it.

        Scripts run on every message (claiming, settling), so they take the short way
        of :class:`_Lanes`. When the lane's connection turns out broken, or Redis
        restarted without the script, the client's own call runs the script again,
        with its retries: the scripts run this way answer the same when run twice. A
        timeout is raised as it is, as the client raises it: the script may still be
        running.
        """
        sha = self._scripts.get(script)
        if sha is None:
            sha = self._scripts[script] = self.client.script_load(script.lua)

        with suppress(redis.ConnectionError, NoScriptError):
            return self._lanes.call("EVALSHA", sha, len(keys), *keys, *args)

        try:
            return self.client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            self.client.script_load(script.lua)
            return self.client.evalsha(sha, len(keys), *keys, *args)

    def delete(self, *names: str) -> int:
        return self.client.delete(*names) if names else 0

    def exists(self, name: str) -> bool:
        return bool(self.client.exists(name))

    def expire(self, name: str, seconds: int) -> bool:
        return bool(self.client.expire(name, seconds))

    def hget(self, name: str, field: str) -> str | None:
        return cast(str | None, self.client.hget(name, field))

    def hmget(self, name: str, fields: list[str]) -> list[str | None]:
        return cast(list[str | None], self.client.hmget(name, fields)) if fields else []

    def hgetall(self, name: str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(name))

    def hset(self, name: str, mapping: Mapping[str, Value]) -> None:
        if mapping:
            self.client.hset(name, mapping=cast(Any, mapping))

    def hdel(self, name: str, *fields: str) -> int:
        return self.client.hdel(name, *fields) if fields else 0

    def hincrby(self, name: str, field: str, amount: int = 1) -> int:
        return self.client.hincrby(name, field, amount)

    def hincrbyfloat(self, name: str, field: str, amount: float) -> float:
        return self.client.hincrbyfloat(name, field, amount)

    def hlen(self, name: str) -> int:
        return self.client.hlen(name)

    def rpush(self, name: str, *values: Value) -> int:
        return self.client.rpush(name, *values)

    def lrange(self, name: str, start: int, end: int) -> list[str]:
        return cast(list[str], self.client.lrange(name, start, end))

    def llen(self, name: str) -> int:
        return self.client.llen(name)

    def zadd(self, name: str, mapping: Mapping[str, float]) -> None:
        if mapping:
            self.client.zadd(name, dict(mapping))

    def zrange(self, name: str, start: int, end: int) -> list[str]:
        return cast(list[str], self.client.zrange(name, start, end))

    def zrem(self, name: str, *members: str) -> int:
        return self.client.zrem(name, *members) if members else 0

    def zcard(self, name: str) -> int:
        return self.client.zcard(name)

    def batch(self) -> KeyValueBatch:
        return _RedisBatch(self.client.pipeline(transaction=True))

    def ping(self) -> bool:
        return bool(self.client.ping())


class _RedisBatch:
    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def set(self, name: str, value: Value, *, ex_s: int | None = None) -> Self:
        self._pipeline.set(name, value, ex=ex_s)
        return self

    def delete(self, *names: str) -> Self:
        self._pipeline.delete(*names)
        return self

    def expire(self, name: str, seconds: int) -> Self:
        self._pipeline.expire(name, seconds)
        return self

    def hset(self, name: str, mapping: Mapping[str, Value]) -> Self:
        self._pipeline.hset(name, mapping=dict(mapping))
        return self

    def hdel(self, name: str, *fields: str) -> Self:
        self._pipeline.hdel(name, *fields)
        return self

    def hincrby(self, name: str, field: str, amount: int = 1) -> Self:
        self._pipeline.hincrby(name, field, amount)
        return self

    def hincrbyfloat(self, name: str, field: str, amount: float) -> Self:
        self._pipeline.hincrbyfloat(name, field, amount)
        return self

    def rpush(self, name: str, *values: Value) -> Self:
        self._pipeline.rpush(name, *values)
        return self

    def ltrim(self, name: str, start: int, end: int) -> Self:
        self._pipeline.ltrim(name, start, end)
        return self

    def zadd(self, name: str, mapping: Mapping[str, float]) -> Self:
        self._pipeline.zadd(name, dict(mapping))
        return self

    def zrem(self, name: str, *members: str) -> Self:
        self._pipeline.zrem(name, *members)
        return self

    def execute(self) -> list[Any]:
        result: list[Any] = self._pipeline.execute()
        return result


class _Lanes:
    """One connection of its own per thread and process, for the calls made on every
    message.

    redis-py's command path takes a pooled connection and gives it back, dispatches
    events for observability and wraps each call in its retry loop: about 25 us of a
    worker's CPU per call, as much as the round trip itself. A lane sends a packed
    command on a connection only its thread uses and reads the reply. Errors are
    redis-py's own; a call that fails or is interrupted drops its connection, and the
    next call connects again. Retrying is left to the caller.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()

    def call(self, *args: Any) -> Any:
        connection = self._connection()
        # Every argument as bytes, as redis-py encodes them: hiredis formats other
        # types itself, and crashes the process when that is interrupted.
        packed = pack_command(tuple(map(connection.encoder.encode, args)))
        try:
            connection.send_packed_command([packed], check_health=False)
            return connection.read_response()
        except redis.ResponseError:
            raise  # an error reply, read whole: the connection is still in step
        except BaseException:
            # Interrupted between sending and reading (a soft time limit, Ctrl-C):
            # its reply would answer the next call. Drop the connection with it.
            connection.disconnect()
            raise

    def _connection(self) -> Any:
        local = self._local
        connection = getattr(local, "connection", None)
        # A forked child never writes to its parent's socket.
        if connection is None or connection.pid != os.getpid():
            pool = self._pool
            connection = pool.connection_class(**pool.connection_kwargs)
            local.connection = connection
        return connection
