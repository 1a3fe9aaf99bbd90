"""The key-value contract and the stores written once on top of it.

Every test runs twice: on :class:`MemoryKeyValue` (eager mode) and on
:class:`RedisKeyValue` over fakeredis (Celery mode's code path, without a server).
Expiry is tested by moving a fake clock forward, never by sleeping.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
import redis

from hidesync_events import DeadLetter, DeadLetterStore
from hidesync_events.completions import (
    Claim,
    ClaimResult,
    CompletionLog,
    MemoryCompletionLog,
    Settlement,
)
from hidesync_events.keyvalue import (
    KeyValue,
    MemoryKeyValue,
    RecordedBatch,
    RedisKeyValue,
    Script,
    Value,
)
from hidesync_events.metrics import Metrics, bucket_upper_s, duration_bucket
from hidesync_events.redis_server import ThrowawayRedis

PREFIX = "test:stores"


class Clock:
    """Moves ``time.monotonic`` (memory expiry) and ``time.time`` (fakeredis expiry)
    forward together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset_s = 0.0
        real_monotonic, real_time = time.monotonic, time.time
        monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + self.offset_s)
        monkeypatch.setattr(time, "time", lambda: real_time() + self.offset_s)

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


@pytest.fixture(params=["memory", "fakeredis"])
def kv(request: pytest.FixtureRequest) -> Iterator[KeyValue]:
    """An empty store of each kind."""
    if request.param == "memory":
        yield MemoryKeyValue()
        return

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield RedisKeyValue(client)
    client.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def scripted_kv(kv: KeyValue) -> KeyValue:
    """The store, for tests that run scripts: fakeredis runs Lua only with lupa."""
    if isinstance(kv, RedisKeyValue) and importlib.util.find_spec("lupa") is None:
        pytest.skip("fakeredis runs Lua scripts only with lupa: install fakeredis[lua]")
    return kv


# -- the KeyValue contract ---------------------------------------------------------------


class TestPlainKeys:
    def test_get_returns_what_set_stored_as_text(self, kv: KeyValue) -> None:
        """set stores a value that get returns as text; a missing key gives None."""
        kv.set("hide", 42)

        assert "42" == kv.get("hide")
        assert kv.get("missing") is None

    def test_set_replaces_a_value(self, kv: KeyValue) -> None:
        """A plain set overwrites the previous value and returns True."""
        kv.set("hide", "calf")

        assert kv.set("hide", "goat") is True
        assert "goat" == kv.get("hide")

    def test_set_nx_only_creates(self, kv: KeyValue) -> None:
        """set(nx=True) writes only when the key is absent, and says whether it did."""
        assert kv.set("hide", "calf", nx=True) is True
        assert kv.set("hide", "goat", nx=True) is False
        assert "calf" == kv.get("hide")

    def test_set_ex_expires_the_key(self, kv: KeyValue, clock: Clock) -> None:
        """A key set with ex_s disappears once that many seconds have passed."""
        kv.set("hide", "calf", ex_s=1)

        assert kv.exists("hide") is True
        clock.advance(1.5)

        assert kv.exists("hide") is False
        assert kv.get("hide") is None

    def test_set_nx_succeeds_once_the_old_key_expired(
        self, kv: KeyValue, clock: Clock
    ) -> None:
        """An expired key no longer blocks set(nx=True)."""
        kv.set("lock", "first", ex_s=1)
        clock.advance(1.5)

        assert kv.set("lock", "second", nx=True) is True
        assert "second" == kv.get("lock")

    def test_set_px_expires_in_milliseconds(self, kv: KeyValue, clock: Clock) -> None:
        """A key set with px_ms disappears once that many milliseconds have passed."""
        kv.set("claim", "owner", px_ms=1500)

        clock.advance(1.0)
        assert kv.exists("claim") is True
        clock.advance(1.0)

        assert kv.exists("claim") is False

    def test_pttl_reports_the_remaining_lifetime(
        self, kv: KeyValue, clock: Clock
    ) -> None:
        """pttl gives the milliseconds left, -1 without expiry, -2 for no key."""
        kv.set("claim", "owner", ex_s=10)
        kv.set("forever", "x")
        clock.advance(4)

        assert 5_000 < kv.pttl("claim") <= 6_000
        assert -1 == kv.pttl("forever")
        assert -2 == kv.pttl("missing")

    def test_plain_set_clears_an_expiry(self, kv: KeyValue, clock: Clock) -> None:
        """Setting a key again without ex_s makes it permanent, as in Redis."""
        kv.set("hide", "calf", ex_s=1)
        kv.set("hide", "goat")
        clock.advance(5)

        assert "goat" == kv.get("hide")

    def test_delete_counts_removed_keys(self, kv: KeyValue) -> None:
        """delete removes the named keys and returns how many existed."""
        kv.set("a", 1)
        kv.hset("b", {"f": 1})

        assert 2 == kv.delete("a", "b", "missing")
        assert kv.exists("a") is False
        assert kv.exists("b") is False
        assert 0 == kv.delete()

    def test_expire_sets_a_lifetime(self, kv: KeyValue, clock: Clock) -> None:
        """expire gives an existing key a lifetime and returns True."""
        kv.hset("session", {"user": 7})

        assert kv.expire("session", 10) is True
        clock.advance(9)
        assert kv.exists("session") is True
        clock.advance(2)

        assert kv.exists("session") is False

    def test_expire_on_a_missing_key_returns_false(self, kv: KeyValue) -> None:
        """expire on a key that does not exist returns False and creates nothing."""
        assert kv.expire("missing", 10) is False
        assert kv.exists("missing") is False

    def test_ping(self, kv: KeyValue) -> None:
        """ping answers True."""
        assert kv.ping() is True


