"""How one attempt of one handler ended, and what is done about it.

:class:`Reporter` turns an attempt into an :class:`Outcome` and does what each outcome
needs: count it, log it at the level its meaning calls for (error with the traceback
for a failure, info for a retry scheduled, warning when retries are spent), and keep a
dead letter when the handler's policy gives up.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from hidesync_events.codec import Envelope
from hidesync_events.completions import Claim, ClaimResult
from hidesync_events.dead_letters import Reason
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import Subscription

logger = logging.getLogger("hidesync.events.delivery")


class Status(StrEnum):
    """How one attempt of one handler ended."""

    DONE = "done"
    SKIPPED = "skipped"  # completed before: a duplicate delivery
    BUSY = "busy"  # another delivery runs it now: look again after ``delay_s``
    RETRY = "retry"  # failed: run again after ``delay_s``
    DEAD = "dead"  # failed for good: kept as a dead letter


class Outcome(NamedTuple):
    """The result of one attempt; ``delay_s`` is set for BUSY and RETRY.

    A named tuple: built for every handler of every event, it must cost little.
    """

    handler: str
    status: Status
    attempt: int
    delay_s: float = 0.0
    error: BaseException | None = None


#: Builds an Outcome from all five fields, in C: the named tuple's own constructor,
#: which fills in defaults, is Python code, and every handler run makes an outcome.
_new_outcome = tuple.__new__


class Reporter:
    """Counts, logs and, when a handler gives up, dead-letters the attempts."""

    def __init__(self, runtime: Runtime, *, retries_wait: bool) -> None:
        self.runtime = runtime
        self._retries_wait = retries_wait
        self._slow_s = runtime.settings.slow_handler_s
        self._longest_delay_s = runtime.settings.longest_retry_delay_s

    def not_claimed(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        claim: ClaimResult,
    ) -> Outcome:
        """The handler completed before (a duplicate), or runs elsewhere right now."""
        if claim.claim is Claim.DONE:
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
            claim.busy_for_s,
        )
        return Outcome(subscription.name, Status.BUSY, attempt, claim.busy_for_s)

    def duplicate_in_message(
        self, envelope: Envelope, subscriptions: Sequence[Subscription]
    ) -> None:
        """A second copy of an event in one batch message: dropped, and counted as a
        duplicate for each of its handlers."""
        for subscription in subscriptions:
            self.runtime.metrics.count("duplicates", subscription.name)
        logger.info(
            "skipped a second copy of %s %s in one message",
            envelope.event_type,
            envelope.event_id,
        )

    def succeeded(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        elapsed_s: float,
    ) -> Outcome:
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
                extra=log_fields(subscription, envelope, attempt),
            )
        return _new_outcome(
            Outcome, (subscription.name, Status.DONE, attempt, 0.0, None)
        )

    def failed(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        error: Exception,
        elapsed_s: float,
        first_failed_at: datetime | None,
    ) -> Outcome:
        """Log the failure once, then retry under the handler's policy or give up."""
        runtime = self.runtime
        runtime.metrics.handler_finished(
            subscription.name, envelope.event_type, elapsed_s, failed=True
        )
        policy = subscription.retry or runtime.default_retry
        fields = log_fields(subscription, envelope, attempt)
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
            if delay_s > self._longest_delay_s:
                delay_s = self._held_no_longer(subscription, envelope, delay_s)
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

        return self._give_up(subscription, envelope, attempt, error, first_failed_at)

    def _held_no_longer(
        self, subscription: Subscription, envelope: Envelope, delay_s: float
    ) -> float:
        # RetryLater may ask for any delay; a worker holds a retry unacknowledged,
        # and past the broker's limit the broker would hand it to a second worker.
        longest_s = self._longest_delay_s
        limit = self.runtime.settings.unacknowledged_limit
        logger.warning(
            "%s asked to retry %s %s in %.1fs; a retry waits at most %.1fs here (%s), "
            "so it runs again then",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
            delay_s,
            longest_s,
            f"{limit.what} less the hard time limit" if limit else "no broker limit",
        )
        return longest_s

    def _give_up(
        self,
        subscription: Subscription,
        envelope: Envelope,
        attempt: int,
        error: Exception,
        first_failed_at: datetime | None,
    ) -> Outcome:
        letter = self.runtime.dead_letters.record(
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
        self.runtime.metrics.count("dead_letters", Reason.HANDLER_FAILED)
        logger.warning(
            "gave up on %s for %s %s after %d attempts: %s: %s; kept as dead letter %s",
            subscription.name,
            envelope.event_type,
            envelope.event_id,
            attempt,
            type(error).__name__,
            error,
            letter.id,
            extra={
                **log_fields(subscription, envelope, attempt),
                "dead_letter": letter.id,
            },
        )
        return Outcome(subscription.name, Status.DEAD, attempt, error=error)


def log_fields(
    subscription: Subscription, envelope: Envelope, attempt: int
) -> dict[str, Any]:
    """The ``extra`` of every log record about one attempt, for JSON log formatters."""
    return {
        "event_type": envelope.event_type,
        "event_id": envelope.event_id,
        "handler": subscription.name,
        "attempt": attempt,
        "correlation_id": envelope.correlation_id,
    }
