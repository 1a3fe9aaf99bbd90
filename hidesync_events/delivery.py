"""The delivery path shared by eager mode and Celery workers.

A message goes through named steps: :meth:`Delivery.decode` (refusing and
dead-lettering what is not a valid envelope), :meth:`Delivery.targets` (the handlers of
the event's type and its bases), :meth:`Delivery.run_message` (claim, run each handler
isolated, settle), each attempt reported by :class:`~hidesync_events.outcomes.Reporter`:
done, to be retried after a delay, or dead-lettered. Transports decide *when* a retry
runs: eager mode at once, a worker by sending a delayed message for that one handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from time import monotonic, perf_counter, sleep
from typing import Any

from hidesync_events.codec import Envelope, decode, peek_header
from hidesync_events.completions import Claim, Pair, Settlement
from hidesync_events.dead_letters import DeadLetter, Reason
from hidesync_events.errors import CodecError, MalformedEnvelopeError
from hidesync_events.handling import (
    HandlerScope,
    current_envelope,
    enter_scope,
    leave_scope,
)
from hidesync_events.keyvalue import UNREACHABLE, RecordedBatch
from hidesync_events.outcomes import Outcome, Reporter, Status
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry, Subscription

logger = logging.getLogger("hidesync.events.delivery")

__all__ = ["Delivery", "Outcome", "Status", "current_envelope"]

#: How long settling a delivery waits for an unreachable state store before giving
#: up (the task then fails, and Celery acknowledges the message).
SETTLE_PATIENCE_S = 30.0

#: The span of a handler run when tracing is off (reusable: it holds no state).
_NO_SPAN = contextlib.nullcontext()


class Delivery:
    """Runs envelopes through the handlers of a registry, with a runtime's stores."""

    def __init__(
        self, registry: HandlerRegistry, runtime: Runtime, *, retries_wait: bool = True
    ) -> None:
        """``retries_wait=False`` (eager mode) runs retries at once, without a delay."""
        self.registry = registry
        self.runtime = runtime
        self.report = Reporter(runtime, retries_wait=retries_wait)
        self._max_bytes = runtime.settings.max_envelope_bytes
        # A claim outlives the longest a delivery may run, then lapses.
        self._claim_ttl_s = runtime.settings.hard_time_limit_s

    # -- decode -------------------------------------------------------------------------

    def decode(self, raw: Any, *, queue: str | None = None) -> Envelope | None:
        """Decode ``raw``; a message that is not a valid envelope is dead-lettered."""
        try:
            envelope = decode(raw, max_bytes=self._max_bytes)
        except CodecError as error:
            self.reject(raw, error, queue=queue)
            return None
        except Exception as error:
            # A bug of ours, or of a library's, on input nobody foresaw: the message
            # is kept all the same, and the other events of its batch still run.
            logger.exception("decoding a message from %s failed", queue or "the bus")
            refused = MalformedEnvelopeError(
                f"message could not be decoded ({type(error).__name__}: {error})",
                raw=raw if isinstance(raw, str | bytes) else repr(raw),
            )
            self.reject(raw, refused, queue=queue)
            return None

        return envelope

    def reject(
        self, raw: Any, error: CodecError, *, queue: str | None = None
    ) -> DeadLetter:
        """Keep a message that cannot be decoded as a dead letter, and log why."""
        text = raw if isinstance(raw, str | bytes) else repr(raw)
        header = peek_header(text)
        letter = self.runtime.dead_letters.record(
            reason=error.reason,
            raw=text,
            error=error,
            event_type=_text_or_none(header.get("type")),
            event_id=_text_or_none(header.get("event_id")),
            queue=queue,
        )
        self.runtime.metrics.count("dead_letters", error.reason)
        logger.error(
            "refused a message from %s (%s): %s; kept as dead letter %s",
            queue or "the bus",
            error.reason,
            error,
            letter.id,
            extra={"reason": error.reason, "dead_letter": letter.id},
        )
        return letter

    # -- resolve ------------------------------------------------------------------------

    def targets(
        self, envelope: Envelope, only: str | None = None
    ) -> tuple[Subscription, ...]:
        """The subscriptions to run: all of the event's, or the one named ``only``."""
        subscriptions = self.registry.handlers_for(type(envelope.event))
        if only is None:
            self.runtime.metrics.count("delivered", envelope.event_type)
            return subscriptions

        self.runtime.metrics.count("retried", only)
        for subscription in subscriptions:
            if subscription.name == only:
                return (subscription,)

        letter = self.runtime.dead_letters.record(
            reason=Reason.UNKNOWN_HANDLER,
            raw=envelope.text,
            error=f"no handler named {only!r} is subscribed to {envelope.event_type}",
            event_type=envelope.event_type,
            event_id=envelope.event_id,
            handler=only,
        )
        logger.warning(
            "handler %s is no longer subscribed to %s; event %s kept as dead letter %s",
            only,
            envelope.event_type,
            envelope.event_id,
            letter.id,
        )
        return ()

    # -- run handlers ------------------------------------------------------------------

    def run_message(
        self,
        items: Sequence[tuple[Envelope, Subscription]],
        attempt: int = 1,
        first_failed_at: datetime | None = None,
        *,
        owner: str | None = None,
    ) -> list[Outcome]:
        """Run the handlers of one message, isolated from one another.

        All are claimed in one step, run in order (async ones on the process loop),
        and settled in one step: effects and completion records of those that
        succeeded, released claims of those that failed. ``owner`` identifies this
        delivery in the claims (the message's id): a message delivered again after
        its process died passes the same owner and takes its claims over.
        """
        if not items:
            return []

        # Idempotent handlers are not claimed: they run whatever happened before.
        completions = self.runtime.completions
        pairs = [(e.event_id, s.name) for e, s in items if not s.idempotent]
        answers = (
            completions.claim_many(pairs, owner=owner, ttl_s=self._claim_ttl_s)
            if pairs
            else []
        )
        claims = zip(pairs, answers, strict=True)

        settlement = Settlement()
        outcomes = []
        try:
            for envelope, subscription in items:
                pair: Pair | None = None
                if not subscription.idempotent:
                    pair, claim = next(claims)
                    if claim.claim is not Claim.CLAIMED:
                        outcomes.append(
                            self.report.not_claimed(
                                subscription, envelope, attempt, claim
                            )
                        )
                        continue

                outcome, effects = self._invoke(
                    subscription, envelope, attempt, first_failed_at
                )
                outcomes.append(outcome)
                _note(settlement, pair, outcome.status is Status.DONE, effects)
        except BaseException:
            # Interrupted (Ctrl-C, a cancelled task): settle what ran, and give the
            # claims of what did not back now rather than when they lapse.
            held = [
                pair
                for pair, answer in zip(pairs, answers, strict=True)
                if answer.claim is Claim.CLAIMED
            ]
            self._settle_interrupted(settlement, held)
            raise

        if settlement:
            self._settle(settlement)
        return outcomes

    def _settle(self, settlement: Settlement) -> None:
        """Settle, waiting out a short outage of the state store: the handlers have
        run, and what they did must not go when the message is acknowledged."""
        completions = self.runtime.completions
        deadline = monotonic() + SETTLE_PATIENCE_S
        pause_s = 0.1
        while True:
            try:
                completions.settle(settlement)
                return
            except UNREACHABLE as error:
                if monotonic() + pause_s > deadline:
                    raise
                logger.warning("could not settle a delivery yet: %s", error)

            # The failed attempt may have gone through before its reply was lost:
            # learn what is left before trying again.
            while True:
                sleep(pause_s)
                pause_s = min(pause_s * 2, 2.0)
                try:
                    settlement = completions.unsettled(settlement)
                    break
                except UNREACHABLE:
                    if monotonic() + pause_s > deadline:
                        raise

    def _settle_interrupted(self, settlement: Settlement, held: list[Pair]) -> None:
        noted = {pair for pair, _ in settlement.completed} | set(settlement.released)
        settlement.released += [pair for pair in held if pair not in noted]
        try:
            self.runtime.completions.settle(settlement)
        except Exception:
            logger.warning("could not settle an interrupted delivery", exc_info=True)

    def run(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
        *,
        owner: str | None = None,
    ) -> Outcome:
        """Run one handler (see :meth:`run_message`)."""
        return self.run_message(
            [(envelope, subscription)], attempt, first_failed_at, owner=owner
        )[0]

    async def run_async(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
    ) -> Outcome:
        """Run one handler from a coroutine; a sync handler runs in a worker thread."""
        completions = self.runtime.completions
        pair = (
            None if subscription.idempotent else (envelope.event_id, subscription.name)
        )
        if pair is not None:
            [claim] = completions.claim_many(
                [pair], owner=None, ttl_s=self._claim_ttl_s
            )
            if claim.claim is not Claim.CLAIMED:
                return self.report.not_claimed(subscription, envelope, attempt, claim)

        scope = HandlerScope(envelope, subscription.name)
        token = enter_scope(scope)
        started = perf_counter()
        try:
            with self._span(envelope, subscription, attempt):
                if subscription.is_async:
                    await subscription.handler(envelope.event)
                else:
                    handler, event = subscription.handler, envelope.event
                    result = await asyncio.to_thread(handler, event)
                    if inspect.isawaitable(result):
                        await result
        except Exception as error:
            elapsed = perf_counter() - started
            self._settle_one(pair, done=False, effects=None)
            return self.report.failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )
        except BaseException:
            # Cancelled (or interrupted): its claim goes back at once.
            self._settle_one(pair, done=False, effects=None)
            raise
        finally:
            leave_scope(token)

        elapsed = perf_counter() - started
        self._settle_one(pair, done=True, effects=scope.batch)
        return self.report.succeeded(subscription, envelope, attempt, elapsed)

    def _settle_one(
        self, pair: Pair | None, *, done: bool, effects: RecordedBatch | None
    ) -> None:
        settlement = Settlement()
        _note(settlement, pair, done, effects)
        if settlement:
            self._settle(settlement)

    def _invoke(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        first_failed_at: datetime | None,
    ) -> tuple[Outcome, RecordedBatch | None]:
        scope = HandlerScope(envelope, subscription.name)
        token = enter_scope(scope)
        started = perf_counter()
        try:
            # Not even an empty span when tracing is off: this runs for every handler.
            if self.runtime.tracing is None:
                self._call(subscription, envelope)
            else:
                with self.runtime.tracing.handling(
                    envelope, subscription.name, attempt
                ):
                    self._call(subscription, envelope)
        except Exception as error:
            elapsed = perf_counter() - started
            outcome = self.report.failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )
            return outcome, None
        finally:
            leave_scope(token)

        elapsed = perf_counter() - started
        return self.report.succeeded(
            subscription, envelope, attempt, elapsed
        ), scope.batch

    def _call(self, subscription: Subscription, envelope: Envelope) -> None:
        result = subscription.handler(envelope.event)
        if result is not None and inspect.isawaitable(result):
            # A sync handler that returned an awaitable: run it on the process loop.
            self.runtime.loop.run(
                _awaited(result),
                context=contextvars.copy_context(),
                timeout_s=self.runtime.settings.handler_time_limit_s,
            )

    def _span(
        self, envelope: Envelope, subscription: Subscription, attempt: int
    ) -> AbstractContextManager[None]:
        tracing = self.runtime.tracing
        if tracing is None:
            return _NO_SPAN

        return tracing.handling(envelope, subscription.name, attempt)


def _note(
    settlement: Settlement,
    pair: Pair | None,
    done: bool,
    effects: RecordedBatch | None,
) -> None:
    """Add one handler's run (``done``: it succeeded) to what its message settles.

    ``pair`` is the (event id, handler) pair the run claimed, as it was claimed (a
    handler may change its event's id); None for an idempotent handler, which claims
    nothing and keeps no record.
    """
    if pair is None:
        if done and effects is not None:
            settlement.unrecorded.append(effects)
    elif done:
        settlement.completed.append((pair, effects))
    else:
        settlement.released.append(pair)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