class TestHashes:
    def test_hset_and_hget(self, kv: KeyValue) -> None:
        """hset stores fields as text; hget reads one, None when missing."""
        kv.hset("tool", {"name": "edge beveler", "size": 2})

        assert "edge beveler" == kv.hget("tool", "name")
        assert "2" == kv.hget("tool", "size")
        assert kv.hget("tool", "missing") is None
        assert kv.hget("missing", "name") is None

    def test_hset_updates_fields(self, kv: KeyValue) -> None:
        """hset adds and overwrites fields, leaving the others."""
        kv.hset("tool", {"name": "awl", "size": 1})
        kv.hset("tool", {"size": 3, "owner": "mia"})

        assert {"name": "awl", "size": "3", "owner": "mia"} == kv.hgetall("tool")

    def test_hset_with_no_fields_creates_no_key(self, kv: KeyValue) -> None:
        """hset with an empty mapping changes nothing: the key does not appear."""
        kv.hset("tool", {})

        assert kv.exists("tool") is False

    def test_hmget_keeps_order_and_gaps(self, kv: KeyValue) -> None:
        """hmget returns values in the order asked, None for missing fields."""
        kv.hset("tool", {"a": "1", "c": "3"})

        assert ["3", None, "1"] == kv.hmget("tool", ["c", "b", "a"])
        assert [None] == kv.hmget("missing", ["a"])
        assert [] == kv.hmget("tool", [])

    def test_hgetall_of_a_missing_key_is_empty(self, kv: KeyValue) -> None:
        """hgetall of a missing key returns an empty dict."""
        assert {} == kv.hgetall("missing")

    def test_hdel_counts_and_drops_an_empty_hash(self, kv: KeyValue) -> None:
        """hdel returns how many fields existed; removing the last removes the key."""
        kv.hset("tool", {"a": "1", "b": "2"})

        assert 1 == kv.hdel("tool", "a", "missing")
        assert 1 == kv.hlen("tool")
        assert 1 == kv.hdel("tool", "b")
        assert kv.exists("tool") is False

    def test_hincrby_counts_from_zero(self, kv: KeyValue) -> None:
        """hincrby starts a missing field at 0 and returns the new value."""
        assert 1 == kv.hincrby("counts", "cuts")
        assert 6 == kv.hincrby("counts", "cuts", 5)
        assert -4 == kv.hincrby("counts", "cuts", -10)
        assert "-4" == kv.hget("counts", "cuts")

    def test_hincrbyfloat_adds_fractions(self, kv: KeyValue) -> None:
        """hincrbyfloat adds a float and returns the new value."""
        assert 1.5 == kv.hincrbyfloat("hours", "stitching", 1.5)
        assert 3.75 == kv.hincrbyfloat("hours", "stitching", 2.25)
        assert 3.75 == float(kv.hget("hours", "stitching") or "nan")

    def test_hlen_counts_fields(self, kv: KeyValue) -> None:
        """hlen returns the number of fields, 0 for a missing key."""
        kv.hset("tool", {"a": "1", "b": "2", "c": "3"})

        assert 3 == kv.hlen("tool")
        assert 0 == kv.hlen("missing")


class TestLists:
    @pytest.fixture
    def steps(self, kv: KeyValue) -> KeyValue:
        """A list "steps" holding a, b, c, d, e."""
        kv.rpush("steps", "a", "b", "c", "d", "e")
        return kv

    def test_rpush_appends_and_returns_the_length(self, kv: KeyValue) -> None:
        """rpush appends values in order and returns the new length."""
        assert 2 == kv.rpush("steps", "cut", "skive")
        assert 3 == kv.rpush("steps", 7)

        assert ["cut", "skive", "7"] == kv.lrange("steps", 0, -1)
        assert 3 == kv.llen("steps")

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (0, -1, ["a", "b", "c", "d", "e"]),
            (1, 2, ["b", "c"]),
            (-2, -1, ["d", "e"]),
            (-100, 1, ["a", "b"]),
            (3, 100, ["d", "e"]),
            (3, 1, []),
            (10, 20, []),
            (0, -6, []),
            (0, -9, []),
        ],
    )
    def test_lrange_is_inclusive_with_negative_indexes(
        self, steps: KeyValue, start: int, end: int, expected: list[str]
    ) -> None:
        """lrange reads an inclusive range; negative indexes count from the end and
        out-of-range ends are clipped, as in Redis."""
        assert expected == steps.lrange("steps", start, end)

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (-3, -1, ["c", "d", "e"]),
            (0, -2, ["a", "b", "c", "d"]),
            (1, 1, ["b"]),
            (-100, -4, ["a", "b"]),
        ],
    )
    def test_ltrim_keeps_an_inclusive_range(
        self, steps: KeyValue, start: int, end: int, expected: list[str]
    ) -> None:
        """ltrim (in a batch) keeps just the inclusive range, negative indexes
        counting from the end."""
        steps.batch().ltrim("steps", start, end).execute()

        assert expected == steps.lrange("steps", 0, -1)

    @pytest.mark.parametrize(("start", "end"), [(3, 1), (0, -6), (0, -9)])
    def test_ltrim_to_an_empty_range_removes_the_list(
        self, steps: KeyValue, start: int, end: int
    ) -> None:
        """ltrim to an empty range removes the key, as in Redis."""
        steps.batch().ltrim("steps", start, end).execute()

        assert [] == steps.lrange("steps", 0, -1)
        assert steps.exists("steps") is False

    def test_missing_list_is_empty(self, kv: KeyValue) -> None:
        """A missing list reads as empty with length 0."""
        assert [] == kv.lrange("missing", 0, -1)
        assert 0 == kv.llen("missing")


class TestSortedSets:
    def test_zrange_orders_by_score_then_member(self, kv: KeyValue) -> None:
        """zrange returns members by ascending score, ties by member."""
        kv.zadd("queue", {"strap": 3.0, "wallet": 1.0, "belt": 2.0, "apron": 2.0})

        assert ["wallet", "apron", "belt", "strap"] == kv.zrange("queue", 0, -1)
        assert ["wallet", "apron"] == kv.zrange("queue", 0, 1)
        assert ["strap"] == kv.zrange("queue", -1, -1)

    def test_zadd_updates_a_score(self, kv: KeyValue) -> None:
        """zadd with an existing member moves it to its new score."""
        kv.zadd("queue", {"a": 1.0, "b": 2.0})
        kv.zadd("queue", {"a": 3.0})

        assert ["b", "a"] == kv.zrange("queue", 0, -1)
        assert 2 == kv.zcard("queue")

    def test_zadd_with_no_members_creates_no_key(self, kv: KeyValue) -> None:
        """zadd with an empty mapping changes nothing: the key does not appear."""
        kv.zadd("queue", {})

        assert kv.exists("queue") is False

    def test_zrem_counts_and_drops_an_empty_set(self, kv: KeyValue) -> None:
        """zrem returns how many members existed; removing the last removes the key."""
        kv.zadd("queue", {"a": 1.0, "b": 2.0})

        assert 1 == kv.zrem("queue", "a", "missing")
        assert ["b"] == kv.zrange("queue", 0, -1)
        assert 1 == kv.zrem("queue", "b")
        assert kv.exists("queue") is False
        assert 0 == kv.zcard("queue")


