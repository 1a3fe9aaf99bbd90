"""Retry policies for handlers, and the signal a handler raises to ask for a retry.

A policy is data: how many attempts, how the delay grows, which errors retry and which
never do. The delay is computed in one place, :meth:`RetryPolicy.delay_s`, on top of
Celery's own exponential-backoff helper (full jitter, capped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from celery.utils.time import get_exponential_backoff_interval

from hidesync_events.settings import Settings


class RetryLater(Exception):
    """Raised by a handler to be run again after ``delay_s`` seconds.

    It counts as an attempt: once the policy's ``max_attempts`` is reached the event
    goes to the dead letters like any other failure.
    """

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"handler asked to be retried in {delay_s}s")
        # Seconds as a float, as every delay is computed and logged.
        self.delay_s = float(delay_s)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one handler is retried.

    ``max_attempts`` counts the first run: 5 means one run and up to four retries.
    The n-th retry waits a random time between 0 and ``backoff_s * 2**(n-1)`` seconds
    (``jitter=True``, "full jitter") or exactly that long, never more than
    ``max_backoff_s``. An error listed in ``never_retry`` goes straight to the dead
    letters; otherwise errors listed in ``retry_on`` are retried.
    """

    max_attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    never_retry: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be at least 1, got {self.max_attempts}"
            )

        if not (0 <= self.backoff_s < math.inf and 0 <= self.max_backoff_s < math.inf):
            raise ValueError(
                f"backoff_s and max_backoff_s must be finite and not negative, got "
                f"backoff_s={self.backoff_s!r}, max_backoff_s={self.max_backoff_s!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The default policy, from ``HIDESYNC_EVENTS_RETRY_*`` settings."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            backoff_s=settings.retry_backoff_s,
            max_backoff_s=settings.retry_max_backoff_s,
            jitter=settings.retry_jitter,
        )

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether a handler that raised ``error`` on attempt ``attempt`` runs again."""
        if attempt >= self.max_attempts:
            return False

        if isinstance(error, RetryLater):
            return True

        if isinstance(error, self.never_retry):
            return False

        return isinstance(error, self.retry_on)

    def delay_s(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1 for the first run)."""
        if isinstance(error, RetryLater):
            return max(0.0, error.delay_s)

        # Celery's helper works in whole units; milliseconds keep sub-second policies.
        delay_ms: int = get_exponential_backoff_interval(
            factor=round(self.backoff_s * 1000),
            retries=attempt - 1,
            maximum=round(self.max_backoff_s * 1000),
            full_jitter=self.jitter,
        )
        return delay_ms / 1000

    @property
    def longest_delay_s(self) -> float:
        """The longest wait this policy can ask for between two attempts."""
        if self.max_attempts == 1:
            return 0.0

        # In whole milliseconds, as delay_s computes it. Past 2**64 any finite cap has
        # long been reached (and the power overflows).
        doublings = min(self.max_attempts - 2, 64)
        longest_ms = round(self.backoff_s * 1000) << doublings
        return min(round(self.max_backoff_s * 1000), longest_ms) / 1000
