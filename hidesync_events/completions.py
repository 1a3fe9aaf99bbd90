"""Once per (event, handler): claims while a handler runs, a record once it completed.

Delivery is at least once: a message can arrive again after a worker crash, a Redis
visibility timeout or a republish, and two workers can receive copies at the same moment.
Before the handlers of a message run, one atomic step looks each ``(event_id, handler)``
pair up:

* ``DONE``: it completed before; skip it.
* ``CLAIMED``: nobody else holds it; this delivery runs it. The claim expires after the
  hard time limit, so a claim left by a process that died is not held for ever, and
  the redelivery of the very message whose process died on this host takes its claim
  over at once.
* ``BUSY``: another delivery is running it now; look again later.

When the handlers have run, one more atomic step settles them: for each that succeeded,
its :func:`~hidesync_events.effects` and its completion record; for each that failed,
the release of its claim. Either all of that happens or none of it. Records are kept
``completion_retention_s`` seconds. Two round trips to Redis per message, however many
events and handlers it carries.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from hidesync_events.event import new_event_id
from hidesync_events.keyvalue import (
    KeyValue,
    MemoryKeyValue,
    RecordedBatch,
    Script,
    Value,
)

#: An ``(event_id, handler name)`` pair.
Pair = tuple[str, str]


class Claim(StrEnum):
    DONE = "done"
    CLAIMED = "claimed"
    BUSY = "busy"


class ClaimResult(NamedTuple):
    claim: Claim
    #: For BUSY: how long the other delivery's claim still runs.
    busy_for_s: float = 0.0


@dataclass
class Settlement:
    """What the handlers of one message came to: completed (with effects) or released;
    and the effects of idempotent handlers, which keep no record."""

    completed: list[tuple[Pair, RecordedBatch | None]] = field(default_factory=list)
    released: list[Pair] = field(default_factory=list)
    unrecorded: list[RecordedBatch] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.completed or self.released or self.unrecorded)


class Completions(Protocol):
    """Claims and completion records of ``(event_id, handler)`` pairs."""

    def claim_many(
        self, pairs: Sequence[Pair], *, owner: str | None, ttl_s: float
    ) -> list[ClaimResult]: ...
    def settle(self, settlement: Settlement) -> None: ...
    def unsettled(self, settlement: Settlement) -> Settlement: ...
    def is_done(self, event_id: str, handler: str) -> bool: ...


def _claim_in_memory(
    kv: MemoryKeyValue, keys: list[str], args: list[Value]
) -> list[Value]:
    holder, ttl_ms, dead, message = (str(a) for a in args)
    answers: list[Value] = []
    for done, claim in zip(keys[::2], keys[1::2], strict=True):
        if kv.exists(done):
            answers += ["done", 0]
            continue

        if kv.set(claim, holder, px_ms=int(ttl_ms), nx=True):
            answers += ["claimed", 0]
            continue

        current = kv.get(claim)
        if current == holder or (dead and current == dead):
            kv.set(claim, holder, px_ms=int(ttl_ms))
            answers += ["claimed", 0]
        elif message and current is not None and current.startswith(message):
            answers += ["held", current]
        else:
            answers += ["busy", kv.pttl(claim)]
    return answers


#: Per pair: done; claimed (free, ours already, or taken from the dead holder named
#: in ARGV[3]); held by another process delivering the same message (ARGV[4] is the
#: message's prefix), answered with that holder; or busy, with the claim's PTTL.
_CLAIM_MANY = Script(
    lua="""
    local answers = {}
    for i = 1, #KEYS, 2 do
        local done, claim = KEYS[i], KEYS[i + 1]
        if redis.call('EXISTS', done) == 1 then
            table.insert(answers, 'done'); table.insert(answers, 0)
        elseif redis.call('SET', claim, ARGV[1], 'NX', 'PX', ARGV[2]) then
            table.insert(answers, 'claimed'); table.insert(answers, 0)
        else
            -- Held already: read by whom only now, off the usual path.
            local current = redis.call('GET', claim)
            if current == ARGV[1] or (ARGV[3] ~= '' and current == ARGV[3]) then
                redis.call('SET', claim, ARGV[1], 'PX', ARGV[2])
                table.insert(answers, 'claimed'); table.insert(answers, 0)
            elseif ARGV[4] ~= '' and current
                and string.sub(current, 1, #ARGV[4]) == ARGV[4] then
                table.insert(answers, 'held'); table.insert(answers, current)
            else
                table.insert(answers, 'busy')
                table.insert(answers, redis.call('PTTL', claim))
            end
        end
    end
    return answers
    """,
    in_memory=_claim_in_memory,
)


def _settle_in_memory(
    kv: MemoryKeyValue, keys: list[str], args: list[Value]
) -> list[Value]:
    retention_s, completed = int(args[0]), int(args[1])
    for done in keys[:completed]:
        kv.set(done, "1", ex_s=retention_s)
    if keys[completed:]:
        kv.delete(*keys[completed:])
    return []


#: Settling at most this many pairs, without effects, runs :data:`_SETTLE`. Past it,
#: a transaction costs Redis less CPU per pair: batches of 500 events settled about 8%
#: fewer pairs per Redis CPU second in the script (``bench scaling``, three runs each).
_SCRIPT_UP_TO_PAIRS = 16

#: Settling without effects: the completion records, then the claims to drop.
_SETTLE = Script(
    lua="""
    local completed = tonumber(ARGV[2])
    for i = 1, completed do
        redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
    end
    -- One DEL per claim: unpack() has a limit, this loop none.
    for i = completed + 1, #KEYS do
        redis.call('DEL', KEYS[i])
    end
    return {}
    """,
    in_memory=_settle_in_memory,
)


class _OnePair:
    """One pair at a time, for tests and tools: each call is one claim or settle."""

    def claim_many(
        self, pairs: Sequence[Pair], *, owner: str | None, ttl_s: float
    ) -> list[ClaimResult]:
        raise NotImplementedError

    def settle(self, settlement: Settlement) -> None:
        raise NotImplementedError

    def claim(
        self, event_id: str, handler: str, *, owner: str | None, ttl_s: float
    ) -> ClaimResult:
        """:meth:`claim_many` for one pair."""
        return self.claim_many([(event_id, handler)], owner=owner, ttl_s=ttl_s)[0]

    def complete(
        self, event_id: str, handler: str, effects: RecordedBatch | None = None
    ) -> None:
        """Record that ``handler`` completed the event (with its effects)."""
        self.settle(Settlement(completed=[((event_id, handler), effects)]))

    def release(self, event_id: str, handler: str) -> None:
        """Give a claim up after a failure, so a retry can take it."""
        self.settle(Settlement(released=[(event_id, handler)]))


class CompletionLog(_OnePair):
    """Claims and completion records kept in a key-value store (Redis: the fleet's)."""

    def __init__(self, kv: KeyValue, *, key_prefix: str, retention_s: int) -> None:
        self._kv = kv
        self._prefix = key_prefix
        self._retention_s = retention_s

    def claim_many(
        self, pairs: Sequence[Pair], *, owner: str | None, ttl_s: float
    ) -> list[ClaimResult]:
        """Claim each pair for ``owner`` unless it is done or held by another delivery.

        ``owner`` is the message's id: a claim is held by that message in this
        process. A delivery of the same message in another process takes a claim
        over only when that process has died (a redelivery after a crash); while it
        runs (Celery's Redis transport gives a running message back when its
        connection drops) the pair is busy. ``owner`` None stands for a delivery that
        can never take a claim over.
        """
        if not pairs:
            return []

        holder = f"{owner} {_this_process()}" if owner else new_event_id()
        message = f"{owner} " if owner else ""
        ttl_ms = max(1, round(ttl_s * 1000))
        keys = [key for pair in pairs for key in (self._done(pair), self._claim(pair))]
        flat = self._kv.run(_CLAIM_MANY, keys, [holder, ttl_ms, "", message])

        results = []
        for index, (status, detail) in enumerate(
            zip(flat[::2], flat[1::2], strict=True)
        ):
            if _text(status) == "held":
                dead = _text(detail)
                if _has_died(dead):
                    # The process that held it is gone: take it, unless it changed.
                    pair_keys = keys[2 * index : 2 * index + 2]
                    status, detail = self._kv.run(
                        _CLAIM_MANY, pair_keys, [holder, ttl_ms, dead, message]
                    )
                else:
                    status, detail = "busy", round(_HELD_RECHECK_S * 1000)
            results.append(
                ClaimResult(Claim(_text(status)), max(0, int(detail)) / 1000)
            )
        return results

    def settle(self, settlement: Settlement) -> None:
        """Apply completed handlers' effects and records, release the others' claims."""
        if not settlement:
            return

        claims = [self._claim(pair) for pair in settlement.released]
        claims += [self._claim(pair) for pair, _ in settlement.completed]
        with_effects = settlement.unrecorded or any(
            effects is not None for _, effects in settlement.completed
        )
        if not with_effects and len(claims) <= _SCRIPT_UP_TO_PAIRS:
            # A single-event message, usually: one script has one reply to read where
            # a transaction has one per command (about 20 us less per message here).
            done = [self._done(pair) for pair, _ in settlement.completed]
            self._kv.run(_SETTLE, done + claims, [self._retention_s, len(done)])
            return

        batch = self._kv.batch()
        for unrecorded in settlement.unrecorded:
            unrecorded.apply_to(batch)
        for pair, effects in settlement.completed:
            if effects is not None:
                effects.apply_to(batch)
            batch.set(self._done(pair), "1", ex_s=self._retention_s)
        if claims:
            batch.delete(*claims)
        batch.execute()

    def unsettled(self, settlement: Settlement) -> Settlement:
        """``settlement`` without the completed pairs already recorded: what is left
        to settle after an attempt whose outcome is unknown (the connection failed
        after the request went out). A pair's record and its effects are written in
        one atomic step, so a recorded pair's effects are in too."""
        completed = [
            item
            for item in settlement.completed
            if not self._kv.exists(self._done(item[0]))
        ]
        return Settlement(completed, settlement.released, settlement.unrecorded)

    def is_done(self, event_id: str, handler: str) -> bool:
        """Whether ``handler`` completed the event ``event_id``."""
        return self._kv.exists(self._done((event_id, handler)))

    def _done(self, pair: Pair) -> str:
        return f"{self._prefix}:done:{pair[0]}:{pair[1]}"

    def _claim(self, pair: Pair) -> str:
        return f"{self._prefix}:claim:{pair[0]}:{pair[1]}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: This host, as claims name it (a process's host does not change, even forked).
_HOST = socket.gethostname()


def _this_process() -> str:
    """This process, as claims name it (its pid read at each claim: pools fork)."""
    return f"{_HOST}:{os.getpid()}"


#: How soon a pair held by a live delivery of the same message is looked at again.
_HELD_RECHECK_S = 2.0


def _has_died(holder: str) -> bool:
    """Whether the process named in a claim is gone: only a process on this host can
    be seen to have died; one elsewhere is taken to run until its claim lapses."""
    _, _, process = holder.rpartition(" ")
    host, _, pid = process.rpartition(":")
    if host != _HOST or not pid.isdigit():
        return False

    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


#: The answers that carry nothing else, made once (eager mode asks for every handler).
_CLAIMED = ClaimResult(Claim.CLAIMED)
_DONE = ClaimResult(Claim.DONE)


class MemoryCompletionLog(_OnePair):
    """Claims and completion records in this process's memory (eager mode).

    The same answers as :class:`CompletionLog`, with plain sets: eager mode asks for
    every handler of every event, and a script per question would cost more than the
    handler. A process holds its own claims, so ``owner`` plays no part; a claim
    lapses after ``ttl_s``, as in Redis. Effects are applied to ``kv``.

    Completion records are kept in two generations, so that forgetting old ones
    costs nothing per event: new records go into the current one, which becomes the
    previous one (and the previous one is dropped) after ``retention_s`` or once it
    holds ``generation_size`` records. A record is thus kept at least ``retention_s``
    or until ``generation_size`` more pairs have completed in this process, whichever
    comes first, and at most twice that: memory stays bounded in a long-lived process
    that publishes in eager mode.
    """

    def __init__(
        self, kv: KeyValue, *, retention_s: int, generation_size: int = 100_000
    ) -> None:
        self._kv = kv
        self._lock = threading.Lock()
        self._retention_s = retention_s
        self._generation_size = generation_size
        self._done: set[Pair] = set()
        self._done_before: set[Pair] = set()
        self._next_generation_at = time.monotonic() + retention_s
        #: Held claims and when each lapses (as in Redis: a claim nobody settles,
        #: say of a thread that died, does not hold its pair for ever).
        self._claimed: dict[Pair, float] = {}

    def claim_many(
        self, pairs: Sequence[Pair], *, owner: str | None, ttl_s: float
    ) -> list[ClaimResult]:
        answers = []
        now = time.monotonic()
        with self._lock:
            done, done_before, claimed = self._done, self._done_before, self._claimed
            for pair in pairs:
                lapses_at = claimed.get(pair)
                if pair in done or pair in done_before:
                    answers.append(_DONE)
                elif lapses_at is not None and lapses_at > now:
                    answers.append(ClaimResult(Claim.BUSY, lapses_at - now))
                else:
                    claimed[pair] = now + ttl_s
                    answers.append(_CLAIMED)
        return answers

    def settle(self, settlement: Settlement) -> None:
        for unrecorded in settlement.unrecorded:
            unrecorded.apply_to(self._kv.batch()).execute()
        for _, effects in settlement.completed:
            if effects is not None:
                effects.apply_to(self._kv.batch()).execute()

        with self._lock:
            claimed = self._claimed
            for pair in settlement.released:
                claimed.pop(pair, None)
            if not settlement.completed:
                return

            done = self._current_generation()
            for pair, _ in settlement.completed:
                claimed.pop(pair, None)
                done.add(pair)

    def unsettled(self, settlement: Settlement) -> Settlement:
        # Settling in memory either happens or raises before changing anything.
        return settlement

    def is_done(self, event_id: str, handler: str) -> bool:
        pair = (event_id, handler)
        with self._lock:
            return pair in self._done or pair in self._done_before

    def _current_generation(self) -> set[Pair]:
        if (
            len(self._done) >= self._generation_size
            or time.monotonic() >= self._next_generation_at
        ):
            self._done_before, self._done = self._done, set()
            self._next_generation_at = time.monotonic() + self._retention_s
        return self._done