def _take_once_in_memory(
    kv: MemoryKeyValue, keys: list[str], args: list[Value]
) -> list[Value]:
    current = kv.get(keys[0])
    if current is not None:
        return ["taken", current]

    kv.set(keys[0], args[0])
    return ["mine", str(args[0])]


#: Sets a key unless it is set; says who holds it. The same logic in Lua and Python.
TAKE_ONCE = Script(
    lua="""
    local current = redis.call('GET', KEYS[1])
    if current then return {'taken', current} end
    redis.call('SET', KEYS[1], ARGV[1])
    return {'mine', ARGV[1]}
    """,
    in_memory=_take_once_in_memory,
)


class TestScripts:
    def test_run_gives_the_same_answers_on_each_store(
        self, scripted_kv: KeyValue
    ) -> None:
        """A script runs atomically with the same results in Lua and in memory."""
        first = scripted_kv.run(TAKE_ONCE, ["bench"], ["mia"])
        second = scripted_kv.run(TAKE_ONCE, ["bench"], ["noah"])

        assert ["mine", "mia"] == first
        assert ["taken", "mia"] == second
        assert "mia" == scripted_kv.get("bench")


def _echo_in_memory(kv: MemoryKeyValue, keys: list[str], args: list[Value]) -> Value:
    return args[0]


#: Answers its argument: a reply read by the wrong caller shows.
ECHO = Script(lua="return ARGV[1]", in_memory=_echo_in_memory)


def _slow_count_in_memory(
    kv: MemoryKeyValue, keys: list[str], args: list[Value]
) -> int:
    kv.hincrby(keys[0], "runs")
    return 1


#: Counts its runs, then keeps Redis busy for 0.3 s.
SLOW_COUNT = Script(
    lua="""
    redis.call('HINCRBY', KEYS[1], 'runs', 1)
    local started = redis.call('TIME')
    while true do
        local now = redis.call('TIME')
        if (now[1] - started[1]) * 1000000 + (now[2] - started[2]) > 300000 then
            return 1
        end
    end
    """,
    in_memory=_slow_count_in_memory,
)


