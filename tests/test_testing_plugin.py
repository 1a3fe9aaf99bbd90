"""The pytest plugin users load in their own suites (``hidesync_events.testing``).

Unit tests drive its pieces directly (the capture and its assertions, the isolated
global bus, ``EagerTransport(raise_errors=True)``); the ``pytester`` tests run small
user test files through pytest and check what their users would see.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hidesync_events import (
    EventBus,
    ExecutionEvent,
    RetryPolicy,
    ToolCreated,
    WorkflowPausedEvent,
    WorkflowStartedEvent,
    configure,
    global_event_bus,
)
from hidesync_events.testing import (
    PublishedEvents,
    capture_published,
    isolated_global_bus,
)
from hidesync_events.transports import EagerTransport

pytest_plugins = ["pytester"]

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
THREE_ATTEMPTS = RetryPolicy(max_attempts=3, backoff_s=0)


def started(workflow_id: int = 1, **fields: object) -> WorkflowStartedEvent:
    return WorkflowStartedEvent.model_validate(
        {"workflow_id": workflow_id, "execution_id": 100, **fields}
    )


@pytest.fixture
def published(bus: EventBus) -> Iterator[PublishedEvents]:
    """A capture of the events published on the test's own eager bus."""
    with capture_published(bus) as capture:
        yield capture


