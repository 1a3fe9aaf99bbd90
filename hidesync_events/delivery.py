"""The delivery path shared by eager mode and Celery workers.

One envelope goes through named steps: :meth:`Delivery.decode` (refusing and
dead-lettering what is not a valid envelope), :meth:`Delivery.targets` (the handlers of
the event's type and its bases), :meth:`Delivery.run` or :meth:`Delivery.run_async`
(one handler, isolated), which settles the attempt: recorded as done, to be retried
after a delay, or dead-lettered. Transports decide *when* a retry runs: eager mode
at once, a worker by sending a delayed message for that one handler.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hidesync_events.codec import Envelope, decode, peek_header
from hidesync_events.completions import Claim
from hidesync_events.dead_letters import DeadLetter, Reason
from hidesync_events.errors import CodecError
from hidesync_events.handling import (
    HandlerScope,
    current_envelope,
    enter_scope,
    handling,
    leave_scope,
)
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry, Subscription

logger = logging.getLogger("hidesync.events.delivery")

__all__ = ["Delivery", "Outcome", "Status", "current_envelope"]


class Status(StrEnum):
    """How one attempt of one handler ended."""

    DONE = "done"
    SKIPPED = "skipped"  # completed before: a duplicate delivery
    BUSY = "busy"  # another delivery runs it now: look again after ``delay_s``
    RETRY = "retry"  # failed: run again after ``delay_s``
    DEAD = "dead"  # failed for good: kept as a dead letter


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt; ``delay_s`` is set for BUSY and RETRY."""

    handler: str
    status: Status
    attempt: int
    delay_s: float = 0.0
    error: BaseException | None = None


