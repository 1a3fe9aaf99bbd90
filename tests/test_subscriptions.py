"""Subscriptions (DESIGN.md section 3, "Subscriptions"): how handlers are registered,
named, resolved for an event class and its bases, and removed, from one thread or many.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import typing
from collections.abc import Callable

import pytest

from hidesync_events import (
    DomainEvent,
    EventBus,
    NotAnEventTypeError,
    RetryPolicy,
    SubscriptionError,
    UnknownEventTypeError,
)
from hidesync_events.subscriptions import HandlerRegistry, handler_name


class HideCut(DomainEvent, category="subscription_tests", event_name="SubsTestHideCut"):
    hide_id: int = 0


class SaddleHideCut(HideCut, event_name="SubsTestSaddleHideCut"):
    """A subclass: handlers of the base receive it too."""


class StitchDone(
    DomainEvent, category="subscription_tests", event_name="SubsTestStitchDone"
):
    seam: str = ""


class Recorder:
    """Handlers that append their label and event to one shared list, in call order.

    Each handler is named after its label, so several can share one event class.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, DomainEvent]] = []

    def handler(self, label: str) -> Callable[[DomainEvent], None]:
        def handle(event: DomainEvent) -> None:
            self.calls.append((label, event))

        handle.__name__ = handle.__qualname__ = label
        return handle

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.calls]


class Apprentice:
    """Owns a handler method with a typed event parameter."""

    def __init__(self) -> None:
        self.seen: list[HideCut] = []

    def on_hide_cut(self, event: HideCut) -> None:
        self.seen.append(event)


class HideCutCounter:
    """A callable object with a typed ``__call__``."""

    def __init__(self) -> None:
        self.seen: list[HideCut] = []

    def __call__(self, event: HideCut) -> None:
        self.seen.append(event)


class AsyncHideCutCounter:
    """A callable object with an async ``__call__``."""

    async def __call__(self, event: HideCut) -> None: ...


