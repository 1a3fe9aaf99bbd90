"""EventBus in eager mode (DESIGN.md section 3, "Dispatch"): what publish does with sync
and async handlers, failures, retries, dead letters, metrics, correlation, duplicates,
and the FastAPI lifespan hook.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from hidesync_events import (
    ConfigurationError,
    DomainEvent,
    EventBus,
    Receipt,
    RetryLater,
    RetryPolicy,
    Settings,
    current_envelope,
    setup_event_handlers,
)
from hidesync_events.codec import Envelope, decode

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
THREE_ATTEMPTS = RetryPolicy(max_attempts=3, backoff_s=0.01)


class HideDyed(DomainEvent, category="eager_tests", event_name="EagerTestHideDyed"):
    hide_id: int = 0
    colour: str = ""


class StrapCut(DomainEvent, category="eager_tests", event_name="EagerTestStrapCut"):
    strap_id: int = 0


class BuckleFitted(
    DomainEvent, category="eager_tests", event_name="EagerTestBuckleFitted"
):
    strap_id: int = 0


def name_of(handler: Callable[..., Any]) -> str:
    """The default name a handler defined in this module is subscribed under."""
    return f"{__name__}:{handler.__qualname__}"


def delivery_records(
    caplog: pytest.LogCaptureFixture, level: int
) -> list[logging.LogRecord]:
    """The records the delivery path logged at exactly ``level``."""
    return [
        record
        for record in caplog.records
        if record.name == "hidesync.events.delivery" and record.levelno == level
    ]


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing every level of the library's loggers."""
    caplog.set_level(logging.DEBUG, logger="hidesync.events")
    return caplog


# Three ways to publish in eager mode; handlers must run to completion in each.


def publish_without_loop(bus: EventBus, event: DomainEvent) -> None:
    bus.publish(event)


def publish_in_running_loop(bus: EventBus, event: DomainEvent) -> None:
    async def scenario() -> None:
        bus.publish(event)
        await bus.drain()

    asyncio.run(scenario())


def publish_async(bus: EventBus, event: DomainEvent) -> None:
    asyncio.run(bus.publish_async(event))


every_publish_style = pytest.mark.parametrize(
    "publish",
    [publish_without_loop, publish_in_running_loop, publish_async],
    ids=["publish", "publish-in-loop", "publish_async"],
)


class TestPublish:
    def test_returns_a_delivered_receipt(self, bus: EventBus) -> None:
        """publish returns a Receipt for the event with status "delivered"."""
        event = HideDyed(hide_id=1)

        receipt = bus.publish(event)

        assert Receipt(event.event_id, "delivered") == receipt

    def test_sync_handlers_run_before_publish_returns(self, bus: EventBus) -> None:
        """Every sync handler has run when publish returns."""
        seen: list[str] = []

        def reserve_dye(event: HideDyed) -> None:
            seen.append(f"reserve {event.colour}")

        def notify_dyer(event: HideDyed) -> None:
            seen.append(f"notify {event.colour}")

        bus.subscribe(HideDyed, reserve_dye)
        bus.subscribe(HideDyed, notify_dyer)
        bus.publish(HideDyed(colour="oxblood"))

        assert ["reserve oxblood", "notify oxblood"] == seen

    def test_handlers_get_a_decoded_copy(self, bus: EventBus) -> None:
        """A handler receives an equal event, decoded from the envelope, not the
        publisher's object."""
        received: list[HideDyed] = []

        def keep(event: HideDyed) -> None:
            received.append(event)

        bus.subscribe(HideDyed, keep)
        event = HideDyed(hide_id=4, colour="tan")
        bus.publish(event)

        [copy] = received
        assert event == copy
        assert event is not copy

    @pytest.mark.parametrize(
        "not_an_event",
        [{"hide_id": 1}, HideDyed, None, "EagerTestHideDyed"],
        ids=["dict", "class", "None", "wire-name"],
    )
    def test_non_event_is_a_type_error(
        self, bus: EventBus, not_an_event: object
    ) -> None:
        """publish refuses anything but an event instance, saying how to build one."""
        with pytest.raises(
            TypeError, match="publish\\(\\) takes a DomainEvent instance"
        ):
            bus.publish(not_an_event)

    def test_event_without_handlers_is_delivered(self, bus: EventBus) -> None:
        """An event nobody handles is still delivered, and counted."""
        receipt = bus.publish(StrapCut())

        assert "delivered" == receipt.status
        assert 1 == bus.metrics.snapshot()["delivered"]["EagerTestStrapCut"]