class Delivery:
    """Runs envelopes through the handlers of a registry, with a runtime's stores."""

    def __init__(
        self, registry: HandlerRegistry, runtime: Runtime, *, retries_wait: bool = True
    ) -> None:
        """``retries_wait=False`` (eager mode) runs retries at once, without a delay."""
        self.registry = registry
        self.runtime = runtime
        self._retries_wait = retries_wait
        self._max_bytes = runtime.settings.max_envelope_bytes
        self._slow_s = runtime.settings.slow_handler_s
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

    # -- run one handler ----------------------------------------------------------------

    def run(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
        *,
        owner: str | None = None,
    ) -> Outcome:
        """Run one handler from synchronous code; async handlers run on the process loop.

        ``owner`` identifies this delivery in the handler's claim: a message delivered
        again after its process died passes the same owner and takes its claim over.
        """
        skipped = self._claim(subscription, envelope, attempt, owner)
        if skipped is not None:
            return skipped

        scope = HandlerScope(envelope, self.runtime.kv)
        token = enter_scope(scope)
        started = time.perf_counter()
        try:
            result = subscription.handler(envelope.event)
            if result is not None and inspect.isawaitable(result):
                self.runtime.loop.run(
                    _awaited(result),
                    context=contextvars.copy_context(),
                    timeout_s=self.runtime.settings.handler_time_limit_s,
                )
        except Exception as error:
            elapsed = time.perf_counter() - started
            return self._failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )
        finally:
            leave_scope(token)

        elapsed = time.perf_counter() - started
        return self._succeeded(subscription, envelope, attempt, elapsed, scope)

    async def run_async(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
    ) -> Outcome:
        """Run one handler from a coroutine; sync handlers run in a worker thread."""
        skipped = self._claim(subscription, envelope, attempt, None)
        if skipped is not None:
            return skipped

        started = time.perf_counter()
        try:
            with handling(envelope, self.runtime.kv) as scope:
                if subscription.is_async:
                    await subscription.handler(envelope.event)
                else:
                    result = await asyncio.to_thread(
                        subscription.handler, envelope.event
                    )
                    if inspect.isawaitable(result):
                        await result
        except Exception as error:
            elapsed = time.perf_counter() - started
            return self._failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )

        elapsed = time.perf_counter() - started
        return self._succeeded(subscription, envelope, attempt, elapsed, scope)

    # -- settle -------------------------------------------------------------------------

    def _claim(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        owner: str | None,
    ) -> Outcome | None:
        # None: this delivery runs the handler. Otherwise, why it does not.
        claim, busy_for_s = self.runtime.completions.claim(
            envelope.event_id,
            subscription.name,
            owner=owner,
            ttl_s=self._claim_ttl_s,
        )
        if claim is Claim.CLAIMED:
            return None

        if claim is Claim.DONE:
            self.runtime.metrics.count("duplicates", subscription.name)
            logger.debug(
                "skipped %s for %s %s: already done",
                subscription.name,
                envelope.event_type,
                envelope.event_id,
            )
            return Outcome(subscription.name, Status.SKIPPED, attempt)

        logger.debug(
            "%s for %s %s is running elsewhere; looking again in %.1fs",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
            busy_for_s,
        )
        return Outcome(subscription.name, Status.BUSY, attempt, busy_for_s)

    def _succeeded(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        elapsed_s: float,
        scope: HandlerScope,
    ) -> Outcome:
        self.runtime.completions.complete(
            envelope.event_id, subscription.name, scope.batch
        )
        self.runtime.metrics.handler_finished(
            subscription.name, envelope.event_type, elapsed_s, failed=False
        )
        if elapsed_s >= self._slow_s:
            logger.warning(
                "slow handler %s took %.3fs on %s %s",
                subscription.name,
                elapsed_s,
                envelope.event_type,
                envelope.event_id,
                extra=_log_fields(subscription, envelope, attempt),
            )
        return Outcome(subscription.name, Status.DONE, attempt)

    def _failed(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        error: Exception,
        elapsed_s: float,
        first_failed_at: datetime | None,
    ) -> Outcome:
        runtime = self.runtime
        runtime.completions.release(envelope.event_id, subscription.name)
        runtime.metrics.handler_finished(
            subscription.name, envelope.event_type, elapsed_s, failed=True
        )
        policy = subscription.retry or runtime.default_retry
        fields = _log_fields(subscription, envelope, attempt)
        logger.error(
            "handler %s failed on %s %s (attempt %d of %d)",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
            attempt,
            policy.max_attempts,
            exc_info=error,
            extra=fields,
        )

        if policy.should_retry(error, attempt):
            delay_s = policy.delay_s(attempt, error) if self._retries_wait else 0.0
            runtime.metrics.count("retries", subscription.name)
            logger.info(
                "retry %d of %s for %s %s in %.2fs",
                attempt,
                subscription.name,
                envelope.event_type,
                envelope.event_id,
                delay_s,
                extra=fields,
            )
            return Outcome(subscription.name, Status.RETRY, attempt, delay_s, error)

        letter = runtime.dead_letters.record(
            reason=Reason.HANDLER_FAILED,
            raw=envelope.text,
            error=error,
            attempts=attempt,
            first_failed_at=first_failed_at or datetime.now(UTC),
            event_type=envelope.event_type,
            event_id=envelope.event_id,
            handler=subscription.name,
            traceback="".join(traceback.format_exception(error)),
        )
        runtime.metrics.count("dead_letters", Reason.HANDLER_FAILED)
        logger.warning(
            "gave up on %s for %s %s after %d attempts: %s: %s; kept as dead letter %s",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
            attempt,
            type(error).__name__,
            error,
            letter.id,
            extra={**fields, "dead_letter": letter.id},
        )
        return Outcome(subscription.name, Status.DEAD, attempt, error=error)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _log_fields(
    subscription: Subscription, envelope: Envelope, attempt: int
) -> dict[str, Any]:
    return {
        "event_type": envelope.event_type,
        "event_id": envelope.event_id,
        "handler": subscription.name,
        "attempt": attempt,
        "correlation_id": envelope.correlation_id,
    }


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