class Workbench:
    """The reference's TemporaryEventHandler: subscribes a method, cleans it up."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.seen: list[HideCut] = []
        bus.subscribe(HideCut, self.on_hide_cut)

    def on_hide_cut(self, event: HideCut) -> None:
        self.seen.append(event)

    def cleanup(self) -> bool:
        return self.bus.unsubscribe(HideCut, self.on_hide_cut)


def on_hide_cut(event: HideCut) -> None:
    """A plain module-level handler."""


async def on_hide_cut_async(event: HideCut) -> None:
    """A module-level coroutine handler."""


def on_cut_or_stitch_pipe(event: HideCut | StitchDone) -> None:
    """A handler hinted with the ``A | B`` union syntax."""


def on_cut_or_stitch_union(event: typing.Union[HideCut, StitchDone]) -> None:  # noqa: UP007
    """A handler hinted with ``typing.Union``."""


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


class TestExplicitSubscribe:
    def test_subscribed_handler_receives_published_event(self, bus: EventBus) -> None:
        """subscribe(EventClass, handler) delivers events of that class to the handler."""
        seen: list[HideCut] = []
        event = HideCut(hide_id=7)

        def handle(event: HideCut) -> None:
            seen.append(event)

        bus.subscribe(HideCut, handle)
        bus.publish(event)

        [received] = seen
        assert event.event_id == received.event_id
        assert 7 == received.hide_id

    def test_subscribe_returns_the_handler(self, bus: EventBus) -> None:
        """subscribe(EventClass, handler) returns the handler itself."""

        def handle(event: HideCut) -> None: ...

        assert handle is bus.subscribe(HideCut, handle)

    def test_registered_wire_name_resolves_to_its_class(self, bus: EventBus) -> None:
        """A registered wire name given as a string subscribes to its class."""

        def handle(event: DomainEvent) -> None: ...

        bus.subscribe("SubsTestHideCut", handle)

        assert [handle] == bus.subscribers[HideCut]

    def test_tuple_of_classes_subscribes_to_each(self, bus: EventBus) -> None:
        """A tuple of classes and wire names subscribes the handler to each of them."""

        def handle(event: DomainEvent) -> None: ...

        bus.subscribe((HideCut, "SubsTestStitchDone"), handle)

        assert {HideCut: [handle], StitchDone: [handle]} == bus.subscribers

    def test_unknown_wire_name_is_a_lookup_error(self, bus: EventBus) -> None:
        """An unregistered name raises UnknownEventTypeError, a LookupError, saying
        what to pass instead."""

        def handle(event: DomainEvent) -> None: ...

        with pytest.raises(UnknownEventTypeError, match="pass an event class") as info:
            bus.subscribe("SubsTestNoSuchEvent", handle)

        assert isinstance(info.value, LookupError)
        assert "'SubsTestNoSuchEvent'" in str(info.value)
        assert {} == bus.subscribers

    @pytest.mark.parametrize("not_an_event", [int, object(), 42, None, RetryPolicy])
    def test_non_event_type_is_a_type_error(
        self, bus: EventBus, not_an_event: object
    ) -> None:
        """Anything but a DomainEvent subclass or wire name raises NotAnEventTypeError,
        a TypeError, saying what to pass."""

        def handle(event: DomainEvent) -> None: ...

        with pytest.raises(
            NotAnEventTypeError, match=r"pass the event class, e\.g\. subscribe"
        ) as info:
            bus.subscribe(not_an_event, handle)

        assert isinstance(info.value, TypeError)
        assert repr(not_an_event) in str(info.value)

    def test_non_callable_handler_is_refused(self) -> None:
        """HandlerRegistry.add refuses a handler that cannot be called."""
        registry = HandlerRegistry()

        with pytest.raises(SubscriptionError, match="handler must be callable"):
            registry.add(HideCut, "not a function")


class TestDecorator:
    def test_bare_decorator_reads_the_type_hint(self, bus: EventBus) -> None:
        """@bus.subscribe subscribes to the class named by the first parameter's hint."""

        @bus.subscribe
        def handle(event: HideCut) -> None: ...

        assert {HideCut: [handle]} == bus.subscribers

    def test_decorator_returns_the_function_unchanged(self, bus: EventBus) -> None:
        """A decorated function is the same object and still callable directly."""
        seen: list[HideCut] = []

        def handle(event: HideCut) -> str:
            seen.append(event)
            return "called"

        decorated = bus.subscribe(handle)

        assert handle is decorated
        assert "called" == decorated(HideCut())
        assert 1 == len(seen)

    def test_empty_parentheses_read_the_type_hint(self, bus: EventBus) -> None:
        """@bus.subscribe() with no arguments also reads the hint."""

        @bus.subscribe()
        def handle(event: StitchDone) -> None: ...

        assert {StitchDone: [handle]} == bus.subscribers

    @pytest.mark.parametrize(
        "handler",
        [on_cut_or_stitch_pipe, on_cut_or_stitch_union],
        ids=["pipe", "typing.Union"],
    )
    def test_union_hint_subscribes_to_each_member(
        self, bus: EventBus, handler: Callable[[DomainEvent], None]
    ) -> None:
        """A union hint (A | B or typing.Union[A, B]) subscribes to each member."""
        bus.subscribe(handler)

        assert {HideCut: [handler], StitchDone: [handler]} == bus.subscribers

    def test_optional_hint_subscribes_to_the_event_class(self, bus: EventBus) -> None:
        """None in a union hint is ignored: Optional[A] subscribes to A."""

        @bus.subscribe
        def handle(event: HideCut | None) -> None: ...

        assert {HideCut: [handle]} == bus.subscribers

    def test_bound_method_hint_skips_self(self, bus: EventBus) -> None:
        """A bound method's hint is read from its first parameter after self."""
        apprentice = Apprentice()

        bus.subscribe(apprentice.on_hide_cut)
        bus.publish(HideCut(hide_id=3))

        assert [3] == [event.hide_id for event in apprentice.seen]

    def test_callable_object_hint_is_read_from_its_call(self, bus: EventBus) -> None:
        """A callable object's hint is read from its __call__."""
        counter = HideCutCounter()

        assert counter is bus.subscribe(counter)
        bus.publish(HideCut())

        assert 1 == len(counter.seen)

    def test_decorator_with_class_and_retry_policy(self, bus: EventBus) -> None:
        """@bus.subscribe(EventClass, retry=...) subscribes with that retry policy."""
        policy = RetryPolicy(max_attempts=2)

        @bus.subscribe(HideCut, retry=policy)
        def handle(event: DomainEvent) -> None: ...

        [subscription] = bus.registry.handlers_for(HideCut)
        assert handle is subscription.handler
        assert policy is subscription.retry

    def test_decorator_with_name_only_reads_the_hint(self, bus: EventBus) -> None:
        """@bus.subscribe(name=...) reads the hint and uses the given name."""

        @bus.subscribe(name="cutting-room")
        def handle(event: HideCut) -> None: ...

        [subscription] = bus.registry.handlers_for(HideCut)
        assert "cutting-room" == subscription.name

    def test_missing_hint_is_refused_with_advice(self, bus: EventBus) -> None:
        """A first parameter without a hint raises SubscriptionError naming it and the
        two ways out."""

        def handle(event): ...

        with pytest.raises(
            SubscriptionError,
            match=r"parameter 'event' has no type hint; annotate it .*"
            r"bus\.subscribe\(EventClass, handler\)",
        ):
            bus.subscribe(handle)

        assert {} == bus.subscribers

    def test_no_parameter_is_refused_with_advice(self, bus: EventBus) -> None:
        """A handler with no parameter raises SubscriptionError showing the signature
        to use."""

        def handle() -> None: ...

        with pytest.raises(
            SubscriptionError,
            match=r"takes no parameter .* def handler\(event: SomeEvent\)",
        ):
            bus.subscribe(handle)

    def test_unresolvable_hint_is_refused_with_advice(self, bus: EventBus) -> None:
        """A hint naming an undefined class raises SubscriptionError suggesting the
        explicit form."""

        def handle(event: NoSuchEventClass) -> None:  # noqa: F821
            ...

        with pytest.raises(SubscriptionError, match=r"pass the event type explicitly"):
            bus.subscribe(handle)

    def test_hint_that_is_not_an_event_is_refused(self, bus: EventBus) -> None:
        """A hint naming a non-event class raises NotAnEventTypeError."""

        def handle(event: int) -> None: ...

        with pytest.raises(NotAnEventTypeError, match="DomainEvent subclass"):
            bus.subscribe(handle)