class TestFailureIsolation:
    def test_failing_handler_does_not_stop_the_others(self, bus: EventBus) -> None:
        """A handler that raises neither stops the handlers after it nor reaches the
        publisher."""
        seen: list[str] = []

        def spill_dye(event: HideDyed) -> None:
            raise ValueError("dye spilled")

        def dry_hide(event: HideDyed) -> None:
            seen.append("dried")

        bus.subscribe(HideDyed, spill_dye, retry=ONE_ATTEMPT)
        bus.subscribe(HideDyed, dry_hide)

        bus.publish(HideDyed())

        assert ["dried"] == seen

    def test_failure_is_logged_once_with_its_context(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """A failure is logged once at ERROR with event type, event id, handler name,
        attempt and the traceback."""

        def spill_dye(event: HideDyed) -> None:
            raise ValueError("dye spilled")

        bus.subscribe(HideDyed, spill_dye, retry=ONE_ATTEMPT)
        event = HideDyed()

        bus.publish(event)

        [record] = delivery_records(caplog_all, logging.ERROR)
        assert "EagerTestHideDyed" == record.event_type
        assert event.event_id == record.event_id
        assert name_of(spill_dye) == record.handler
        assert 1 == record.attempt
        assert record.exc_info is not None
        assert ValueError is record.exc_info[0]
        assert "dye spilled" in caplog_all.text
        assert name_of(spill_dye) in record.getMessage()
        assert event.event_id in record.getMessage()

    def test_each_attempt_is_logged_once(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """A handler failing on every attempt is logged once per attempt."""

        def spill_dye(event: HideDyed) -> None:
            raise ValueError("dye spilled")

        bus.subscribe(HideDyed, spill_dye, retry=THREE_ATTEMPTS)

        bus.publish(HideDyed())

        records = delivery_records(caplog_all, logging.ERROR)
        assert [1, 2, 3] == [record.attempt for record in records]

    def test_library_logs_under_its_own_namespace(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """Every record the library logs comes from a logger under hidesync.events."""

        def spill_dye(event: HideDyed) -> None:
            raise ValueError("dye spilled")

        bus.subscribe(HideDyed, spill_dye, retry=THREE_ATTEMPTS)

        bus.publish(HideDyed())

        assert caplog_all.records
        assert all(r.name.startswith("hidesync.events.") for r in caplog_all.records)


class TestAsyncHandlers:
    def test_without_a_loop_they_finish_before_publish_returns(
        self, bus: EventBus
    ) -> None:
        """With no running loop, async handlers complete on the process's handler
        loop thread before publish returns."""
        threads: list[str] = []

        async def dye_slowly(event: HideDyed) -> None:
            await asyncio.sleep(0)
            threads.append(threading.current_thread().name)

        bus.subscribe(HideDyed, dye_slowly)

        bus.publish(HideDyed())

        assert ["hidesync-events-loop"] == threads

    def test_inside_a_loop_they_are_scheduled_and_drained(self, bus: EventBus) -> None:
        """Inside a running loop, publish runs sync handlers at once and schedules
        async ones as tasks on that loop, which drain() waits for."""
        seen: list[str] = []

        async def dye_slowly(event: HideDyed) -> None:
            seen.append(f"async on {threading.current_thread().name}")

        def note_dye(event: HideDyed) -> None:
            seen.append("sync")

        bus.subscribe(HideDyed, dye_slowly)
        bus.subscribe(HideDyed, note_dye)

        async def scenario() -> tuple[list[str], int]:
            bus.publish(HideDyed())
            seen_at_return = list(seen)
            return seen_at_return, await bus.drain()

        seen_at_return, left = asyncio.run(scenario())

        assert ["sync"] == seen_at_return
        assert 0 == left
        assert ["sync", f"async on {threading.current_thread().name}"] == seen

    def test_drain_reports_what_is_left_after_its_timeout(self, bus: EventBus) -> None:
        """drain(timeout_s) returns how many handler tasks were still running."""

        async def never_dries(event: HideDyed) -> None:
            await asyncio.Event().wait()

        bus.subscribe(HideDyed, never_dries)

        async def scenario() -> int:
            bus.publish(HideDyed())
            bus.publish(HideDyed())
            return await bus.drain(timeout_s=0.05)

        assert 2 == asyncio.run(scenario())

    def test_drain_with_nothing_scheduled_returns_zero(self, bus: EventBus) -> None:
        """drain() with no scheduled handler returns 0 at once."""
        assert 0 == asyncio.run(bus.drain(timeout_s=0))

    def test_errors_of_scheduled_handlers_are_logged(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """A scheduled async handler's failure is logged with its context."""

        async def crack_hide(event: HideDyed) -> None:
            raise ValueError("hide cracked")

        bus.subscribe(HideDyed, crack_hide, retry=ONE_ATTEMPT)
        event = HideDyed()

        async def scenario() -> None:
            bus.publish(event)
            await bus.drain()

        asyncio.run(scenario())

        [record] = delivery_records(caplog_all, logging.ERROR)
        assert (name_of(crack_hide), event.event_id) == (
            record.handler,
            record.event_id,
        )

    def test_publish_async_awaits_every_handler(self, bus: EventBus) -> None:
        """publish_async returns once every handler ran: async ones on the caller's
        loop thread, sync ones on another thread."""
        threads: dict[str, threading.Thread] = {}

        async def dye_slowly(event: HideDyed) -> None:
            await asyncio.sleep(0)
            threads["async"] = threading.current_thread()

        def note_dye(event: HideDyed) -> None:
            threads["sync"] = threading.current_thread()

        bus.subscribe(HideDyed, dye_slowly)
        bus.subscribe(HideDyed, note_dye)

        async def scenario() -> tuple[Receipt, threading.Thread]:
            receipt = await bus.publish_async(HideDyed())
            return receipt, threading.current_thread()

        receipt, loop_thread = asyncio.run(scenario())

        assert "delivered" == receipt.status
        assert loop_thread is threads["async"]
        assert loop_thread is not threads["sync"]

    def test_publish_async_keeps_sync_handlers_in_order(self, bus: EventBus) -> None:
        """publish_async runs sync handlers in their subscription order."""
        seen: list[str] = []

        def first(event: HideDyed) -> None:
            seen.append("first")

        def second(event: HideDyed) -> None:
            seen.append("second")

        bus.subscribe(HideDyed, first)
        bus.subscribe(HideDyed, second)

        asyncio.run(bus.publish_async(HideDyed()))

        assert ["first", "second"] == seen

    def test_publish_async_isolates_failures(self, bus: EventBus) -> None:
        """A failing handler neither reaches publish_async's caller nor stops others."""
        seen: list[str] = []

        async def crack_hide(event: HideDyed) -> None:
            raise ValueError("hide cracked")

        def spill_dye(event: HideDyed) -> None:
            raise ValueError("dye spilled")

        async def dry_hide(event: HideDyed) -> None:
            seen.append("async")

        def fold_hide(event: HideDyed) -> None:
            seen.append("sync")

        for handler in (crack_hide, spill_dye, dry_hide, fold_hide):
            bus.subscribe(HideDyed, handler, retry=ONE_ATTEMPT)

        asyncio.run(bus.publish_async(HideDyed()))

        assert ["async", "sync"] == sorted(seen)
        assert 2 == len(bus.dead_letters.list())

    @every_publish_style
    def test_async_handlers_are_never_dropped(
        self, bus: EventBus, publish: Callable[[EventBus, DomainEvent], None]
    ) -> None:
        """Whichever way an event is published, its async handler runs to the end."""
        finished: list[int] = []

        async def dye_slowly(event: HideDyed) -> None:
            await asyncio.sleep(0.001)
            finished.append(event.hide_id)

        bus.subscribe(HideDyed, dye_slowly)

        publish(bus, HideDyed(hide_id=9))

        assert [9] == finished

    @every_publish_style
    def test_awaitable_returned_by_a_sync_handler_is_awaited(
        self, bus: EventBus, publish: Callable[[EventBus, DomainEvent], None]
    ) -> None:
        """A sync handler that returns an awaitable has it awaited to the end."""
        finished: list[int] = []

        async def finish(hide_id: int) -> None:
            await asyncio.sleep(0)
            finished.append(hide_id)

        def start_dyeing(event: HideDyed) -> Any:
            return finish(event.hide_id)

        bus.subscribe(HideDyed, start_dyeing)

        publish(bus, HideDyed(hide_id=3))

        assert [3] == finished


class TestRetries:
    @every_publish_style
    def test_failing_handler_is_retried_alone(
        self, bus: EventBus, publish: Callable[[EventBus, DomainEvent], None]
    ) -> None:
        """A handler failing twice runs three times; its sibling runs once."""
        runs = {"flaky": 0, "steady": 0}

        async def flaky(event: HideDyed) -> None:
            runs["flaky"] += 1
            if runs["flaky"] < 3:
                raise ConnectionError("dye supplier offline")

        def steady(event: HideDyed) -> None:
            runs["steady"] += 1

        bus.subscribe(HideDyed, flaky)
        bus.subscribe(HideDyed, steady)

        publish(bus, HideDyed())

        assert {"flaky": 3, "steady": 1} == runs
        assert [] == bus.dead_letters.list()

    def test_exhausted_retries_leave_a_dead_letter(self, bus: EventBus) -> None:
        """After max_attempts failures the event is a dead letter recording why."""
        runs: list[int] = []

        def doomed(event: HideDyed) -> None:
            runs.append(1)
            raise ValueError(f"no {event.colour} dye in stock")

        bus.subscribe(HideDyed, doomed, retry=THREE_ATTEMPTS)
        event = HideDyed(hide_id=5, colour="navy")

        bus.publish(event)

        assert 3 == len(runs)
        [letter] = bus.dead_letters.list()
        assert "handler_failed" == letter.reason
        assert name_of(doomed) == letter.handler
        assert 3 == letter.attempts
        assert "builtins.ValueError" == letter.error_type
        assert "no navy dye in stock" == letter.error
        assert letter.traceback is not None
        assert "ValueError: no navy dye in stock" in letter.traceback
        assert "in doomed" in letter.traceback
        assert ("EagerTestHideDyed", event.event_id) == (
            letter.event_type,
            letter.event_id,
        )
        assert letter.envelope is not None
        assert event == DomainEvent.from_json(letter.envelope)
        assert letter.first_failed_at <= letter.last_failed_at

    def test_never_retry_errors_are_dead_lettered_at_once(self, bus: EventBus) -> None:
        """An error listed in never_retry goes to the dead letters after one run."""
        runs: list[int] = []

        def look_up_dye(event: HideDyed) -> None:
            runs.append(1)
            raise KeyError(event.colour)

        policy = RetryPolicy(max_attempts=5, never_retry=(LookupError,))
        bus.subscribe(HideDyed, look_up_dye, retry=policy)

        bus.publish(HideDyed(colour="teal"))

        assert 1 == len(runs)
        [letter] = bus.dead_letters.list()
        assert (1, "builtins.KeyError") == (letter.attempts, letter.error_type)

    def test_errors_outside_retry_on_are_not_retried(self, bus: EventBus) -> None:
        """An error that retry_on does not list is dead-lettered after one run."""
        runs: list[int] = []

        def weigh_hide(event: HideDyed) -> None:
            runs.append(1)
            raise ValueError("scale broken")

        policy = RetryPolicy(max_attempts=5, retry_on=(ConnectionError,))
        bus.subscribe(HideDyed, weigh_hide, retry=policy)

        bus.publish(HideDyed())

        assert 1 == len(runs)
        assert 1 == bus.dead_letters.count()

    def test_retry_later_counts_as_an_attempt(self, bus: EventBus) -> None:
        """RetryLater retries, each time counting as an attempt, up to max_attempts."""
        runs: list[int] = []

        def wait_for_drying(event: HideDyed) -> None:
            runs.append(1)
            raise RetryLater(30.0, "still wet")

        bus.subscribe(HideDyed, wait_for_drying, retry=RetryPolicy(max_attempts=2))

        bus.publish(HideDyed())

        assert 2 == len(runs)
        [letter] = bus.dead_letters.list()
        assert 2 == letter.attempts
        assert "hidesync_events.retry.RetryLater" == letter.error_type
        assert "still wet" == letter.error

    def test_giving_up_is_a_warning(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """Giving up on a handler is logged at WARNING, naming the dead letter."""

        def doomed(event: HideDyed) -> None:
            raise ValueError("no dye")

        bus.subscribe(HideDyed, doomed, retry=THREE_ATTEMPTS)
        event = HideDyed()

        bus.publish(event)

        [letter] = bus.dead_letters.list()
        [record] = delivery_records(caplog_all, logging.WARNING)
        assert "gave up" in record.getMessage()
        assert letter.id in record.getMessage()
        assert (name_of(doomed), event.event_id, 3, letter.id) == (
            record.handler,
            record.event_id,
            record.attempt,
            record.dead_letter,
        )

    def test_retries_are_logged_at_info(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """Each scheduled retry is logged at INFO with its attempt."""

        def doomed(event: HideDyed) -> None:
            raise ValueError("no dye")

        bus.subscribe(HideDyed, doomed, retry=THREE_ATTEMPTS)

        bus.publish(HideDyed())

        records = delivery_records(caplog_all, logging.INFO)
        assert [1, 2] == [record.attempt for record in records]


class TestMetrics:
    def test_counters_follow_what_happened(self, bus: EventBus) -> None:
        """published, delivered, handler_runs, handler_errors, retries and
        dead_letters count each step of a delivery."""

        def steady(event: HideDyed) -> None: ...

        def doomed(event: HideDyed) -> None:
            raise ValueError("no dye")

        bus.subscribe(HideDyed, steady)
        bus.subscribe(HideDyed, doomed, retry=RetryPolicy(max_attempts=2))

        bus.publish(HideDyed())
        bus.publish(StrapCut())

        snapshot = bus.metrics.snapshot()
        both = {"EagerTestHideDyed": 1, "EagerTestStrapCut": 1}
        assert both == dict(snapshot["published"])
        assert both == dict(snapshot["delivered"])
        assert {name_of(steady): 1, name_of(doomed): 2} == dict(
            snapshot["handler_runs"]
        )
        assert {f"{name_of(doomed)}:EagerTestHideDyed": 2} == dict(
            snapshot["handler_errors"]
        )
        assert {name_of(doomed): 1} == dict(snapshot["retries"])
        assert {"handler_failed": 1} == dict(snapshot["dead_letters"])

    def test_summary(self, bus: EventBus) -> None:
        """summary() reports events by type, errors, retries and dead letters."""

        def doomed(event: HideDyed) -> None:
            raise ValueError("no dye")

        bus.subscribe(HideDyed, doomed, retry=RetryPolicy(max_attempts=2))

        bus.publish(HideDyed())
        bus.publish(HideDyed())

        assert {
            "total_events": 2,
            "event_types": {"EagerTestHideDyed": 2},
            "handler_errors": {f"{name_of(doomed)}:EagerTestHideDyed": 4},
            "most_common_events": [("EagerTestHideDyed", 2)],
            "retries": 2,
            "dead_letters": 2,
        } == bus.metrics.snapshot().summary()

    def test_durations_are_recorded_per_handler(self, bus: EventBus) -> None:
        """Every handler run adds a duration that percentiles are read from."""

        def steady(event: HideDyed) -> None: ...

        bus.subscribe(HideDyed, steady)

        for _ in range(3):
            bus.publish(HideDyed())

        snapshot = bus.metrics.snapshot()
        assert 3 == snapshot.total("durations")
        assert snapshot.duration_percentile_s(0.5, handler=name_of(steady)) > 0
        assert 0.0 == snapshot.duration_percentile_s(0.5, handler="nobody")

    def test_each_bus_counts_for_itself(self, bus: EventBus) -> None:
        """Another eager bus's publishes do not show in this bus's metrics."""
        other = EventBus(mode="eager")

        other.publish(HideDyed())

        assert 0 == bus.metrics.snapshot().total("published")
        other.close()

    def test_slow_handler_is_a_warning(
        self, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """A handler taking longer than slow_handler_s is logged at WARNING."""
        bus = EventBus(mode="eager", settings=Settings(slow_handler_s=0.01))

        def dry_slowly(event: HideDyed) -> None:
            time.sleep(0.02)  # longer than the slow-handler threshold

        bus.subscribe(HideDyed, dry_slowly)
        event = HideDyed()

        bus.publish(event)
        bus.close()

        [record] = delivery_records(caplog_all, logging.WARNING)
        assert record.getMessage().startswith(f"slow handler {name_of(dry_slowly)}")
        assert (name_of(dry_slowly), event.event_id) == (
            record.handler,
            record.event_id,
        )


class TestCorrelation:
    def test_events_published_by_handlers_continue_the_chain(
        self, bus: EventBus
    ) -> None:
        """An event published inside a handler has the handled event as its cause
        and keeps its correlation id, down the whole chain."""
        envelopes: dict[str, Envelope] = {}

        def cut_strap(event: HideDyed) -> None:
            envelopes["dyed"] = current_envelope()
            bus.publish(StrapCut(strap_id=event.hide_id))

        def fit_buckle(event: StrapCut) -> None:
            envelopes["cut"] = current_envelope()
            bus.publish(BuckleFitted(strap_id=event.strap_id))

        def inspect_buckle(event: BuckleFitted) -> None:
            envelopes["fitted"] = current_envelope()

        bus.subscribe(HideDyed, cut_strap)
        bus.subscribe(StrapCut, fit_buckle)
        bus.subscribe(BuckleFitted, inspect_buckle)
        root = HideDyed(hide_id=2)

        bus.publish(root)

        dyed, cut, fitted = envelopes["dyed"], envelopes["cut"], envelopes["fitted"]
        assert (root.event_id, None) == (dyed.correlation_id, dyed.causation_id)
        assert (root.event_id, root.event_id) == (cut.correlation_id, cut.causation_id)
        assert (root.event_id, cut.event_id) == (
            fitted.correlation_id,
            fitted.causation_id,
        )

    def test_async_handlers_see_their_envelope(self, bus: EventBus) -> None:
        """current_envelope() inside an async handler is the event it handles."""
        seen: list[str | None] = []

        async def dye_slowly(event: HideDyed) -> None:
            envelope = current_envelope()
            seen.append(envelope.event_id if envelope else None)

        bus.subscribe(HideDyed, dye_slowly)
        event = HideDyed()

        bus.publish(event)

        assert [event.event_id] == seen

    def test_no_envelope_outside_handlers(self, bus: EventBus) -> None:
        """current_envelope() is None outside a handler, also after one ran."""

        def steady(event: HideDyed) -> None: ...

        bus.subscribe(HideDyed, steady)
        bus.publish(HideDyed())

        assert current_envelope() is None


class TestDuplicates:
    def test_same_event_twice_runs_each_handler_once(self, bus: EventBus) -> None:
        """Publishing one event twice runs each handler once and counts duplicates."""
        runs = {"reserve": 0, "notify": 0}

        def reserve(event: HideDyed) -> None:
            runs["reserve"] += 1

        async def notify(event: HideDyed) -> None:
            runs["notify"] += 1

        bus.subscribe(HideDyed, reserve)
        bus.subscribe(HideDyed, notify)
        event = HideDyed()

        bus.publish(event)
        bus.publish(event)

        assert {"reserve": 1, "notify": 1} == runs
        assert {name_of(reserve): 1, name_of(notify): 1} == dict(
            bus.metrics.snapshot()["duplicates"]
        )

    def test_copies_handled_at_the_same_time_run_once(self, bus: EventBus) -> None:
        """Two copies of one event handled concurrently run each handler once."""
        runs: list[str] = []

        async def reserve(event: HideDyed) -> None:
            await asyncio.sleep(0)  # lets the other copy reach this handler meanwhile
            runs.append(event.event_id)

        bus.subscribe(HideDyed, reserve)
        event = HideDyed()

        async def scenario() -> None:
            await asyncio.gather(bus.publish_async(event), bus.publish_async(event))

        asyncio.run(scenario())

        assert [event.event_id] == runs

    def test_handlers_that_did_not_complete_run_again(self, bus: EventBus) -> None:
        """Publishing an event again runs only the handlers that did not complete it."""
        runs = {"reserve": 0, "notify": 0}

        def reserve(event: HideDyed) -> None:
            runs["reserve"] += 1

        def notify(event: HideDyed) -> None:
            runs["notify"] += 1
            if runs["notify"] == 1:
                raise ConnectionError("mail server down")

        bus.subscribe(HideDyed, reserve)
        bus.subscribe(HideDyed, notify, retry=ONE_ATTEMPT)
        event = HideDyed()

        bus.publish(event)
        bus.publish(event)

        assert {"reserve": 1, "notify": 2} == runs

    def test_an_interrupted_handler_runs_again_on_the_next_publish(
        self, bus: EventBus
    ) -> None:
        """A handler interrupted by a BaseException (Ctrl-C) leaves no claim behind:
        the same event published again runs it, and the handler after it too."""
        runs = {"reserve": 0, "notify": 0}

        def reserve(event: HideDyed) -> None:
            runs["reserve"] += 1
            if runs["reserve"] == 1:
                raise KeyboardInterrupt

        def notify(event: HideDyed) -> None:
            runs["notify"] += 1

        bus.subscribe(HideDyed, reserve)
        bus.subscribe(HideDyed, notify)
        event = HideDyed()

        with pytest.raises(KeyboardInterrupt):
            bus.publish(event)
        bus.publish(event)

        assert {"reserve": 2, "notify": 1} == runs

    def test_a_cancelled_async_handler_runs_again_on_the_next_publish(
        self, bus: EventBus
    ) -> None:
        """An async handler task cancelled while it ran (cancel_pending) gives its
        claim back: publishing the event again runs it."""
        started: list[str] = []

        async def reserve(event: HideDyed) -> None:
            started.append(event.event_id)
            await asyncio.sleep(60)

        bus.subscribe(HideDyed, reserve)
        event = HideDyed()

        async def scenario() -> None:
            bus.publish(event)
            await asyncio.sleep(0)
            bus.transport.cancel_pending()
            await asyncio.sleep(0)
            bus.publish(event)
            await asyncio.sleep(0)
            bus.transport.cancel_pending()
            await bus.drain(timeout_s=1)

        asyncio.run(scenario())

        assert [event.event_id, event.event_id] == started

    def test_idempotent_handlers_run_on_every_publish(self, bus: EventBus) -> None:
        """A handler subscribed with idempotent=True, sync or async, runs each time
        the event is published, and counts no duplicates."""
        runs = {"reserve": 0, "notify": 0}

        def reserve(event: HideDyed) -> None:
            runs["reserve"] += 1

        async def notify(event: HideDyed) -> None:
            runs["notify"] += 1

        bus.subscribe(HideDyed, reserve, idempotent=True)
        asyncio.run(bus.subscribe_async(HideDyed, notify, idempotent=True))
        event = HideDyed()

        bus.publish(event)
        asyncio.run(bus.publish_async(event))

        assert {"reserve": 2, "notify": 2} == runs
        assert 0 == bus.metrics.snapshot().total("duplicates")


class TestSendEnvelope:
    @pytest.fixture
    def handlers(self, bus: EventBus) -> dict[str, list[str]]:
        """Two handlers of HideDyed, "reserve" and "notify", recording event ids."""
        seen: dict[str, list[str]] = {"reserve": [], "notify": []}

        def reserve(event: HideDyed) -> None:
            seen["reserve"].append(event.event_id)

        def notify(event: HideDyed) -> None:
            seen["notify"].append(event.event_id)

        bus.subscribe(HideDyed, reserve, name="reserve")
        bus.subscribe(HideDyed, notify, name="notify")
        return seen

    @staticmethod
    def envelope_of(event: DomainEvent) -> Envelope:
        return decode(event.to_json(), max_bytes=1024 * 1024)

    def test_runs_every_handler_with_the_ids_kept(
        self, bus: EventBus, handlers: dict[str, list[str]]
    ) -> None:
        """send_envelope delivers the envelope as it is, to every handler."""
        event = HideDyed()

        receipt = bus.send_envelope(self.envelope_of(event))

        assert Receipt(event.event_id, "delivered") == receipt
        assert {"reserve": [event.event_id], "notify": [event.event_id]} == handlers

    def test_only_runs_just_the_named_handler(
        self, bus: EventBus, handlers: dict[str, list[str]]
    ) -> None:
        """send_envelope(only=name) runs that one handler."""
        event = HideDyed()

        bus.send_envelope(self.envelope_of(event), only="notify")

        assert {"reserve": [], "notify": [event.event_id]} == handlers

    def test_only_an_unknown_handler_leaves_a_dead_letter(
        self, bus: EventBus, handlers: dict[str, list[str]]
    ) -> None:
        """A handler name no longer subscribed runs nothing and is dead-lettered."""
        event = HideDyed()

        bus.send_envelope(self.envelope_of(event), only="retired")

        assert {"reserve": [], "notify": []} == handlers
        [letter] = bus.dead_letters.list()
        assert ("unknown_handler", "retired", event.event_id) == (
            letter.reason,
            letter.handler,
            letter.event_id,
        )

    def test_replaying_a_dead_letter_runs_the_failed_handler(
        self, bus: EventBus
    ) -> None:
        """A dead letter's envelope sent to its handler runs just that handler."""
        runs = {"reserve": 0, "notify": 0}

        def reserve(event: HideDyed) -> None:
            runs["reserve"] += 1

        def notify(event: HideDyed) -> None:
            runs["notify"] += 1
            if runs["notify"] == 1:
                raise ConnectionError("mail server down")

        bus.subscribe(HideDyed, reserve)
        bus.subscribe(HideDyed, notify, retry=ONE_ATTEMPT)
        bus.publish(HideDyed())
        [letter] = bus.dead_letters.list()
        assert letter.envelope is not None

        bus.send_envelope(
            decode(letter.envelope, max_bytes=1024 * 1024), only=letter.handler
        )

        assert {"reserve": 1, "notify": 2} == runs


# -- FastAPI ------------------------------------------------------------------------------


class TestFastAPILifespan:
    def test_bad_settings_fail_the_start(self) -> None:
        """The transport is built at startup, so bad settings stop the app starting."""
        settings = Settings(
            mode="celery", broker_url="amqp://broker.invalid//", state_url=None
        )
        bus = EventBus(settings=settings)
        app = FastAPI()
        setup_event_handlers(app, bus)

        with (
            pytest.raises(ConfigurationError, match="state_url is not set"),
            TestClient(app),
        ):
            pass

    def test_app_lifespan_still_runs(self, bus: EventBus) -> None:
        """The app's own lifespan runs around the serving, and its state reaches
        requests."""
        steps: list[str] = []

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
            steps.append("app started")
            yield {"workshop": "north"}
            steps.append("app stopped")

        app = FastAPI(lifespan=lifespan)

        @app.get("/workshop")
        async def workshop(request: Request) -> dict[str, str]:
            return {"workshop": request.state.workshop}

        setup_event_handlers(app, bus)

        with TestClient(app) as client:
            steps.append("serving")
            assert {"workshop": "north"} == client.get("/workshop").json()

        assert ["app started", "serving", "app stopped"] == steps

    def test_on_event_handlers_still_run(self, bus: EventBus) -> None:
        """FastAPI's deprecated on_event startup and shutdown handlers still run."""
        steps: list[str] = []
        app = FastAPI()

        async def open_workshop() -> None:
            steps.append("startup")

        def close_workshop() -> None:
            steps.append("shutdown")

        with pytest.warns(DeprecationWarning, match="on_event is deprecated"):
            app.on_event("startup")(open_workshop)
        with pytest.warns(DeprecationWarning, match="on_event is deprecated"):
            app.on_event("shutdown")(close_workshop)
        setup_event_handlers(app, bus)

        with TestClient(app):
            steps.append("serving")

        assert ["startup", "serving", "shutdown"] == steps

    def test_shutdown_waits_for_pending_handlers(self, bus: EventBus) -> None:
        """At shutdown the async handlers the bus scheduled are awaited to the end."""
        gate = asyncio.Event()
        finished: list[int] = []

        async def dye_after_closing(event: HideDyed) -> None:
            await gate.wait()
            await asyncio.sleep(0.01)
            finished.append(event.hide_id)

        bus.subscribe(HideDyed, dye_after_closing)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            yield
            gate.set()  # the handler can finish only once shutdown began

        app = FastAPI(lifespan=lifespan)

        @app.post("/dye/{hide_id}")
        async def dye(hide_id: int) -> dict[str, bool]:
            bus.publish(HideDyed(hide_id=hide_id))
            return {"accepted": True}

        setup_event_handlers(app, bus)

        with TestClient(app) as client:
            client.post("/dye/7")
            finished_while_serving = list(finished)

        assert [] == finished_while_serving
        assert [7] == finished

    def test_shutdown_cancels_only_the_bus_tasks(
        self, bus: EventBus, caplog_all: pytest.LogCaptureFixture
    ) -> None:
        """Bus handler tasks still running after drain_timeout_s are cancelled; a
        task the app created is left alone."""
        unrelated: list[asyncio.Task[bool]] = []
        unrelated_cancel_requests: list[int] = []

        async def never_dries(event: HideDyed) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                unrelated_cancel_requests.append(unrelated[0].cancelling())
                raise

        bus.subscribe(HideDyed, never_dries)
        app = FastAPI()

        @app.post("/dye")
        async def dye() -> dict[str, bool]:
            loop = asyncio.get_running_loop()
            unrelated.append(loop.create_task(asyncio.Event().wait()))
            bus.publish(HideDyed())
            return {"accepted": True}

        setup_event_handlers(app, bus, drain_timeout_s=0.05)

        with TestClient(app) as client:
            client.post("/dye")

        assert [0] == unrelated_cancel_requests
        [warning] = [
            r
            for r in caplog_all.records
            if r.name == "hidesync.events.lifespan" and r.levelno == logging.WARNING
        ]
        assert warning.getMessage().startswith("cancelled 1 event handler tasks")
