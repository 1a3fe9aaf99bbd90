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
from hidesync_events.dead_letters import DeadLetter, Reason
from hidesync_events.errors import CodecError
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry, Subscription

logger = logging.getLogger("hidesync.events.delivery")

_handling: contextvars.ContextVar[Envelope | None] = contextvars.ContextVar(
    "hidesync_events_handling", default=None
)


def current_envelope() -> Envelope | None:
    """The envelope whose handler is running in this context, if any.

    Events published while a handler runs take its correlation id, and its event id
    as their causation id.
    """
    return _handling.get()


class Status(StrEnum):
    """How one attempt of one handler ended."""

    DONE = "done"
    SKIPPED = "skipped"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt; ``delay_s`` is set when ``status`` is RETRY."""

    handler: str
    status: Status
    attempt: int
    delay_s: float = 0.0
    error: BaseException | None = None


class Delivery:
    """Runs envelopes through the handlers of a registry, with a runtime's stores."""

    def __init__(self, registry: HandlerRegistry, runtime: Runtime) -> None:
        self.registry = registry
        self.runtime = runtime
        self._max_bytes = runtime.settings.max_envelope_bytes
        self._slow_s = runtime.settings.slow_handler_s

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
    ) -> Outcome:
        """Run one handler from synchronous code; async handlers run on the process loop."""
        if self._already_done(subscription, envelope):
            return Outcome(subscription.name, Status.SKIPPED, attempt)

        token = _handling.set(envelope)
        started = time.perf_counter()
        try:
            result = subscription.handler(envelope.event)
            if inspect.isawaitable(result):
                self.runtime.loop.run(
                    _awaited(result), context=contextvars.copy_context()
                )
        except Exception as error:
            elapsed = time.perf_counter() - started
            return self._failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )
        finally:
            _handling.reset(token)

        return self._succeeded(
            subscription, envelope, attempt, time.perf_counter() - started
        )

    async def run_async(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int = 1,
        first_failed_at: datetime | None = None,
    ) -> Outcome:
        """Run one handler from a coroutine; sync handlers run in a worker thread."""
        if self._already_done(subscription, envelope):
            return Outcome(subscription.name, Status.SKIPPED, attempt)

        token = _handling.set(envelope)
        started = time.perf_counter()
        try:
            if subscription.is_async:
                await subscription.handler(envelope.event)
            else:
                result = await asyncio.to_thread(subscription.handler, envelope.event)
                if inspect.isawaitable(result):
                    await result
        except Exception as error:
            elapsed = time.perf_counter() - started
            return self._failed(
                subscription, envelope, attempt, error, elapsed, first_failed_at
            )
        finally:
            _handling.reset(token)

        return self._succeeded(
            subscription, envelope, attempt, time.perf_counter() - started
        )

    # -- settle -------------------------------------------------------------------------

    def _already_done(self, subscription: Subscription, envelope: Envelope) -> bool:
        if not self.runtime.completions.is_done(envelope.event_id, subscription.name):
            return False

        self.runtime.metrics.count("duplicates", subscription.name)
        logger.debug(
            "skipped %s for %s %s: already done",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
        )
        return True

    def _succeeded(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        elapsed_s: float,
    ) -> Outcome:
        self.runtime.completions.mark_done(envelope.event_id, subscription.name)
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
            delay_s = policy.delay_s(attempt, error)
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
