"""RetryPolicy: which failures run again, and how long each retry waits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hidesync_events import RetryLater, RetryPolicy, Settings


class CutterJammed(Exception):
    """A failure a policy may list as retryable or not."""


class TestValidation:
    @pytest.mark.parametrize("max_attempts", [0, -1])
    def test_max_attempts_below_one_is_refused(self, max_attempts: int) -> None:
        """max_attempts counts the first run, so it must be at least 1."""
        with pytest.raises(ValueError, match=rf"at least 1, got {max_attempts}"):
            RetryPolicy(max_attempts=max_attempts)

    @pytest.mark.parametrize(
        "arguments",
        [
            {"backoff_s": -0.1},
            {"max_backoff_s": -1.0},
            {"max_backoff_s": float("inf")},
            {"backoff_s": float("nan")},
        ],
    )
    def test_a_negative_or_endless_backoff_is_refused(
        self, arguments: dict[str, float]
    ) -> None:
        """backoff_s and max_backoff_s must be finite and not negative."""
        with pytest.raises(ValueError, match="must be finite and not negative"):
            RetryPolicy(**arguments)

    def test_defaults(self) -> None:
        """The default policy: five attempts, 1 s backoff doubling up to 300 s, jitter."""
        policy = RetryPolicy()

        assert (5, 1.0, 300.0, True) == (
            policy.max_attempts,
            policy.backoff_s,
            policy.max_backoff_s,
            policy.jitter,
        )
        assert (Exception,) == policy.retry_on
        assert () == policy.never_retry

    def test_policy_is_immutable(self) -> None:
        """A policy is a frozen value."""
        policy = RetryPolicy()

        with pytest.raises(AttributeError):
            policy.max_attempts = 9


class TestShouldRetry:
    @pytest.mark.parametrize(
        ("attempt", "expected"), [(1, True), (2, True), (3, False), (4, False)]
    )
    def test_retries_until_max_attempts(self, attempt: int, expected: bool) -> None:
        """A failure retries while the attempt is below max_attempts."""
        policy = RetryPolicy(max_attempts=3)

        assert expected is policy.should_retry(CutterJammed(), attempt)

    def test_single_attempt_never_retries(self) -> None:
        """max_attempts=1 gives up after the first run."""
        assert RetryPolicy(max_attempts=1).should_retry(CutterJammed(), 1) is False

    @pytest.mark.parametrize(
        ("error", "expected"),
        [(ConnectionError(), True), (TimeoutError(), True), (CutterJammed(), False)],
    )
    def test_only_errors_in_retry_on_retry(
        self, error: Exception, expected: bool
    ) -> None:
        """Only errors that are instances of retry_on are retried."""
        policy = RetryPolicy(retry_on=(ConnectionError, TimeoutError))

        assert expected is policy.should_retry(error, 1)

    def test_never_retry_wins_over_retry_on(self) -> None:
        """An error in never_retry is not retried even though retry_on matches it."""
        policy = RetryPolicy(retry_on=(Exception,), never_retry=(CutterJammed,))

        assert policy.should_retry(CutterJammed(), 1) is False
        assert policy.should_retry(ValueError(), 1) is True

    def test_never_retry_matches_subclasses(self) -> None:
        """never_retry matches subclasses of the listed errors."""
        policy = RetryPolicy(never_retry=(LookupError,))

        assert policy.should_retry(KeyError("strap"), 1) is False

    def test_retry_later_retries_whatever_retry_on_says(self) -> None:
        """RetryLater asks for a retry even when retry_on does not list it."""
        policy = RetryPolicy(retry_on=(ConnectionError,))

        assert policy.should_retry(RetryLater(5.0), 1) is True

    def test_retry_later_counts_as_an_attempt(self) -> None:
        """RetryLater on the last attempt is not retried."""
        policy = RetryPolicy(max_attempts=2)

        assert policy.should_retry(RetryLater(5.0), 2) is False


class TestDelay:
    @pytest.mark.parametrize(
        ("attempt", "expected_s"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)]
    )
    def test_grows_exponentially_without_jitter(
        self, attempt: int, expected_s: float
    ) -> None:
        """Without jitter the delay after attempt n is backoff_s * 2**(n-1)."""
        policy = RetryPolicy(backoff_s=2.0, jitter=False)

        assert expected_s == policy.delay_s(attempt)

    @pytest.mark.parametrize(
        ("attempt", "expected_s"), [(1, 3.0), (2, 6.0), (3, 10.0), (10, 10.0)]
    )
    def test_is_capped_by_max_backoff(self, attempt: int, expected_s: float) -> None:
        """The delay never exceeds max_backoff_s."""
        policy = RetryPolicy(backoff_s=3.0, max_backoff_s=10.0, jitter=False)

        assert expected_s == policy.delay_s(attempt)

    @pytest.mark.parametrize("attempt", [1, 2, 5])
    def test_a_cap_below_the_backoff_makes_every_delay_the_cap(
        self, attempt: int
    ) -> None:
        """max_backoff_s below backoff_s is a fixed delay, the first retry's too."""
        settings = Settings(retry_backoff_s=1.0, retry_max_backoff_s=0.5)
        policy = RetryPolicy.from_settings(settings)

        assert 0.5 == replace(policy, jitter=False).delay_s(attempt)
        assert 0.5 == policy.longest_delay_s

    @pytest.mark.parametrize(
        ("attempt", "expected_s"), [(1, 0.05), (2, 0.1), (3, 0.2), (4, 0.4)]
    )
    def test_handles_sub_second_backoff(self, attempt: int, expected_s: float) -> None:
        """A backoff below a second keeps its precision."""
        policy = RetryPolicy(backoff_s=0.05, jitter=False)

        assert pytest.approx(expected_s) == policy.delay_s(attempt)

    @pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12])
    def test_jitter_stays_between_zero_and_the_cap(self, attempt: int) -> None:
        """With jitter every delay lies in [0, min(max_backoff_s, backoff_s * 2**(n-1))]."""
        policy = RetryPolicy(backoff_s=0.5, max_backoff_s=8.0, jitter=True)
        cap_s = min(8.0, 0.5 * 2 ** (attempt - 1))

        delays = [policy.delay_s(attempt) for _ in range(500)]

        assert all(0.0 <= delay <= cap_s for delay in delays)

    @pytest.mark.parametrize("jitter", [True, False])
    def test_honours_retry_later_delay(self, jitter: bool) -> None:
        """RetryLater's own delay is used as it is, even beyond max_backoff_s."""
        policy = RetryPolicy(backoff_s=1.0, max_backoff_s=10.0, jitter=jitter)

        assert 42.5 == policy.delay_s(1, RetryLater(42.5))

    def test_negative_retry_later_delay_means_now(self) -> None:
        """A negative RetryLater delay is read as no delay."""
        assert 0.0 == RetryPolicy().delay_s(1, RetryLater(-3.0))

    def test_other_errors_use_the_backoff(self) -> None:
        """An ordinary error passed to delay_s gets the computed backoff."""
        policy = RetryPolicy(backoff_s=2.0, jitter=False)

        assert 4.0 == policy.delay_s(2, CutterJammed())