class TestScriptsOnRedis:
    """Scripts go over a connection of the calling thread's own (see ``_Lanes``):
    on a real server, what breaks connections and what shares them."""

    @pytest.fixture
    def redis_kv(self, fresh_redis: ThrowawayRedis) -> RedisKeyValue:
        return RedisKeyValue(fresh_redis.client())

    def test_a_script_redis_forgot_is_loaded_again(
        self, redis_kv: RedisKeyValue, fresh_redis: ThrowawayRedis
    ) -> None:
        """SCRIPT FLUSH (or a failover) empties Redis's script cache: the next run
        loads the script again rather than fail."""
        assert "mia" == redis_kv.run(ECHO, [], ["mia"])

        fresh_redis.client().script_flush()

        assert "noah" == redis_kv.run(ECHO, [], ["noah"])

    def test_a_script_runs_after_redis_restarted(
        self, redis_kv: RedisKeyValue, fresh_redis: ThrowawayRedis
    ) -> None:
        """A restart drops the connection and the script: both come back."""
        assert "mia" == redis_kv.run(ECHO, [], ["mia"])

        fresh_redis.restart()

        assert "noah" == redis_kv.run(ECHO, [], ["noah"])
        assert "ava" == redis_kv.run(ECHO, [], ["ava"])

    def test_an_interrupted_call_leaves_no_reply_for_the_next(
        self, redis_kv: RedisKeyValue, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A call interrupted after sending (Celery's soft time limit, Ctrl-C) must
        not leave its reply to be read as the answer to the next call."""
        assert "warm" == redis_kv.run(ECHO, [], ["warm"])  # connected, script loaded
        read_response = redis.connection.AbstractConnection.read_response
        interrupts = iter([True])

        def interrupted(connection: Any, *args: Any, **kwargs: Any) -> Any:
            if next(interrupts, False):
                raise KeyboardInterrupt
            return read_response(connection, *args, **kwargs)

        monkeypatch.setattr(
            redis.connection.AbstractConnection, "read_response", interrupted
        )
        with pytest.raises(KeyboardInterrupt):
            redis_kv.run(ECHO, [], ["mia"])

        assert ["noah", "ava"] == [
            redis_kv.run(ECHO, [], ["noah"]),
            redis_kv.run(ECHO, [], ["ava"]),
        ]

    def test_an_argument_redis_cannot_take_raises(
        self, redis_kv: RedisKeyValue
    ) -> None:
        """An argument that cannot be written (an int too long for text) raises in
        the caller, as redis-py does; it does not bring the process down."""
        read, write = os.pipe()

        pid = os.fork()
        if pid == 0:  # the child reports what happened, then leaves
            try:
                redis_kv.run(ECHO, [], [10**5000])
            except ValueError:
                os.write(write, redis_kv.run(ECHO, [], ["raised"]).encode())
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        reported = os.read(read, 16).decode()
        os.close(read)

        assert (0, "raised") == (status, reported)

    def test_a_timeout_is_raised_without_running_the_script_again(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """A script that outlasts the socket timeout may still be running: it is
        not sent a second time, as the client would not either."""
        redis_kv = RedisKeyValue(
            redis.Redis(port=fresh_redis.port, socket_timeout=0.05)
        )

        with pytest.raises(redis.TimeoutError):
            redis_kv.run(SLOW_COUNT, ["script"], [])
        time.sleep(0.4)  # let the script finish

        assert "1" == fresh_redis.client().hget("script", "runs")

    def test_threads_read_their_own_replies(self, redis_kv: RedisKeyValue) -> None:
        """Threads running scripts at once each get the answers to their calls."""
        wrong: list[str] = []

        def echo(thread: int) -> None:
            for call in range(300):
                sent = f"{thread}:{call}"
                answer = redis_kv.run(ECHO, [], [sent])
                if answer != sent:
                    wrong.append(f"sent {sent}, got {answer}")

        threads = [threading.Thread(target=echo, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == wrong

    def test_a_forked_child_connects_on_its_own(self, redis_kv: RedisKeyValue) -> None:
        """A prefork worker process inherits its parent's connection: parent and
        child running scripts at once must not read each other's replies."""
        assert "parent" == redis_kv.run(ECHO, [], ["parent"])
        read, write = os.pipe()

        pid = os.fork()
        if pid == 0:  # the child reports how many answers were wrong, then leaves
            wrong = sum(
                redis_kv.run(ECHO, [], [f"child:{n}"]) != f"child:{n}"
                for n in range(300)
            )
            os.write(write, str(wrong).encode())
            os._exit(0)
        os.close(write)
        parent_wrong = sum(
            redis_kv.run(ECHO, [], [f"parent:{n}"]) != f"parent:{n}" for n in range(300)
        )
        child_wrong = int(os.read(read, 16))
        os.close(read)
        os.waitpid(pid, 0)

        assert (0, 0) == (parent_wrong, child_wrong)


class TestBatch:
    def test_execute_applies_every_queued_write(self, kv: KeyValue) -> None:
        """Nothing changes until execute(), which applies every queued write."""
        kv.set("old", "x")
        kv.hset("tool", {"gone": "1", "kept": "2"})
        kv.zadd("queue", {"gone": 1.0, "kept": 2.0})
        batch = (
            kv.batch()
            .set("hide", "calf")
            .set("temporary", "1", ex_s=60)
            .delete("old")
            .hset("tool", {"name": "awl"})
            .hdel("tool", "gone")
            .hincrby("counts", "cuts", 2)
            .hincrbyfloat("hours", "stitching", 0.5)
            .rpush("steps", "a", "b", "c")
            .ltrim("steps", -2, -1)
            .zadd("queue", {"new": 0.5})
            .zrem("queue", "gone")
            .expire("hide", 60)
        )

        assert kv.get("hide") is None
        batch.execute()

        assert "calf" == kv.get("hide")
        assert kv.exists("temporary") is True
        assert kv.exists("old") is False
        assert {"name": "awl", "kept": "2"} == kv.hgetall("tool")
        assert "2" == kv.hget("counts", "cuts")
        assert 0.5 == float(kv.hget("hours", "stitching") or "nan")
        assert ["b", "c"] == kv.lrange("steps", 0, -1)
        assert ["new", "kept"] == kv.zrange("queue", 0, -1)

    def test_batch_expiry_applies(self, kv: KeyValue, clock: Clock) -> None:
        """set(ex_s=...) and expire(...) queued in a batch take effect."""
        kv.batch().set("a", "1", ex_s=5).set("b", "2").expire("b", 5).execute()
        clock.advance(6)

        assert kv.exists("a") is False
        assert kv.exists("b") is False


# -- dead letters ------------------------------------------------------------------------


def _letter(**fields: object) -> DeadLetter:
    """A dead letter with plausible defaults; ``fields`` override them."""
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": "00000000-0000-4000-8000-000000000000",
        "reason": "handler_failed",
        "error_type": "builtins.ValueError",
        "error": "no hide in stock",
        "attempts": 3,
        "first_failed_at": now,
        "last_failed_at": now,
        "envelope_sha256": hashlib.sha256(b"{}").hexdigest(),
        "envelope_bytes": 2,
        "envelope": "{}",
        "event_type": "ToolCreated",
        "event_id": "11111111-1111-4111-8111-111111111111",
        "handler": "workers.handlers:reserve",
    }
    values.update(fields)
    return DeadLetter(**values)


@pytest.fixture
def letters(kv: KeyValue) -> DeadLetterStore:
    return DeadLetterStore(kv, key_prefix=PREFIX, max_envelope_bytes=1024)


class TestDeadLetterRecord:
    def test_a_message_with_a_lone_surrogate_is_kept(
        self, letters: DeadLetterStore
    ) -> None:
        """Text holding a lone surrogate (valid JSON escapes, not valid UTF-8) is kept
        as a dead letter: its bytes are hashed, its text kept with a replacement."""
        raw = '{"type":"ToolCreated","payload":{"note":"\ud800 cut"}}'

        letter = letters.record(reason="invalid_payload", raw=raw, error="bad text")

        assert letter == letters.get(letter.id)
        assert letter.envelope is not None
        assert letter.envelope.endswith('cut"}}')
        assert hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest() == (
            letter.envelope_sha256
        )

    def test_record_keeps_everything_about_the_failure(
        self, letters: DeadLetterStore
    ) -> None:
        """record stores the reason, handler, error type and text, attempts, times,
        traceback and envelope, and get returns the same letter."""
        first_failed_at = datetime.now(UTC) - timedelta(minutes=5)
        envelope = '{"type":"ToolCreated","payload":{"tool_id":3}}'

        letter = letters.record(
            reason="handler_failed",
            raw=envelope,
            error=KeyError("tool 3"),
            attempts=4,
            first_failed_at=first_failed_at,
            event_type="ToolCreated",
            event_id="11111111-1111-4111-8111-111111111111",
            handler="workers.handlers:reserve",
            queue="hidesync.events.tools",
            traceback="Traceback (most recent call last): ...",
            extra={"worker": "w1"},
        )

        assert letter == letters.get(letter.id)
        assert "handler_failed" == letter.reason
        assert "builtins.KeyError" == letter.error_type
        assert "'tool 3'" == letter.error
        assert 4 == letter.attempts
        assert first_failed_at == letter.first_failed_at
        assert first_failed_at < letter.last_failed_at
        assert envelope == letter.envelope
        assert len(envelope) == letter.envelope_bytes
        assert hashlib.sha256(envelope.encode()).hexdigest() == letter.envelope_sha256
        assert {"worker": "w1"} == letter.extra

    def test_error_given_as_text(self, letters: DeadLetterStore) -> None:
        """An error given as text is kept as it is, with error type "str"."""
        letter = letters.record(reason="unknown_handler", raw="{}", error="gone")

        assert ("str", "gone") == (letter.error_type, letter.error)

    def test_error_type_is_qualified(self, letters: DeadLetterStore) -> None:
        """The error type is the exception class's module and qualified name."""

        class KnifeBlunt(Exception):
            pass

        letter = letters.record(reason="handler_failed", raw="{}", error=KnifeBlunt())

        assert f"{__name__}.{KnifeBlunt.__qualname__}" == letter.error_type

    def test_envelope_at_the_cap_is_kept(self, letters: DeadLetterStore) -> None:
        """An envelope of exactly max_envelope_bytes is kept whole."""
        raw = "x" * 1024

        letter = letters.record(reason="handler_failed", raw=raw, error="boom")

        assert raw == letter.envelope

    def test_envelope_above_the_cap_keeps_only_hash_and_size(
        self, letters: DeadLetterStore
    ) -> None:
        """Above max_envelope_bytes only the envelope's SHA-256 and size are kept."""
        raw = "é" * 600  # 1200 bytes in UTF-8

        letter = letters.record(reason="too_large", raw=raw, error="too big")

        assert letter.envelope is None
        assert 1200 == letter.envelope_bytes
        assert hashlib.sha256(raw.encode()).hexdigest() == letter.envelope_sha256

    def test_bytes_envelope_is_kept_as_text(self, letters: DeadLetterStore) -> None:
        """A raw message given as bytes is kept as text."""
        letter = letters.record(reason="malformed", raw=b'{"type":', error="bad")

        assert '{"type":' == letter.envelope

    def test_get_unknown_id_is_none(self, letters: DeadLetterStore) -> None:
        """get of an id that was never recorded returns None."""
        assert letters.get("no-such-letter") is None

    def test_json_round_trip(self) -> None:
        """from_json(to_json()) gives back an equal letter, times included."""
        letter = _letter(
            first_failed_at=datetime(2026, 3, 12, 9, 30, tzinfo=UTC),
            traceback="Traceback ...",
            extra={"queue_depth": 4, "tags": ["a"]},
        )

        assert letter == DeadLetter.from_json(letter.to_json())


class TestDeadLetterListing:
    @pytest.fixture
    def stocked(self, letters: DeadLetterStore) -> DeadLetterStore:
        """Four letters: ages 3 h, 2 h, 30 min and 1 min, of mixed types and reasons."""
        now = datetime.now(UTC)
        for number, (age, event_type, handler, reason) in enumerate(
            [
                (timedelta(hours=3), "ToolCreated", "h:reserve", "handler_failed"),
                (timedelta(hours=2), "ToolReturned", "h:inspect", "handler_failed"),
                (timedelta(minutes=30), "ToolCreated", "h:inspect", "handler_failed"),
                (timedelta(minutes=1), "ToolCreated", None, "malformed"),
            ]
        ):
            letters.add(
                _letter(
                    id=f"letter-{number}",
                    last_failed_at=now - age,
                    first_failed_at=now - age,
                    event_type=event_type,
                    handler=handler,
                    reason=reason,
                )
            )
        return letters

    @staticmethod
    def ids(found: list[DeadLetter]) -> list[str]:
        return [letter.id for letter in found]

    def test_lists_oldest_first(self, stocked: DeadLetterStore) -> None:
        """list() with no filter returns every letter, oldest first."""
        expected = ["letter-0", "letter-1", "letter-2", "letter-3"]

        assert expected == self.ids(stocked.list())

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"event_type": "ToolCreated"}, ["letter-0", "letter-2", "letter-3"]),
            ({"handler": "h:inspect"}, ["letter-1", "letter-2"]),
            ({"reason": "malformed"}, ["letter-3"]),
            ({"older_than": timedelta(hours=1)}, ["letter-0", "letter-1"]),
            ({"newer_than": timedelta(hours=1)}, ["letter-2", "letter-3"]),
            (
                {
                    "older_than": timedelta(minutes=10),
                    "newer_than": timedelta(hours=2.5),
                },
                ["letter-1", "letter-2"],
            ),
            ({"limit": 2}, ["letter-0", "letter-1"]),
            ({"event_type": "ToolCreated", "limit": 2}, ["letter-0", "letter-2"]),
            ({"event_type": "ToolCreated", "handler": "h:inspect"}, ["letter-2"]),
            ({"event_type": "WorkflowCreatedEvent"}, []),
        ],
        ids=[
            "event_type",
            "handler",
            "reason",
            "older_than",
            "newer_than",
            "age-window",
            "limit",
            "limit-after-filter",
            "two-filters",
            "no-match",
        ],
    )
    def test_filters_combine(
        self,
        stocked: DeadLetterStore,
        filters: dict[str, object],
        expected: list[str],
    ) -> None:
        """Each filter narrows the list; limit counts matching letters only."""
        assert expected == self.ids(stocked.list(**filters))

    def test_count(self, stocked: DeadLetterStore) -> None:
        """count returns how many letters are kept."""
        assert 4 == stocked.count()

    def test_delete_removes_letters(self, stocked: DeadLetterStore) -> None:
        """delete removes letters by id and returns how many existed."""
        assert 2 == stocked.delete("letter-0", "letter-3", "no-such-letter")

        assert ["letter-1", "letter-2"] == self.ids(stocked.list())
        assert 2 == stocked.count()
        assert stocked.get("letter-0") is None
        assert 0 == stocked.delete()

    def test_add_replaces_a_letter_with_the_same_id(
        self, stocked: DeadLetterStore
    ) -> None:
        """add with an existing id replaces that letter and moves it in the order."""
        stocked.add(_letter(id="letter-0", attempts=9))

        assert 4 == stocked.count()
        assert "letter-0" == stocked.list()[-1].id
        assert 9 == (stocked.get("letter-0") or _letter()).attempts

    def test_stores_with_other_prefixes_are_separate(self, kv: KeyValue) -> None:
        """Two stores on one key-value store with different prefixes do not mix."""
        first = DeadLetterStore(kv, key_prefix="first", max_envelope_bytes=1024)
        second = DeadLetterStore(kv, key_prefix="second", max_envelope_bytes=1024)

        first.record(reason="malformed", raw="{}", error="bad")

        assert (1, 0) == (first.count(), second.count())


