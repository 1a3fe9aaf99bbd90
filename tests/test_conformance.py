"""The behaviours of DESIGN.md section 3, run in eager mode, against a real
redis-server with a ``celery worker`` subprocess, and against RabbitMQ (publisher
confirms, durable queues; the state store stays on Redis): one suite, three
parametrisations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hidesync_events import configure, global_event_bus
from hidesync_events.redis_server import ThrowawayRedis
from tests.support import conformance as c
from tests.support.fleet import WorkerFleet
from tests.support.harness import Harness
from tests.support.rabbitmq import RabbitMQ


@pytest.fixture(scope="module")
def celery_fleet(redis_server: ThrowawayRedis) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(redis_server.url)
    fleet.start("conformance", concurrency=2)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def rabbitmq_fleet(
    rabbitmq: RabbitMQ, redis_server: ThrowawayRedis
) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(rabbitmq.url)
    fleet.start(
        "conformance-amqp", concurrency=2, env=rabbitmq.worker_env(redis_server.url)
    )
    yield fleet
    fleet.stop()


@pytest.fixture(params=["eager", "redis", "rabbitmq"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "eager":
        configure(mode="eager")
        return Harness("eager")

    if request.param == "redis":
        fleet: WorkerFleet = request.getfixturevalue("celery_fleet")
        configure(mode="celery", broker_url=fleet.broker_url, handler_modules=())
        return Harness("celery")

    request.getfixturevalue("rabbitmq_fleet")
    rabbitmq: RabbitMQ = request.getfixturevalue("rabbitmq")
    redis_server: ThrowawayRedis = request.getfixturevalue("redis_server")
    configure(**rabbitmq.settings(redis_server.url))
    return Harness("celery")


class TestDelivery:
    def test_each_handler_of_an_event_runs_once(self, harness: Harness) -> None:
        """A published event runs every handler of its type exactly once."""
        token = harness.token()

        event = c.Ping(token=token)
        harness.publish(event)

        [seen] = harness.records("on_ping", token)
        assert seen["event_id"] == event.event_id
        assert len(harness.records("on_any_event", token)) == 1

    def test_base_class_handlers_receive_subclasses(self, harness: Harness) -> None:
        """Subscribing to a base class receives its subclasses, even on another queue."""
        token = harness.token()

        harness.publish(c.PingOfTools(token=token))

        [seen] = harness.records("on_ping", token)
        assert seen["type"] == "PingOfTools"
        assert harness.records("on_any_event", token)[0]["type"] == "PingOfTools"

    def test_async_handlers_run(self, harness: Harness) -> None:
        """Async handlers run to completion, on a long-lived loop thread."""
        token = harness.token()

        harness.publish(c.AsyncJob(token=token))

        [seen] = harness.records("async_job", token)
        assert seen["thread"] == "hidesync-events-loop"


class TestRetries:
    def test_failing_handler_is_retried_alone(self, harness: Harness) -> None:
        """A handler failing twice runs three times; its sibling runs once."""
        token = harness.token()

        harness.publish(c.FlakyJob(token=token))

        attempts = harness.records("flaky", token, count=3)
        assert [line["attempt"] for line in attempts] == [1, 2, 3]
        assert len(harness.records("flaky_sibling", token)) == 1

    def test_exhausted_retries_end_in_dead_letters(self, harness: Harness) -> None:
        """After its policy's attempts a failing handler's event is a dead letter."""
        token = harness.token()
        event = c.DoomedJob(token=token)

        harness.publish(event)

        assert len(harness.records("doomed", token, count=3)) == 3
        [letter] = harness.dead_letters(event.event_id)
        assert letter.reason == "handler_failed"
        assert letter.handler == "tests.support.conformance:doomed"
        assert letter.attempts == 3
        assert letter.error_type == "builtins.ValueError"
        assert letter.error == f"hide {token} is not in stock"
        assert letter.envelope is not None
        assert token in letter.envelope
        assert letter.first_failed_at <= letter.last_failed_at


class TestIdempotentHandlers:
    def test_run_on_every_delivery_with_their_effects(self, harness: Harness) -> None:
        """The same event published twice: the idempotent handler runs (and applies
        its effects) twice, the handler beside it once."""
        token = harness.token()
        event = c.HideRestocked(token=token)

        harness.publish(event)
        harness.publish(event)

        assert len(harness.records("restock_count", token, count=2)) == 2
        assert len(harness.records("restock_once", token)) == 1
        counted = global_event_bus.runtime.kv.hget(
            f"conformance:restock:{token}", "counted"
        )
        assert counted == "2"

    def test_are_retried_like_any_other(self, harness: Harness) -> None:
        """An idempotent handler failing twice is retried until it succeeds."""
        token = harness.token()

        harness.publish(c.FlakyIdempotentJob(token=token))

        attempts = harness.records("flaky_idempotent", token, count=3)
        assert [line["attempt"] for line in attempts] == [1, 2, 3]


class TestEventsArriveIntact:
    def test_declared_fields_keep_their_types(self, harness: Harness) -> None:
        """Decimal, UUID, offset datetimes, dates, enums, bytes and sets come back as
        the same types and values."""
        token = harness.token()
        ordered_at = datetime(2026, 3, 12, 9, 30, tzinfo=timezone(timedelta(hours=2)))
        event = c.HideOrdered(
            token=token,
            price=Decimal("149.90"),
            supplier_ref=uuid.UUID("12345678-1234-5678-1234-567812345678"),
            ordered_at=ordered_at,
            delivery_day=date(2026, 3, 20),
            grain=c.Grain.CHROME_TANNED,
            swatch=b"\x00\xffhide",
            colours={"tan", "oxblood"},
        )

        harness.publish(event)

        [seen] = harness.records("hide_ordered", token)
        values = seen["values"]
        assert values["price"] == ["Decimal", "Decimal('149.90')"]
        assert values["supplier_ref"] == ["UUID", repr(event.supplier_ref)]
        assert values["ordered_at"][0] == "datetime"
        assert "tzinfo=TzInfo(7200)" in values["ordered_at"][1]
        assert values["delivery_day"] == ["date", "datetime.date(2026, 3, 20)"]
        assert values["grain"] == ["Grain", "<Grain.CHROME_TANNED: 'chrome'>"]
        assert values["swatch"] == ["bytes", repr(b"\x00\xffhide")]
        assert values["colours"] == ["set", ["oxblood", "tan"]]

    def test_legacy_init_events_arrive_intact(self, harness: Harness) -> None:
        """Events of the custom-__init__ style are rebuilt without calling it."""
        token = harness.token()

        harness.publish(
            c.LegacyHideShipped(token, "Leather Express", c.Grain.VEGETABLE_TANNED)
        )

        [seen] = harness.records("legacy_hide_shipped", token)
        assert seen["carrier"] == "Leather Express"
        assert seen["grain"] == "VEGETABLE_TANNED"
        assert seen["klass"] == "LegacyHideShipped"


class TestCausation:
    def test_events_published_by_a_handler_continue_its_chain(
        self, harness: Harness
    ) -> None:
        """A handler's own events carry its event as cause and keep its correlation."""
        token = harness.token()
        started = c.CascadeStarted(token=token)

        harness.publish(started)

        [first] = harness.records("cascade_started", token)
        [second] = harness.records("cascade_followed", token)
        assert first["correlation_id"] == started.event_id
        assert first["causation_id"] is None
        assert second["correlation_id"] == started.event_id
        assert second["causation_id"] == started.event_id


class TestPublishMany:
    def test_a_batch_keeps_per_event_semantics(self, harness: Harness) -> None:
        """Events published together are handled one by one: a failing event is
        retried and dead-lettered alone, the others run once."""
        token = harness.token()
        doomed = c.DoomedJob(token=token)

        receipts = global_event_bus.publish_many(
            [c.Ping(token=token), doomed, c.FlakyJob(token=token), c.Ping(token=token)]
        )

        assert 4 == len(receipts)
        assert 2 == len(harness.records("on_ping", token, count=2))
        assert [1, 2, 3] == [
            r["attempt"] for r in harness.records("flaky", token, count=3)
        ]
        assert 1 == len(harness.records("flaky_sibling", token))
        [letter] = harness.dead_letters(doomed.event_id)
        assert ("handler_failed", 3) == (letter.reason, letter.attempts)