class TestCapture:
    def test_records_events_in_publish_order(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """Events are recorded in the order published, handled or not."""
        first, second = started(1), ToolCreated(tool_id=7, name="awl")

        bus.publish(first)
        bus.publish(second)

        assert [first, second] == published.all

    def test_an_event_published_by_a_handler_follows_its_cause(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """Recording at publish time puts a handler's event after the one it handled,
        even though that handler finishes only after its own event was delivered."""

        def pause_when_started(event: WorkflowStartedEvent) -> None:
            bus.publish(WorkflowPausedEvent(workflow_id=event.workflow_id))

        bus.subscribe(WorkflowStartedEvent, pause_when_started)
        bus.publish(started(3))

        kinds = [
            (type(e).__name__, e.workflow_id) for e in published.of(ExecutionEvent)
        ]
        assert [("WorkflowStartedEvent", 3), ("WorkflowPausedEvent", 3)] == kinds

    def test_records_the_copy_handlers_receive(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """What is recorded equals the published event but is the decoded copy."""
        event = started(1)

        bus.publish(event)

        assert event == published.all[0]
        assert event is not published.all[0]

    def test_records_events_published_from_worker_threads(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """Events that sync handlers publish from publish_async's threads are kept."""

        def pause_when_started(event: WorkflowStartedEvent) -> None:
            bus.publish(WorkflowPausedEvent(workflow_id=event.workflow_id))

        bus.subscribe(WorkflowStartedEvent, pause_when_started)
        asyncio.run(bus.publish_async(started(4)))

        assert 4 == published.expect(WorkflowPausedEvent).workflow_id

    def test_of_includes_subclasses(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """of(Base) returns the events of its subclasses, oldest first."""
        bus.publish(started(1))
        bus.publish(ToolCreated(tool_id=7))
        bus.publish(WorkflowPausedEvent(workflow_id=1))

        kinds = [type(event) for event in published.of(ExecutionEvent)]
        assert [WorkflowStartedEvent, WorkflowPausedEvent] == kinds

    def test_clear_forgets_what_was_recorded(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """clear() empties the record; later events are recorded again."""
        bus.publish(started(1))

        published.clear()
        bus.publish(started(2))

        assert [2] == [
            event.workflow_id for event in published.of(WorkflowStartedEvent)
        ]

    def test_stops_recording_when_the_block_ends(self, bus: EventBus) -> None:
        """Once its block is over a capture no longer listens to the bus."""
        with capture_published(bus) as capture:
            bus.publish(started(1))

        bus.publish(started(2))

        assert 1 == len(capture.all)


class TestExpect:
    def test_returns_the_first_match(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """expect() returns the earliest event of the type with the given fields."""
        bus.publish(started(1, workflow_name="Wallet"))
        bus.publish(started(2, workflow_name="Belt"))
        bus.publish(started(2, workflow_name="Strap"))

        found = published.expect(WorkflowStartedEvent, workflow_id=2)

        assert "Belt" == found.workflow_name

    def test_failure_lists_what_was_published(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """The message names the expectation and each event, with the fields named in
        the expectation and those not at their default."""
        bus.publish(started(2, workflow_name="Leather Wallet"))
        bus.publish(ToolCreated(tool_id=7, name="awl"))

        with pytest.raises(AssertionError) as failure:
            published.expect(WorkflowStartedEvent, workflow_id=1, selected_outcome_id=5)

        assert (
            "expected a published WorkflowStartedEvent with workflow_id=1, "
            "selected_outcome_id=5; published instead (2):\n"
            "  #1 WorkflowStartedEvent(workflow_id=2, selected_outcome_id=None, "
            "execution_id=100, workflow_name='Leather Wallet')\n"
            "  #2 ToolCreated(tool_id=7, name='awl')"
        ) == str(failure.value)

    def test_failure_when_nothing_was_published(
        self, published: PublishedEvents
    ) -> None:
        """With no event at all, the message says so."""
        with pytest.raises(AssertionError) as failure:
            published.expect(WorkflowStartedEvent)

        expected = "expected a published WorkflowStartedEvent; no event was published"
        assert expected == str(failure.value)

    def test_failure_shortens_long_values(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """A long value is cut to 60 characters, ending in an ellipsis."""
        bus.publish(started(2, workflow_name="x" * 500))

        with pytest.raises(AssertionError) as failure:
            published.expect(WorkflowStartedEvent, workflow_id=1)

        shortened = "workflow_name='" + "x" * 56 + "...)"
        assert str(failure.value).endswith(shortened)

    def test_failure_with_many_events_shows_the_expected_type_first(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """Beyond 20 events, those of the expected type are listed and the others
        counted by type."""
        for tool_id in range(30):
            bus.publish(ToolCreated(tool_id=tool_id))
        bus.publish(started(2))

        with pytest.raises(AssertionError) as failure:
            published.expect(WorkflowStartedEvent, workflow_id=1)

        lines = str(failure.value).splitlines()
        assert 22 == len(lines)
        assert (
            "  #31 WorkflowStartedEvent(workflow_id=2, execution_id=100)" == lines[20]
        )
        assert "  ... and 11 more: 11 ToolCreated" == lines[21]

    def test_a_misspelt_field_is_a_type_error(self, published: PublishedEvents) -> None:
        """A field the type and its subclasses lack is refused, so expect_none()
        cannot pass vacuously."""
        with pytest.raises(TypeError, match="no field 'workflow_idd'; pass some of"):
            published.expect_none(WorkflowStartedEvent, workflow_idd=1)

    def test_base_classes_accept_their_subclasses_fields(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """expect(Base, field=...) matches a subclass's field."""
        bus.publish(WorkflowPausedEvent(workflow_id=1, reason="glue drying"))

        found = published.expect(ExecutionEvent, reason="glue drying")

        assert isinstance(found, WorkflowPausedEvent)

    def test_a_non_event_type_is_a_type_error(self, published: PublishedEvents) -> None:
        """Passing something other than an event class says what to pass."""
        with pytest.raises(TypeError, match="expected an event class"):
            published.expect("WorkflowStartedEvent")  # type: ignore[arg-type]


class TestExpectNone:
    def test_passes_when_nothing_matches(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """expect_none() returns when no event of the type has the fields."""
        bus.publish(started(2))

        published.expect_none(WorkflowStartedEvent, workflow_id=1)
        published.expect_none(WorkflowPausedEvent)

    def test_failure_lists_the_matches(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """The message lists each event that matched."""
        bus.publish(started(1))

        with pytest.raises(AssertionError) as failure:
            published.expect_none(WorkflowStartedEvent, workflow_id=1)

        assert (
            "expected no published WorkflowStartedEvent with workflow_id=1; "
            "1 published:\n  WorkflowStartedEvent(workflow_id=1, execution_id=100)"
        ) == str(failure.value)


class TestSettled:
    def test_waits_for_cascades_of_async_handlers(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """Inside a running loop, settled() returns once handler tasks, and the tasks
        their events scheduled, have finished."""
        done: list[str] = []

        async def pause_when_started(event: WorkflowStartedEvent) -> None:
            bus.publish(WorkflowPausedEvent(workflow_id=event.workflow_id))

        async def note_pause(event: WorkflowPausedEvent) -> None:
            done.append(f"paused {event.workflow_id}")

        bus.subscribe(WorkflowStartedEvent, pause_when_started)
        bus.subscribe(WorkflowPausedEvent, note_pause)

        async def scenario() -> list[str]:
            bus.publish(started(5))
            await published.settled()
            return list(done)

        assert ["paused 5"] == asyncio.run(scenario())
        published.expect(WorkflowPausedEvent, workflow_id=5)

    def test_fails_when_tasks_are_still_running_after_the_timeout(
        self, bus: EventBus, published: PublishedEvents
    ) -> None:
        """settled(timeout_s) raises AssertionError naming how many tasks are left."""
        release = asyncio.Event()

        async def wait_for_release(event: WorkflowStartedEvent) -> None:
            await release.wait()

        bus.subscribe(WorkflowStartedEvent, wait_for_release)

        async def scenario() -> str:
            bus.publish(started(1))
            with pytest.raises(AssertionError) as failure:
                await published.settled(timeout_s=0)
            release.set()
            await published.settled()
            return str(failure.value)

        assert "1 event handler task(s) still running after 0s" == asyncio.run(
            scenario()
        )


class TestRaiseErrors:
    @staticmethod
    def make_strict(bus: EventBus) -> EagerTransport:
        transport = bus.transport
        assert isinstance(transport, EagerTransport)
        transport.raise_errors = True
        return transport

    def test_is_off_by_default(self, bus: EventBus) -> None:
        """Without raise_errors a failing handler is dead-lettered, not raised."""

        def fail(event: WorkflowStartedEvent) -> None:
            raise ValueError("no leather left")

        bus.subscribe(WorkflowStartedEvent, fail, retry=ONE_ATTEMPT)
        bus.publish(started(1))

        assert 1 == len(bus.dead_letters.list())

    def test_publish_raises_the_handlers_exception_without_retrying(
        self, bus: EventBus
    ) -> None:
        """publish raises the handler's own exception after a single attempt."""
        attempts: list[int] = []
        error = ValueError("no leather left")

        def fail(event: WorkflowStartedEvent) -> None:
            attempts.append(event.workflow_id)
            raise error

        self.make_strict(bus)
        bus.subscribe(WorkflowStartedEvent, fail, retry=THREE_ATTEMPTS)

        with pytest.raises(ValueError, match="no leather left") as raised:
            bus.publish(started(1))

        assert error is raised.value
        assert [1] == attempts

    def test_publish_async_raises_the_handlers_exception(self, bus: EventBus) -> None:
        """publish_async raises an async handler's exception."""

        async def fail(event: WorkflowStartedEvent) -> None:
            raise ValueError("no leather left")

        self.make_strict(bus)
        bus.subscribe(WorkflowStartedEvent, fail, retry=THREE_ATTEMPTS)

        with pytest.raises(ValueError, match="no leather left"):
            asyncio.run(bus.publish_async(started(1)))

    def test_drain_raises_a_scheduled_handlers_exception(self, bus: EventBus) -> None:
        """An async handler scheduled on the running loop fails drain(), once."""

        async def fail(event: WorkflowStartedEvent) -> None:
            raise ValueError("no leather left")

        self.make_strict(bus)
        bus.subscribe(WorkflowStartedEvent, fail, retry=THREE_ATTEMPTS)

        async def scenario() -> int:
            bus.publish(started(1))
            with pytest.raises(ValueError, match="no leather left"):
                await bus.drain()
            return await bus.drain()

        assert 0 == asyncio.run(scenario())


class TestIsolatedGlobalBus:
    def test_removes_subscriptions_made_inside(self) -> None:
        """A subscription made in the block is gone after it."""

        def on_start(event: WorkflowStartedEvent) -> None: ...

        before = global_event_bus.subscribers

        with isolated_global_bus():
            global_event_bus.subscribe(WorkflowStartedEvent, on_start)

        assert before == global_event_bus.subscribers

    def test_restores_removed_subscriptions_with_name_and_policy(self) -> None:
        """A subscription removed in the block comes back with its name, its policy
        and whether it is idempotent."""

        def on_start(event: WorkflowStartedEvent) -> None: ...

        global_event_bus.subscribe(
            WorkflowStartedEvent,
            on_start,
            name="reserve",
            retry=ONE_ATTEMPT,
            idempotent=True,
        )

        with isolated_global_bus():
            global_event_bus.clear_subscriptions()

        restored = global_event_bus.registry.find(WorkflowStartedEvent, "reserve")
        assert restored is not None
        assert (on_start, ONE_ATTEMPT, True) == (
            restored.handler,
            restored.retry,
            restored.idempotent,
        )

    def test_keeps_subscriptions_of_modules_first_imported_inside(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Subscriptions a module makes when the block first imports it stay, even
        under a name of their own."""
        module = "hidesync_plugin_test_handlers"
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(
                """
                from hidesync_events import WorkflowStartedEvent, global_event_bus

                @global_event_bus.subscribe(name="imported-handler")
                def on_start(event: WorkflowStartedEvent) -> None: ...
                """
            )
        )
        monkeypatch.syspath_prepend(tmp_path)

        try:
            with isolated_global_bus():
                importlib.import_module(module)
            kept = global_event_bus.registry.find(
                WorkflowStartedEvent, "imported-handler"
            )
        finally:
            # Forgotten, the module no longer counts as imported by this test, so the
            # suite's own isolation removes its subscription afterwards.
            sys.modules.pop(module, None)

        assert kept is not None

    def test_applies_settings_over_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Keyword settings win; the environment fills in the rest."""
        monkeypatch.setenv("HIDESYNC_EVENTS_MODE", "celery")
        monkeypatch.setenv("HIDESYNC_EVENTS_RETRY_MAX_ATTEMPTS", "2")

        with isolated_global_bus(mode="eager") as bus:
            seen = (bus.mode, bus.settings.retry_max_attempts)

        assert ("eager", 2) == seen

    def test_starts_with_empty_stores_and_ends_on_environment_settings(self) -> None:
        """Dead letters start empty inside; settings configured inside are reset."""

        def fail(event: WorkflowStartedEvent) -> None:
            raise ValueError("no leather left")

        configure(mode="eager")
        global_event_bus.subscribe(WorkflowStartedEvent, fail, retry=ONE_ATTEMPT)
        global_event_bus.publish(started(1))

        with isolated_global_bus():
            letters_inside = len(global_event_bus.dead_letters.list())
            configure(retry_max_attempts=9)

        assert 0 == letters_inside
        assert 9 != global_event_bus.settings.retry_max_attempts


# -- the plugin, as a user's test suite meets it ------------------------------------------

USER_HANDLERS = """
import asyncio

import pytest

from hidesync_events import (
    RetryPolicy, WorkflowPausedEvent, WorkflowStartedEvent, global_event_bus,
)

ONCE = RetryPolicy(max_attempts=1)


def start_workflow(workflow_id):
    global_event_bus.publish(
        WorkflowStartedEvent(
            workflow_id=workflow_id, execution_id=100, workflow_name="Leather Wallet"
        )
    )


def fail(event: WorkflowStartedEvent) -> None:
    raise ValueError("no leather left")
"""


def run_user_tests(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    """Run one user test module (USER_HANDLERS plus ``tests``) with strict markers."""
    pytester.makepyfile(test_user=USER_HANDLERS + textwrap.dedent(tests))
    return pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")


class TestPluginInAUserSuite:
    def test_hidesync_bus_is_eager_fresh_and_restored(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """hidesync_bus is eager whatever the environment says, starts with no dead
        letters, and a later test no longer sees the subscriptions it made."""
        monkeypatch.setenv("HIDESYNC_EVENTS_MODE", "celery")

        result = run_user_tests(
            pytester,
            """
            def test_makes_a_dead_letter(hidesync_bus):
                hidesync_bus.subscribe(WorkflowStartedEvent, fail, retry=ONCE)
                start_workflow(1)
                assert "eager" == hidesync_bus.mode
                assert 1 == len(hidesync_bus.dead_letters.list())

            def test_sees_none_of_it(hidesync_bus):
                assert [] == hidesync_bus.dead_letters.list()
                assert fail not in hidesync_bus.subscribers.get(WorkflowStartedEvent, [])
            """,
        )

        result.assert_outcomes(passed=2)

    def test_expect_passes_and_fails_with_what_was_published(
        self, pytester: pytest.Pytester
    ) -> None:
        """A met expectation passes; an unmet one fails listing the events."""
        result = run_user_tests(
            pytester,
            """
            def test_met(published_events):
                start_workflow(1)
                published_events.expect(WorkflowStartedEvent, workflow_id=1)
                published_events.expect_none(WorkflowPausedEvent)

            def test_unmet(published_events):
                start_workflow(2)
                published_events.expect(WorkflowStartedEvent, workflow_id=1)
            """,
        )

        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                "E*AssertionError: expected a published WorkflowStartedEvent with "
                "workflow_id=1; published instead (1):",
                "E*#1 WorkflowStartedEvent(workflow_id=2, execution_id=100, "
                "workflow_name='Leather Wallet')",
            ]
        )

    def test_settled_waits_for_async_handlers_in_a_running_loop(
        self, pytester: pytest.Pytester
    ) -> None:
        """settled() lets a test see events that async handler tasks published."""
        result = run_user_tests(
            pytester,
            """
            async def pause(event: WorkflowStartedEvent) -> None:
                global_event_bus.publish(WorkflowPausedEvent(workflow_id=1))

            def test_cascade(published_events):
                global_event_bus.subscribe(WorkflowStartedEvent, pause)

                async def scenario():
                    start_workflow(1)
                    await published_events.settled()
                    published_events.expect(WorkflowPausedEvent, workflow_id=1)

                asyncio.run(scenario())
            """,
        )

        result.assert_outcomes(passed=1)

    def test_strict_marker_fails_the_test_with_the_handlers_exception(
        self, pytester: pytest.Pytester
    ) -> None:
        """@pytest.mark.hidesync_strict turns a handler's error into a test failure;
        unmarked, the same handler is dead-lettered and the test passes."""
        result = run_user_tests(
            pytester,
            """
            @pytest.mark.hidesync_strict
            def test_marked(hidesync_bus):
                hidesync_bus.subscribe(WorkflowStartedEvent, fail)
                start_workflow(1)

            def test_unmarked(hidesync_bus):
                hidesync_bus.subscribe(WorkflowStartedEvent, fail, retry=ONCE)
                start_workflow(1)
                assert 1 == len(hidesync_bus.dead_letters.list())
            """,
        )

        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["E*ValueError: no leather left"])

    def test_strict_handlers_fixture_survives_configure(
        self, pytester: pytest.Pytester
    ) -> None:
        """strict_handlers stays in force after the test calls configure(), which
        builds the bus a new transport."""
        result = run_user_tests(
            pytester,
            """
            from hidesync_events import configure

            def test_strict(strict_handlers):
                global_event_bus.subscribe(WorkflowStartedEvent, fail)
                configure(mode="eager", retry_max_attempts=2)
                start_workflow(1)
            """,
        )

        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["E*ValueError: no leather left"])

    def test_strict_error_nobody_awaited_fails_at_teardown(
        self, pytester: pytest.Pytester
    ) -> None:
        """A scheduled async handler's error that the test never drained is reported
        as an error of the test's teardown."""
        result = run_user_tests(
            pytester,
            """
            @pytest.mark.hidesync_strict
            def test_forgets_to_settle(hidesync_bus):
                ran = asyncio.Event()

                async def fail_later(event: WorkflowStartedEvent) -> None:
                    ran.set()
                    raise ValueError("no leather left")

                hidesync_bus.subscribe(WorkflowStartedEvent, fail_later)

                async def scenario():
                    start_workflow(1)
                    await ran.wait()

                asyncio.run(scenario())
            """,
        )

        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["E*ValueError: no leather left"])

    def test_the_marker_is_registered(self, pytester: pytest.Pytester) -> None:
        """pytest --markers lists hidesync_strict with what it does."""
        result = pytester.runpytest("-p", "no:cacheprovider", "--markers")

        result.stdout.fnmatch_lines(["@pytest.mark.hidesync_strict: *fails the test*"])