# -- completions -------------------------------------------------------------------------


class TestCompletionLog:
    TTL_S = 30.0

    @pytest.fixture
    def log(self, kv: KeyValue) -> CompletionLog:
        return CompletionLog(kv, key_prefix=PREFIX, retention_s=60)

    @pytest.fixture
    def claims(self, scripted_kv: KeyValue) -> CompletionLog:
        """A log on a store that can run the claim script."""
        return CompletionLog(scripted_kv, key_prefix=PREFIX, retention_s=60)

    def claim(self, log: CompletionLog, owner: str, event_id: str = "e1") -> Claim:
        return log.claim(event_id, "h:reserve", owner=owner, ttl_s=self.TTL_S).claim

    def test_a_new_pair_is_claimed(self, claims: CompletionLog) -> None:
        """The first claim on a pair succeeds and the pair is not yet done."""
        result = claims.claim("e1", "h:reserve", owner="worker-a", ttl_s=self.TTL_S)

        assert ClaimResult(Claim.CLAIMED, 0.0) == result
        assert claims.is_done("e1", "h:reserve") is False

    def test_a_claimed_pair_is_busy_for_another_owner(
        self, claims: CompletionLog
    ) -> None:
        """While one owner holds a pair, another is told how long the claim lasts."""
        self.claim(claims, "worker-a")

        result = claims.claim("e1", "h:reserve", owner="worker-b", ttl_s=self.TTL_S)

        assert Claim.BUSY is result.claim
        assert 0 < result.busy_for_s <= self.TTL_S

    def test_the_same_owner_takes_its_claim_over(self, claims: CompletionLog) -> None:
        """A redelivery with the same owner claims the pair again at once."""
        self.claim(claims, "worker-a")

        assert Claim.CLAIMED is self.claim(claims, "worker-a")

    @pytest.mark.parametrize(
        ("holder", "expected"),
        [
            ("live", Claim.BUSY),
            ("dead", Claim.CLAIMED),
            ("elsewhere", Claim.BUSY),
        ],
    )
    def test_a_delivery_of_the_same_message_takes_over_only_from_the_dead(
        self, claims: CompletionLog, scripted_kv: KeyValue, holder: str, expected: Claim
    ) -> None:
        """A second delivery of one message (a redelivery) takes a claim over when
        the process that held it has died; while that process runs (a connection
        drop gave its message back), or when it runs on another host, the pair is
        busy until the holder settles or its claim lapses."""
        process = {
            "live": f"{socket.gethostname()}:{os.getppid()}",
            "dead": f"{socket.gethostname()}:{_gone_pid()}",
            "elsewhere": f"another-host.example:{os.getpid()}",
        }[holder]
        scripted_kv.set(f"{PREFIX}:claim:e1:h:reserve", f"m1 {process}", px_ms=30_000)

        result = claims.claim("e1", "h:reserve", owner="m1", ttl_s=self.TTL_S)

        assert expected is result.claim
        if expected is Claim.BUSY:
            assert 0 < result.busy_for_s <= 2.0

    def test_a_released_pair_can_be_claimed_again(self, claims: CompletionLog) -> None:
        """After release (a failed attempt) another owner can claim the pair."""
        self.claim(claims, "worker-a")

        claims.release("e1", "h:reserve")

        assert Claim.CLAIMED is self.claim(claims, "worker-b")

    def test_a_claim_lapses_after_its_ttl(
        self, claims: CompletionLog, clock: Clock
    ) -> None:
        """A claim left by a process that died lapses after ttl_s."""
        self.claim(claims, "worker-a")

        clock.advance(self.TTL_S + 1)

        assert Claim.CLAIMED is self.claim(claims, "worker-b")

    def test_a_completed_pair_is_done(self, claims: CompletionLog) -> None:
        """Once completed, the pair is done and further claims say so."""
        self.claim(claims, "worker-a")

        claims.complete("e1", "h:reserve", None)

        assert claims.is_done("e1", "h:reserve") is True
        assert Claim.DONE is self.claim(claims, "worker-a")
        assert Claim.DONE is self.claim(claims, "worker-b")

    def test_pairs_are_independent(self, claims: CompletionLog) -> None:
        """Completing one (event, handler) pair leaves the other pairs open."""
        claims.complete("e1", "h:reserve", None)

        assert claims.is_done("e1", "h:notify") is False
        assert claims.is_done("e2", "h:reserve") is False
        assert Claim.CLAIMED is self.claim(claims, "worker-a", event_id="e2")

    def test_completion_applies_the_handler_effects(
        self, log: CompletionLog, kv: KeyValue
    ) -> None:
        """complete applies the batch it is given together with the record."""
        effects = RecordedBatch().hincrby("workshop:cuts", "belt", 1)

        assert kv.hget("workshop:cuts", "belt") is None
        log.complete("e1", "h:reserve", effects)

        assert "1" == kv.hget("workshop:cuts", "belt")
        assert log.is_done("e1", "h:reserve") is True

    def test_completions_are_forgotten_after_the_retention(
        self, claims: CompletionLog, clock: Clock
    ) -> None:
        """A completion is kept for retention_s seconds, then forgotten."""
        claims.complete("e1", "h:reserve", None)

        clock.advance(59)
        assert claims.is_done("e1", "h:reserve") is True
        clock.advance(2)

        assert claims.is_done("e1", "h:reserve") is False

    @pytest.mark.parametrize(
        ("events", "handlers"), [(2, 4), (500, 20)], ids=["one message", "a batch"]
    )
    def test_settling_records_completed_pairs_and_drops_every_claim(
        self, claims: CompletionLog, scripted_kv: KeyValue, events: int, handlers: int
    ) -> None:
        """Settling without effects, a few pairs (one script) or a batch message's
        ten thousand (one transaction), records the completed pairs and drops every
        claim."""
        pairs = [(f"e{n}", f"h:{k}") for n in range(events) for k in range(handlers)]
        claims.claim_many(pairs, owner="worker-a", ttl_s=self.TTL_S)
        completed, released = pairs[::2], pairs[1::2]

        claims.settle(
            Settlement(
                completed=[(pair, None) for pair in completed], released=released
            )
        )

        assert all(claims.is_done(*pair) for pair in completed)
        assert not any(claims.is_done(*pair) for pair in released)
        assert not any(scripted_kv.exists(f"{PREFIX}:claim:{e}:{h}") for e, h in pairs)