class TestRetryLater:
    def test_keeps_its_delay_and_reason(self) -> None:
        """RetryLater carries the delay asked for and the reason as its message."""
        signal = RetryLater(30.0, "the tannery is closed")

        assert 30.0 == signal.delay_s
        assert "the tannery is closed" == signal.reason
        assert "the tannery is closed" == str(signal)

    def test_message_without_a_reason_names_the_delay(self) -> None:
        """Without a reason the message says when the retry is wanted."""
        assert "handler asked to be retried in 2.5s" == str(RetryLater(2.5))


class TestLongestDelay:
    @pytest.mark.parametrize(
        ("policy", "expected_s"),
        [
            (RetryPolicy(max_attempts=1), 0.0),
            (RetryPolicy(max_attempts=2, backoff_s=1.5), 1.5),
            (RetryPolicy(max_attempts=5, backoff_s=1.0), 8.0),
            (RetryPolicy(max_attempts=20, backoff_s=1.0, max_backoff_s=60.0), 60.0),
        ],
        ids=["single-attempt", "one-retry", "doubling", "capped"],
    )
    def test_is_the_wait_before_the_last_attempt(
        self, policy: RetryPolicy, expected_s: float
    ) -> None:
        """longest_delay_s is the capped delay before the last attempt."""
        assert expected_s == policy.longest_delay_s

    @pytest.mark.parametrize("max_attempts", [2, 3, 6, 11, 21])
    @pytest.mark.parametrize("backoff_s", [0.25, 0.0015])
    def test_bounds_every_delay(self, max_attempts: int, backoff_s: float) -> None:
        """No delay the policy computes exceeds longest_delay_s, down to the
        millisecond the delays are rounded to."""
        policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=30.0,
            jitter=False,
        )

        delays = [policy.delay_s(attempt) for attempt in range(1, max_attempts)]

        assert policy.longest_delay_s == max(delays)


class TestFromSettings:
    def test_reads_the_retry_settings(self) -> None:
        """from_settings builds the default policy from the retry_* settings."""
        settings = Settings(
            retry_max_attempts=3,
            retry_backoff_s=0.5,
            retry_max_backoff_s=20.0,
            retry_jitter=False,
        )

        policy = RetryPolicy.from_settings(settings)

        assert (
            RetryPolicy(max_attempts=3, backoff_s=0.5, max_backoff_s=20.0, jitter=False)
            == policy
        )