class TestHandlerNames:
    def test_function_is_named_module_and_qualname(self) -> None:
        """A function's name is module:qualname."""
        expected = f"{__name__}:on_hide_cut"

        assert expected == handler_name(on_hide_cut)

    def test_bound_method_is_named_after_its_function(self) -> None:
        """A bound method's name is its class's module and the method's qualname."""
        method = Apprentice().on_hide_cut

        assert f"{__name__}:Apprentice.on_hide_cut" == handler_name(method)

    def test_partial_is_named_after_the_wrapped_function(self) -> None:
        """A functools.partial, even nested, is named after the function it wraps."""
        partial = functools.partial(functools.partial(on_hide_cut))

        assert f"{__name__}:on_hide_cut" == handler_name(partial)

    def test_callable_instance_is_named_after_its_class(self) -> None:
        """A callable object is named after its class."""
        assert f"{__name__}:HideCutCounter" == handler_name(HideCutCounter())

    def test_name_argument_overrides_the_default(self, bus: EventBus) -> None:
        """subscribe(..., name=...) replaces the module:qualname name."""
        bus.subscribe(HideCut, on_hide_cut, name="cutting-room")

        [subscription] = bus.registry.handlers_for(HideCut)
        assert "cutting-room" == subscription.name


class TestDuplicates:
    def test_same_handler_twice_runs_once(self, bus: EventBus) -> None:
        """Subscribing one handler twice to one class leaves one subscription."""
        seen: list[HideCut] = []

        def handle(event: HideCut) -> None:
            seen.append(event)

        bus.subscribe(HideCut, handle)
        bus.subscribe(HideCut, handle)
        bus.publish(HideCut())

        assert 1 == len(seen)
        assert [handle] == bus.subscribers[HideCut]

    def test_two_handlers_with_one_name_on_one_class_are_refused(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A second, different handler under a taken name raises SubscriptionError
        naming the name and the fix."""
        bus.subscribe(HideCut, recorder.handler("first"), name="cutter")

        with pytest.raises(
            SubscriptionError,
            match=r"'cutter' is already used by another handler for "
            r"HideCut; pass a distinct name",
        ):
            bus.subscribe(HideCut, recorder.handler("second"), name="cutter")

        assert 1 == len(bus.subscribers[HideCut])

    @pytest.mark.parametrize(
        ("first_class", "second_class"),
        [(HideCut, SaddleHideCut), (SaddleHideCut, HideCut)],
        ids=["base-then-subclass", "subclass-then-base"],
    )
    def test_one_name_on_related_classes_is_refused(
        self,
        bus: EventBus,
        recorder: Recorder,
        first_class: type[DomainEvent],
        second_class: type[DomainEvent],
    ) -> None:
        """Two handlers cannot share a name on a class and its base class."""
        bus.subscribe(first_class, recorder.handler("first"), name="cutter")

        with pytest.raises(SubscriptionError, match="'cutter' is already used"):
            bus.subscribe(second_class, recorder.handler("second"), name="cutter")

    def test_one_name_on_unrelated_classes_is_allowed(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """Handlers of unrelated classes may share a name."""
        first, second = recorder.handler("first"), recorder.handler("second")

        bus.subscribe(HideCut, first, name="shared")
        bus.subscribe(StitchDone, second, name="shared")

        assert {HideCut: [first], StitchDone: [second]} == bus.subscribers


class TestResolution:
    def test_base_class_subscription_receives_subclasses(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler of a base class receives events of its subclasses."""
        bus.subscribe(HideCut, recorder.handler("base"))

        bus.publish(SaddleHideCut(hide_id=5))

        [(_, event)] = recorder.calls
        assert SaddleHideCut is type(event)

    def test_subclass_subscription_ignores_the_base(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler of a subclass does not receive events of its base class."""
        bus.subscribe(SaddleHideCut, recorder.handler("subclass"))

        bus.publish(HideCut())

        assert [] == recorder.calls

    def test_domain_event_receives_everything(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler of DomainEvent receives events of every class."""
        bus.subscribe(DomainEvent, recorder.handler("all"))

        bus.publish(HideCut())
        bus.publish(StitchDone())

        assert [HideCut, StitchDone] == [type(event) for _, event in recorder.calls]

    def test_class_and_base_subscription_runs_once(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler subscribed to a class and to its base runs once per event."""
        handle = recorder.handler("both")
        bus.subscribe(SaddleHideCut, handle)
        bus.subscribe(HideCut, handle)
        bus.subscribe(DomainEvent, handle)

        bus.publish(SaddleHideCut())

        assert ["both"] == recorder.labels

    def test_handlers_run_in_subscription_order(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """Handlers run in the order they were subscribed, whichever class they are on."""
        bus.subscribe(SaddleHideCut, recorder.handler("first"), name="first")
        bus.subscribe(DomainEvent, recorder.handler("second"), name="second")
        bus.subscribe(HideCut, recorder.handler("third"), name="third")
        bus.subscribe(SaddleHideCut, recorder.handler("fourth"), name="fourth")

        bus.publish(SaddleHideCut())

        assert ["first", "second", "third", "fourth"] == recorder.labels

    def test_find_returns_the_named_subscription(self) -> None:
        """HandlerRegistry.find looks a handler up by name among a class's handlers."""
        registry = HandlerRegistry()
        registry.add(HideCut, on_hide_cut, name="cutter")

        found = registry.find(SaddleHideCut, "cutter")

        assert found is not None
        assert on_hide_cut is found.handler
        assert registry.find(SaddleHideCut, "nobody") is None

    @pytest.mark.parametrize(
        ("handler", "is_async"),
        [
            (on_hide_cut, False),
            (on_hide_cut_async, True),
            (functools.partial(on_hide_cut_async), True),
            (HideCutCounter(), False),
            (AsyncHideCutCounter(), True),
        ],
        ids=["function", "coroutine-function", "partial", "object", "async-object"],
    )
    def test_async_handlers_are_recognised(
        self, handler: Callable[[DomainEvent], object], is_async: bool
    ) -> None:
        """A subscription knows whether its handler returns a coroutine."""
        registry = HandlerRegistry()

        subscription = registry.add(HideCut, handler, name="probe")

        assert is_async is subscription.is_async


class TestUnsubscribe:
    def test_unsubscribe_removes_the_handler(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """An unsubscribed handler no longer runs and unsubscribe returns True."""
        handle = recorder.handler("gone")
        bus.subscribe(HideCut, handle)

        assert bus.unsubscribe(HideCut, handle) is True
        bus.publish(HideCut())

        assert [] == recorder.calls
        assert {} == bus.subscribers

    def test_unsubscribing_an_unknown_handler_returns_false(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """Unsubscribing a handler that is not subscribed returns False."""
        bus.subscribe(HideCut, recorder.handler("kept"))

        assert bus.unsubscribe(HideCut, recorder.handler("never")) is False
        assert bus.unsubscribe(StitchDone, recorder.handler("never")) is False

    def test_bound_method_unsubscribes_by_equality(self, bus: EventBus) -> None:
        """The reference's TemporaryEventHandler.cleanup: a fresh bound method of the
        same object unsubscribes the one subscribed."""
        bench = Workbench(bus)

        assert bench.cleanup() is True
        bus.publish(HideCut())

        assert [] == bench.seen

    def test_unsubscribe_by_wire_name(self, bus: EventBus, recorder: Recorder) -> None:
        """unsubscribe accepts a registered wire name."""
        handle = recorder.handler("gone")
        bus.subscribe(HideCut, handle)

        assert bus.unsubscribe("SubsTestHideCut", handle) is True

    def test_clear_subscriptions_removes_everything(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """clear_subscriptions() with no argument removes every subscription."""
        bus.subscribe(HideCut, recorder.handler("cut"))
        bus.subscribe(StitchDone, recorder.handler("stitch"))

        bus.clear_subscriptions()
        bus.publish(HideCut())
        bus.publish(StitchDone())

        assert {} == bus.subscribers
        assert [] == recorder.calls

    def test_clear_subscriptions_of_one_class(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """clear_subscriptions(EventClass) removes only that class's subscriptions."""
        stitch = recorder.handler("stitch")
        bus.subscribe(HideCut, recorder.handler("cut"))
        bus.subscribe(SaddleHideCut, recorder.handler("saddle"))
        bus.subscribe(StitchDone, stitch)

        bus.clear_subscriptions(HideCut)
        bus.publish(SaddleHideCut())

        assert ["saddle"] == recorder.labels
        assert [stitch] == bus.subscribers[StitchDone]
        assert HideCut not in bus.subscribers

    def test_async_variants_work_inside_a_running_loop(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """subscribe_async, unsubscribe_async and clear_subscriptions_async, awaited in
        a running loop, change the subscriptions as their sync forms do."""
        cut, stitch = recorder.handler("cut"), recorder.handler("stitch")

        async def scenario() -> list[dict[type[DomainEvent], list[object]]]:
            views = []
            assert cut is await bus.subscribe_async(HideCut, cut)
            await bus.subscribe_async("SubsTestStitchDone", stitch)
            views.append(dict(bus.subscribers))
            assert await bus.unsubscribe_async(HideCut, cut) is True
            views.append(dict(bus.subscribers))
            await bus.clear_subscriptions_async()
            views.append(dict(bus.subscribers))
            return views

        views = asyncio.run(scenario())

        assert [
            {HideCut: [cut], StitchDone: [stitch]},
            {StitchDone: [stitch]},
            {},
        ] == views

    def test_clear_subscriptions_async_of_one_class(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """clear_subscriptions_async(EventClass) removes only that class's handlers."""
        stitch = recorder.handler("stitch")
        bus.subscribe(HideCut, recorder.handler("cut"))
        bus.subscribe(StitchDone, stitch)

        asyncio.run(bus.clear_subscriptions_async(HideCut))

        assert {StitchDone: [stitch]} == bus.subscribers


class TestSubscribersView:
    def test_maps_classes_to_handler_callables(self, bus: EventBus) -> None:
        """subscribers maps each class to its handlers, which keep their __name__."""

        def reserve_leather(event: HideCut) -> None: ...

        def notify_cutter(event: HideCut) -> None: ...

        bus.subscribe(HideCut, reserve_leather)
        bus.subscribe(HideCut, notify_cutter)

        names = [handler.__name__ for handler in bus.subscribers[HideCut]]
        assert ["reserve_leather", "notify_cutter"] == names

    def test_is_a_snapshot(self, bus: EventBus, recorder: Recorder) -> None:
        """Changing the returned dict, or subscribing later, leaves the other alone."""
        first = recorder.handler("first")
        bus.subscribe(HideCut, first)

        view = bus.subscribers
        view[HideCut].clear()
        view[StitchDone] = [first]
        bus.subscribe(HideCut, recorder.handler("second"), name="second")

        assert {HideCut: [], StitchDone: [first]} == view
        assert 2 == len(bus.subscribers[HideCut])
        assert StitchDone not in bus.subscribers


class TestChangesDuringDispatch:
    def test_unsubscribing_a_later_handler_affects_the_next_event(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler unsubscribed by an earlier one still runs for the current event,
        not for the next."""
        later = recorder.handler("later")

        def remove_later(event: HideCut) -> None:
            recorder.calls.append(("remover", event))
            bus.unsubscribe(HideCut, later)

        bus.subscribe(HideCut, remove_later)
        bus.subscribe(HideCut, later)

        bus.publish(HideCut())
        bus.publish(HideCut())

        assert ["remover", "later", "remover"] == recorder.labels

    def test_a_handler_unsubscribing_itself_does_not_skip_the_next(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler removing itself does not stop the handler after it."""

        def once(event: HideCut) -> None:
            recorder.calls.append(("once", event))
            bus.unsubscribe(HideCut, once)

        bus.subscribe(HideCut, once)
        bus.subscribe(HideCut, recorder.handler("after"))

        bus.publish(HideCut())
        bus.publish(HideCut())

        assert ["once", "after", "after"] == recorder.labels

    def test_subscribing_during_dispatch_affects_the_next_event(
        self, bus: EventBus, recorder: Recorder
    ) -> None:
        """A handler subscribed by a running handler first runs for the next event."""
        added = recorder.handler("added")

        def add_another(event: HideCut) -> None:
            recorder.calls.append(("adder", event))
            bus.subscribe(HideCut, added)

        bus.subscribe(HideCut, add_another)

        bus.publish(HideCut())
        bus.publish(HideCut())

        assert ["adder", "adder", "added"] == recorder.labels


class TestThreadSafety:
    THREADS = 8
    ROUNDS = 200

    def test_concurrent_subscribe_publish_unsubscribe(self, bus: EventBus) -> None:
        """8 threads each subscribing, publishing and unsubscribing 200 times raise
        nothing, see their own handler run for each of their events, and leave a
        consistent registry."""
        errors: list[BaseException] = []
        runs = [0] * self.THREADS
        keepers: list[Callable[[DomainEvent], None]] = []
        start = threading.Barrier(self.THREADS)

        def work(index: int) -> None:
            def handle(event: HideCut) -> None:
                if event.hide_id == index:  # other threads' events may arrive too
                    runs[index] += 1

            def keep(event: DomainEvent) -> None: ...

            try:
                start.wait()
                for _ in range(self.ROUNDS):
                    bus.subscribe(HideCut, handle, name=f"thread-{index}")
                    before = runs[index]
                    bus.publish(HideCut(hide_id=index))
                    assert before + 1 == runs[index]
                    assert bus.unsubscribe(HideCut, handle) is True
                bus.subscribe(StitchDone, keep, name=f"keeper-{index}")
                keepers.append(keep)
            except BaseException as error:  # re-raised by the main thread below
                errors.append(error)

        threads = [
            threading.Thread(target=work, args=(index,))
            for index in range(self.THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == errors
        assert [self.ROUNDS] * self.THREADS == runs
        assert HideCut not in bus.subscribers
        assert set(keepers) == set(bus.subscribers[StitchDone])
        assert self.THREADS == len(bus.registry.handlers_for(StitchDone))