def _gone_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# -- metrics -----------------------------------------------------------------------------


class TestMemoryCompletionLog:
    """The eager-mode log: the same answers in memory, with bounded memory."""

    def complete(self, log: MemoryCompletionLog, event_id: str) -> None:
        [result] = log.claim_many([(event_id, "h")], owner=None, ttl_s=1.0)
        assert Claim.CLAIMED is result.claim
        log.complete(event_id, "h")

    def test_answers_done_claimed_and_busy(self) -> None:
        """A completed pair is done, a held one busy for the claim's time, a released
        one free again."""
        log = MemoryCompletionLog(MemoryKeyValue(), retention_s=60)
        self.complete(log, "e1")

        results = log.claim_many([("e1", "h"), ("e2", "h")], owner=None, ttl_s=5.0)
        busy = log.claim("e2", "h", owner=None, ttl_s=5.0)
        log.release("e2", "h")
        again = log.claim("e2", "h", owner=None, ttl_s=5.0)

        assert [Claim.DONE, Claim.CLAIMED] == [r.claim for r in results]
        assert Claim.BUSY is busy.claim
        assert 4.0 < busy.busy_for_s <= 5.0
        assert Claim.CLAIMED is again.claim

    def test_a_claim_lapses_after_its_ttl(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A claim nobody settles (its thread died) stops holding the pair after
        ttl_s, as in Redis."""
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        log = MemoryCompletionLog(MemoryKeyValue(), retention_s=60)
        log.claim("e1", "h", owner=None, ttl_s=30.0)

        now[0] += 29
        held = log.claim("e1", "h", owner=None, ttl_s=30.0)
        now[0] += 2
        lapsed = log.claim("e1", "h", owner=None, ttl_s=30.0)

        assert ClaimResult(Claim.BUSY, 1.0) == held
        assert Claim.CLAIMED is lapsed.claim

    def test_records_outlive_one_generation_then_go(self) -> None:
        """A record survives the next generation (it is kept at least that long),
        and is forgotten in the one after."""
        log = MemoryCompletionLog(MemoryKeyValue(), retention_s=60, generation_size=3)
        self.complete(log, "first")

        for number in range(3):
            self.complete(log, f"second-{number}")
        kept = log.is_done("first", "h")
        for number in range(3):
            self.complete(log, f"third-{number}")

        assert kept is True
        assert log.is_done("first", "h") is False
        assert log.is_done("third-2", "h") is True

    def test_records_are_kept_the_retention_time(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past retention_s the current records become the previous generation, and
        past twice that they are gone."""
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        log = MemoryCompletionLog(MemoryKeyValue(), retention_s=60)
        self.complete(log, "old")

        now[0] += 61
        self.complete(log, "newer")
        kept = log.is_done("old", "h")
        now[0] += 61
        self.complete(log, "newest")

        assert kept is True
        assert log.is_done("old", "h") is False
        assert log.is_done("newer", "h") is True


class TestMetricsCounting:
    def test_count_adds_per_family_and_key(self) -> None:
        """count adds to one key of one family; total sums a family."""
        metrics = Metrics()

        metrics.count("published", "ToolCreated")
        metrics.count("published", "ToolCreated", 2)
        metrics.count("published", "ToolReturned")

        snapshot = metrics.snapshot()
        assert 3 == snapshot["published"]["ToolCreated"]
        assert 4 == snapshot.total("published")
        assert 0 == snapshot.total("dead_letters")

    @pytest.mark.parametrize(
        ("failed", "errors"), [(False, {}), (True, {"h:reserve:ToolCreated": 1})]
    )
    def test_handler_finished_counts_runs_errors_and_durations(
        self, failed: bool, errors: dict[str, int]
    ) -> None:
        """handler_finished counts a run and its duration bucket, and an error when
        the run failed."""
        metrics = Metrics()

        metrics.handler_finished("h:reserve", "ToolCreated", 0.02, failed=failed)

        snapshot = metrics.snapshot()
        assert {"h:reserve": 1} == dict(snapshot["handler_runs"])
        assert errors == dict(snapshot["handler_errors"])
        assert {f"h:reserve|{duration_bucket(0.02)}": 1} == dict(snapshot["durations"])

    def test_snapshot_is_independent(self) -> None:
        """A snapshot neither changes with later counts nor changes the metrics."""
        metrics = Metrics()
        metrics.count("published", "ToolCreated")

        snapshot = metrics.snapshot()
        snapshot["published"]["ToolCreated"] += 100
        metrics.count("published", "ToolCreated")

        assert 101 == snapshot["published"]["ToolCreated"]
        assert 2 == metrics.snapshot()["published"]["ToolCreated"]

    def test_reset_forgets_everything(self) -> None:
        """reset returns every counter to zero."""
        metrics = Metrics()
        metrics.count("published", "ToolCreated")

        metrics.reset()

        assert 0 == metrics.snapshot().total("published")

    def test_a_forked_child_counts_from_zero(self) -> None:
        """What the parent counted is the parent's to share: a child (a prefork
        worker process) that inherited it would share it a second time."""
        metrics = Metrics()
        metrics.count("dead_letters", "malformed")
        read, write = os.pipe()

        pid = os.fork()
        if pid == 0:  # the child reports what it holds, then leaves at once
            os.write(write, str(metrics.snapshot().total("dead_letters")).encode())
            os._exit(0)
        os.close(write)
        child_total = int(os.read(read, 16))
        os.close(read)
        os.waitpid(pid, 0)

        assert 0 == child_total
        assert 1 == metrics.snapshot().total("dead_letters")

    def test_counts_from_many_threads_while_read_lose_nothing(self) -> None:
        """Counts and runs noted from several threads, while another thread keeps
        taking snapshots (each folds what was noted so far), all end up counted."""
        metrics = Metrics()
        threads, per_thread = 8, 5000
        stop = threading.Event()

        def note() -> None:
            for _ in range(per_thread):
                metrics.count("published", "ToolCreated")
                metrics.handler_finished("h:reserve", "ToolCreated", 0.001, failed=True)

        def read() -> None:
            while not stop.is_set():
                metrics.snapshot()

        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=note) for _ in range(threads)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        stop.set()
        reader.join()

        snapshot = metrics.snapshot()
        total = threads * per_thread
        assert total == snapshot["published"]["ToolCreated"]
        assert total == snapshot["handler_runs"]["h:reserve"]
        assert total == snapshot["handler_errors"]["h:reserve:ToolCreated"]
        assert total == snapshot.total("durations")

    def test_summary_reports_the_reference_figures(self) -> None:
        """summary gives totals and the most common events from the counters."""
        metrics = Metrics()
        for event_type, times in [("ToolCreated", 3), ("ToolReturned", 1)]:
            metrics.count("delivered", event_type, times)
        metrics.handler_finished("h:reserve", "ToolCreated", 0.01, failed=True)
        metrics.count("retries", "h:reserve")
        metrics.count("dead_letters", "handler_failed")

        assert {
            "total_events": 4,
            "event_types": {"ToolCreated": 3, "ToolReturned": 1},
            "handler_errors": {"h:reserve:ToolCreated": 1},
            "most_common_events": [("ToolCreated", 3), ("ToolReturned", 1)],
            "retries": 1,
            "dead_letters": 1,
        } == metrics.snapshot().summary()


