"""The body of a worker's ``deliver`` task, run in this process on in-memory stores."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hidesync_events import (
    ConfigurationError,
    RetryLater,
    RetryPolicy,
    ToolCheckedOut,
    effects,
)
from hidesync_events import delivery as delivery_module
from hidesync_events.codec import encode
from hidesync_events.delivery import Delivery
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.runtime import Runtime
from hidesync_events.settings import Settings
from hidesync_events.subscriptions import HandlerRegistry
from hidesync_events.worker import WorkerDelivery, check_fleet_settings

MAX_BYTES = 1024 * 1024


def _never_resend(*args: Any) -> None:
    raise AssertionError("nothing here is retried")


class TestBatchDecoding:
    def test_an_unforeseen_decoding_error_keeps_the_message_and_its_batch(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When decoding one envelope of a batch fails with an error the codec did not
        foresee, that envelope becomes a dead letter naming the error, and the other
        events of the batch are handled."""
        handled: list[int] = []
        registry = HandlerRegistry()
        registry.add(ToolCheckedOut, lambda event: handled.append(event.tool_id))
        runtime = Runtime.in_memory(Settings())
        worker = WorkerDelivery(Delivery(registry, runtime), _never_resend)
        good, broken = (
            encode(ToolCheckedOut(tool_id=n), max_bytes=MAX_BYTES) for n in (1, 2)
        )
        decode = delivery_module.decode

        def decode_or_fail(raw: str, *, max_bytes: int) -> Any:
            if raw == broken:
                raise RuntimeError("a library bug")
            return decode(raw, max_bytes=max_bytes)

        monkeypatch.setattr(delivery_module, "decode", decode_or_fail)

        worker([broken, good], message_id="m1", queue="q", redelivered=False)

        [letter] = runtime.dead_letters.list()
        assert [1] == handled
        assert "malformed" == letter.reason
        assert "RuntimeError: a library bug" in letter.error
        assert broken == letter.envelope


class TestOneEventTwiceInABatch:
    def test_runs_its_handlers_and_effects_once(self) -> None:
        """A batch holding one event twice (published twice in one publish_many)
        runs each handler once and applies its effects once, as two messages
        would; the copy is counted as a duplicate."""
        runs: list[int] = []

        def reserve(event: ToolCheckedOut) -> None:
            runs.append(event.tool_id)
            effects().hincrby("tools:reserved", str(event.tool_id))

        registry = HandlerRegistry()
        registry.add(ToolCheckedOut, reserve, name="reserve")
        runtime = Runtime.in_memory(Settings())
        worker = WorkerDelivery(Delivery(registry, runtime), _never_resend)
        text = encode(ToolCheckedOut(tool_id=7), max_bytes=MAX_BYTES)

        worker([text, text], message_id="m1", queue="q", redelivered=False)

        assert [7] == runs
        assert "1" == runtime.kv.hget("tools:reserved", "7")
        assert 1 == runtime.metrics.snapshot()["duplicates"]["reserve"]


