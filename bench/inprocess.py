"""In-process scenarios: eager mode against pydantic's own round trip, blinker, pyee and
a dict-of-lists bus. Costs in microseconds per event, from ``timeit`` over many calls.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import blinker
from pyee import EventEmitter

from bench.baselines import DictBus
from bench.results import Result, alternate
from hidesync_events import EventBus, WorkflowStartedEvent


def _event() -> WorkflowStartedEvent:
    return WorkflowStartedEvent(
        workflow_id=1,
        execution_id=100,
        workflow_name="Leather Wallet",
        selected_outcome_id=5,
    )


def per_call_us(call: Callable[[], Any], number: int) -> float:
    """The best of three timings of ``number`` calls, in microseconds per call."""
    return min(timeit.repeat(call, number=number, repeat=3)) / number * 1e6


def eager_bus(handlers: int) -> EventBus:
    bus = EventBus(mode="eager")
    for index, handler in enumerate(_distinct_noops(handlers)):
        bus.subscribe(WorkflowStartedEvent, handler, name=f"bench:noop{index}")
    return bus


def eager_publish_us(handlers: int, number: int) -> float:
    """Publishing prebuilt events (each published once: ids differ) to ``handlers``."""
    bus = eager_bus(handlers)
    events = iter([_event() for _ in range(number * 3 + 10)])
    return per_call_us(lambda: bus.publish(next(events)), number)


def pydantic_round_trip_us(number: int) -> float:
    event = _event()
    return per_call_us(
        lambda: WorkflowStartedEvent.model_validate_json(event.model_dump_json()),
        number,
    )


def _distinct_noops(count: int) -> list[Callable[..., None]]:
    # Buses keep one subscription per callable: ten receivers must be ten functions.
    def make() -> Callable[..., None]:
        def noop(*args: Any, **kwargs: Any) -> None:
            """Does nothing."""

        return noop

    return [make() for _ in range(count)]


def blinker_us(receivers: int, number: int) -> float:
    signal = blinker.Signal()
    for receiver in _distinct_noops(receivers):
        signal.connect(receiver, weak=False)
    event = _event()
    return per_call_us(lambda: signal.send(event), number)


def pyee_us(listeners: int, number: int) -> float:
    emitter = EventEmitter()
    for listener in _distinct_noops(listeners):
        emitter.on("started", listener)
    event = _event()
    return per_call_us(lambda: emitter.emit("started", event), number)


def dict_bus_us(handlers: int, number: int) -> float:
    bus = DictBus()
    for handler in _distinct_noops(handlers):
        bus.subscribe(WorkflowStartedEvent, handler)
    event = _event()
    return per_call_us(lambda: bus.publish(event), number)


def run(runs: int, *, quick: bool) -> list[Result]:
    number = 2000 if quick else 10000
    one = alternate(
        runs,
        lambda: eager_publish_us(1, number),
        lambda: pydantic_round_trip_us(number),
    )
    ten = alternate(
        runs, lambda: eager_publish_us(10, number), lambda: blinker_us(10, number)
    )
    ten_dispatch = alternate(
        runs,
        lambda: eager_publish_us(10, number) - eager_publish_us(0, number),
        lambda: blinker_us(10, number),
    )
    pyee_ten = alternate(
        runs, lambda: eager_publish_us(10, number), lambda: pyee_us(10, number)
    )
    dict_ten = alternate(
        runs, lambda: eager_publish_us(10, number), lambda: dict_bus_us(10, number)
    )
    return [
        Result(
            "eager publish, 1 handler, codec included",
            *one,
            "us",
            "<= 2x pydantic round trip",
            "lower",
            2.0,
            "pydantic dump+validate",
        ),
        Result(
            "eager publish, 10 handlers, codec included",
            *ten,
            "us",
            "< blinker, 10 receivers",
            "lower",
            1.0,
            "blinker",
        ),
        Result(
            "eager dispatch to 10 handlers (publish minus codec)",
            *ten_dispatch,
            "us",
            "< blinker, 10 receivers",
            "lower",
            1.0,
            "blinker",
        ),
        Result(
            "eager publish, 10 handlers (for reading)",
            *pyee_ten,
            "us",
            "-",
            "lower",
            float("inf"),
            "pyee",
        ),
        Result(
            "eager publish, 10 handlers (for reading)",
            *dict_ten,
            "us",
            "-",
            "lower",
            float("inf"),
            "dict-of-lists bus",
        ),
    ]