class TestMetricsSharing:
    def test_flush_adds_pending_counts_once(self, kv: KeyValue) -> None:
        """flush adds what was counted since the last flush: flushing twice does not
        double the shared totals."""
        metrics = Metrics()
        metrics.count("published", "ToolCreated", 2)
        metrics.handler_finished("h:reserve", "ToolCreated", 0.02, failed=True)

        metrics.flush(kv, PREFIX)
        metrics.flush(kv, PREFIX)

        shared = Metrics.load(kv, PREFIX)
        assert 2 == shared["published"]["ToolCreated"]
        assert 1 == shared["handler_runs"]["h:reserve"]
        assert 1 == shared["handler_errors"]["h:reserve:ToolCreated"]
        assert 1 == shared.total("durations")

    def test_later_counts_are_added_by_the_next_flush(self, kv: KeyValue) -> None:
        """Counts made after a flush reach the store with the next flush."""
        metrics = Metrics()
        metrics.count("published", "ToolCreated")
        metrics.flush(kv, PREFIX)

        metrics.count("published", "ToolCreated", 4)
        metrics.flush(kv, PREFIX)

        assert 5 == Metrics.load(kv, PREFIX)["published"]["ToolCreated"]

    def test_flush_keeps_local_totals(self, kv: KeyValue) -> None:
        """Flushing does not reset this process's own snapshot."""
        metrics = Metrics()
        metrics.count("published", "ToolCreated")

        metrics.flush(kv, PREFIX)

        assert 1 == metrics.snapshot()["published"]["ToolCreated"]

    def test_load_sums_every_process(self, kv: KeyValue) -> None:
        """Totals flushed by several processes add up."""
        for amount in (1, 2, 3):
            metrics = Metrics()
            metrics.count("delivered", "ToolCreated", amount)
            metrics.flush(kv, PREFIX)

        assert 6 == Metrics.load(kv, PREFIX)["delivered"]["ToolCreated"]

    def test_load_of_an_empty_store_is_zero(self, kv: KeyValue) -> None:
        """Loading before any flush gives empty counters."""
        snapshot = Metrics.load(kv, PREFIX)

        assert 0 == sum(snapshot.total(family) for family in snapshot.counters)