class TestStateStoreOutage:
    def test_settling_waits_for_redis_to_come_back(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """Redis stops while a handler runs and is back a second later: the
        delivery's settling waits for it, so the completion record and the effects
        land (once) instead of going with the acknowledged message."""
        settings = Settings(
            mode="celery", broker_url=fresh_redis.url, state_url=fresh_redis.url
        )
        runtime = Runtime.shared(settings)
        restarted = threading.Event()

        def reserve(event: ToolCheckedOut) -> None:
            effects().hincrby("tools:reserved", str(event.tool_id))
            fresh_redis.stop()
            threading.Timer(1.0, lambda: (fresh_redis.start(), restarted.set())).start()

        registry = HandlerRegistry()
        registry.add(ToolCheckedOut, reserve, name="reserve")
        worker = WorkerDelivery(Delivery(registry, runtime), _never_resend)
        event = ToolCheckedOut(tool_id=7)

        worker(
            [encode(event, max_bytes=MAX_BYTES)],
            message_id="m1",
            queue="q",
            redelivered=False,
        )

        assert restarted.is_set()
        assert "1" == runtime.kv.hget("tools:reserved", "7")
        assert runtime.completions.is_done(event.event_id, "reserve")


class TestRetryDelays:
    @pytest.mark.parametrize(
        ("broker_url", "sent_after_s"),
        [
            # The visibility timeout (3,600 s) less the hard time limit (330 s).
            ("redis://127.0.0.1:6379/0", 3270.0),
            ("REDIS://127.0.0.1:6379/0", 3270.0),
            ("sentinel://127.0.0.1:26379", 3270.0),
            # RabbitMQ's consumer timeout (1,800 s) less the hard time limit.
            ("amqp://guest:guest@127.0.0.1:5672//", 1470.0),
            # No broker limit: held as asked, up to seven days.
            ("memory://", 7200.0),
        ],
    )
    def test_a_retry_waits_no_longer_than_the_broker_holds_it(
        self, broker_url: str, sent_after_s: float, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A handler may ask for any delay (RetryLater), but a worker holds a retry
        unacknowledged, and a broker gives a message held past its limit to another
        worker, which would run the handler while the first still holds it: the
        retry is sent for the longest the broker allows, with a warning saying so,
        and the retry logged is the one sent."""
        sent = self._retried({"broker_url": broker_url}, RetryLater(7200), caplog)

        assert [("later", sent_after_s)] == sent
        warned = [r for r in caplog.records if "a retry waits at most" in r.message]
        assert len(warned) == (0 if sent_after_s == 7200.0 else 1)
        assert any(f"in {sent_after_s:.2f}s" in r.message for r in caplog.records)

    @pytest.mark.parametrize("delay_s", [float("inf"), 1e12])
    @pytest.mark.parametrize(
        "settings",
        [
            {"broker_url": "memory://"},
            # A broker limit past a week does not lift the week.
            {"broker_url": "amqp://127.0.0.1//", "amqp_consumer_timeout_s": 10**12},
        ],
    )
    def test_a_delay_no_clock_can_reach_is_held_at_most_seven_days(
        self,
        delay_s: float,
        settings: dict[str, Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An endless delay would overflow the retry's due time (and lose the
        retries of the message's other handlers)."""
        sent = self._retried(settings, RetryLater(delay_s), caplog)

        assert [("later", 7 * 24 * 3600.0)] == sent

    @staticmethod
    def _retried(
        settings: dict[str, Any], request: RetryLater, caplog: pytest.LogCaptureFixture
    ) -> list[tuple[str, float]]:
        caplog.set_level("INFO", logger="hidesync.events.delivery")
        sent: list[tuple[str, float]] = []

        def later(event: ToolCheckedOut) -> None:
            raise request

        registry = HandlerRegistry()
        registry.add(ToolCheckedOut, later, name="later")
        runtime = Runtime.in_memory(Settings(**settings))
        worker = WorkerDelivery(
            Delivery(registry, runtime),
            lambda queue, envelope, kwargs, delay_s: sent.append(
                (kwargs["handler"], delay_s)
            ),
        )
        text = encode(ToolCheckedOut(tool_id=7), max_bytes=MAX_BYTES)

        worker([text], message_id="m1", queue="q", redelivered=False)
        return sent


class TestFleetSettingsCheck:
    @pytest.mark.parametrize(
        ("broker_url", "limit"),
        [
            ("redis://127.0.0.1:6379/0", "the Redis visibility timeout"),
            ("amqp://guest:guest@127.0.0.1:5672//", "RabbitMQ's consumer timeout"),
        ],
    )
    def test_a_policy_waiting_past_the_limit_less_the_run_is_refused(
        self, broker_url: str, limit: str
    ) -> None:
        """A retry is held unacknowledged for its delay and then runs: a policy
        whose longest wait leaves no room for the run, under the broker's limit,
        is refused at start rather than cut short at every retry."""
        registry = HandlerRegistry()
        slow = RetryPolicy(max_attempts=2, backoff_s=1700.0, max_backoff_s=1700.0)
        registry.add(ToolCheckedOut, lambda event: None, name="slow", retry=slow)
        settings = Settings(broker_url=broker_url, visibility_timeout_s=1800)

        with pytest.raises(ConfigurationError, match=limit) as refused:
            check_fleet_settings(settings, registry)

        assert "slow's retry policy waits up to 1700s" in str(refused.value)

    def test_a_policy_at_the_limit_is_refused(self) -> None:
        """Waiting exactly the limit less the run leaves no room: refused."""
        registry = HandlerRegistry()
        at = RetryPolicy(max_attempts=2, backoff_s=1470.0, max_backoff_s=1470.0)
        registry.add(ToolCheckedOut, lambda event: None, name="at", retry=at)

        with pytest.raises(ConfigurationError, match="at's retry policy"):
            check_fleet_settings(Settings(broker_url="amqp://127.0.0.1//"), registry)

    @pytest.mark.parametrize("broker_url", ["", "rabbit.internal:5672"])
    def test_a_url_without_a_scheme_is_checked_as_kombu_reads_it(
        self, broker_url: str
    ) -> None:
        """kombu takes a URL without a scheme for AMQP: so does the check."""
        settings = Settings(broker_url=broker_url)

        assert settings.unacknowledged_limit is not None
        assert "RabbitMQ's consumer timeout" == settings.unacknowledged_limit.what

    def test_many_attempts_are_checked_without_overflowing(self) -> None:
        """The longest delay of a policy of a thousand attempts is its cap."""
        registry = HandlerRegistry()
        settings = Settings(
            broker_url="redis://127.0.0.1:6379/0", retry_max_attempts=1100
        )

        check_fleet_settings(settings, registry)

        assert 300.0 == RetryPolicy(max_attempts=1100).longest_delay_s

    def test_a_broker_without_a_limit_is_not_checked(self) -> None:
        registry = HandlerRegistry()
        slow = RetryPolicy(max_attempts=2, backoff_s=9e5, max_backoff_s=9e5)
        registry.add(ToolCheckedOut, lambda event: None, name="slow", retry=slow)

        check_fleet_settings(Settings(broker_url="memory://"), registry)