#: Durations from about 1.4 microseconds to 3.7 seconds, seven per decade.
SAMPLE_DURATIONS_S = tuple(10 ** (exponent / 7) * 1e-6 for exponent in range(1, 60))


class TestDurations:
    def test_bucket_grows_with_duration(self) -> None:
        """Longer durations never fall in an earlier bucket."""
        buckets = [duration_bucket(duration) for duration in SAMPLE_DURATIONS_S]

        assert sorted(buckets) == buckets
        assert len(set(buckets)) == len(buckets)

    @pytest.mark.parametrize("duration_s", [0.0, 1e-7, 1e-6])
    def test_a_microsecond_or_less_is_bucket_zero(self, duration_s: float) -> None:
        """Durations up to a microsecond fall in bucket 0."""
        assert 0 == duration_bucket(duration_s)

    def test_bucket_bounds_contain_the_duration(self) -> None:
        """A duration lies above its previous bucket's upper bound and at most at its
        own bucket's upper bound."""
        for duration in SAMPLE_DURATIONS_S:
            bucket = duration_bucket(duration)

            assert bucket_upper_s(bucket - 1) < duration <= bucket_upper_s(bucket)

    def test_upper_bounds_grow(self) -> None:
        """bucket_upper_s increases with the bucket number."""
        uppers = [bucket_upper_s(bucket) for bucket in range(200)]

        assert all(low < high for low, high in itertools.pairwise(uppers))

    @pytest.mark.parametrize(
        ("quantile", "expected_s"), [(0.5, 0.050), (0.9, 0.090), (0.99, 0.099)]
    )
    def test_percentiles_are_within_fifteen_percent(
        self, quantile: float, expected_s: float
    ) -> None:
        """Percentiles of 1 ms, 2 ms ... 100 ms are estimated within 15%."""
        metrics = Metrics()
        for millis in range(1, 101):
            metrics.handler_finished(
                "h:cut", "ToolCreated", millis / 1000, failed=False
            )

        estimate = metrics.snapshot().duration_percentile_s(quantile)

        assert pytest.approx(expected_s, rel=0.15) == estimate

    def test_percentile_of_one_handler(self) -> None:
        """A percentile can be read for one handler, ignoring the others."""
        metrics = Metrics()
        for _ in range(10):
            metrics.handler_finished("h:fast", "ToolCreated", 0.001, failed=False)
            metrics.handler_finished("h:slow", "ToolCreated", 2.0, failed=False)

        snapshot = metrics.snapshot()

        assert pytest.approx(2.0, rel=0.15) == snapshot.duration_percentile_s(
            0.5, handler="h:slow"
        )
        assert pytest.approx(0.001, rel=0.15) == snapshot.duration_percentile_s(
            0.99, handler="h:fast"
        )

    def test_percentile_without_samples_is_zero(self) -> None:
        """A percentile with no recorded duration is 0."""
        assert 0.0 == Metrics().snapshot().duration_percentile_s(0.5, handler="h:none")
