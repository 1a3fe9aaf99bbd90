"""OpenTelemetry spans for publish and handle, and the trace context in the envelope."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hidesync_events import EventBus, ToolCreated, configure, global_event_bus
from hidesync_events.codec import Envelope, decode
from hidesync_events.errors import ConfigurationError
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.settings import Settings
from tests.support import conformance as c
from tests.support.fleet import WorkerFleet

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _recording_provider() -> None:
    # A process has one global provider; the first one set stays.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def traced_bus() -> Iterator[EventBus]:
    bus = EventBus(settings=configure(mode="eager", tracing=True))
    yield bus
    bus.close()


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


class TestEager:
    def test_a_handler_runs_in_a_child_span_of_the_publish(
        self, traced_bus: EventBus, spans: InMemorySpanExporter
    ) -> None:
        traced_bus.subscribe(ToolCreated, lambda event: None, name="app:on_tool")

        receipt = traced_bus.publish(ToolCreated(tool_id=7))

        [publish] = named(spans, "publish ToolCreated")
        [handle] = named(spans, "handle ToolCreated")
        assert SpanKind.PRODUCER == publish.kind
        assert SpanKind.CONSUMER == handle.kind
        assert handle.parent is not None
        assert publish.context.span_id == handle.parent.span_id
        assert publish.context.trace_id == handle.context.trace_id
        assert {
            "hidesync.handler": "app:on_tool",
            "hidesync.event_type": "ToolCreated",
            "hidesync.category": "tools",
            "messaging.message.id": receipt.event_id,
        }.items() <= dict(handle.attributes or {}).items()

    def test_events_published_by_a_handler_stay_in_the_trace(
        self, traced_bus: EventBus, spans: InMemorySpanExporter
    ) -> None:
        traced_bus.subscribe(
            c.CascadeStarted,
            lambda event: traced_bus.publish(c.CascadeFollowed(token=event.token)),
            name="app:cascade",
        )
        traced_bus.subscribe(c.CascadeFollowed, lambda event: None, name="app:follow")

        traced_bus.publish(c.CascadeStarted(token="t"))

        [first_handle] = named(spans, "handle CascadeStarted")
        [second_publish] = named(spans, "publish CascadeFollowed")
        [second_handle] = named(spans, "handle CascadeFollowed")
        assert second_publish.parent is not None
        assert first_handle.context.span_id == second_publish.parent.span_id
        traces = {s.context.trace_id for s in spans.get_finished_spans()}
        assert 1 == len(traces)
        assert second_handle.context.trace_id in traces

    def test_a_failing_handler_marks_its_span_as_an_error(
        self, traced_bus: EventBus, spans: InMemorySpanExporter
    ) -> None:
        def broken(event: ToolCreated) -> None:
            raise LookupError("no such tool")

        traced_bus.subscribe(ToolCreated, broken, name="app:broken")
        traced_bus.publish(ToolCreated(tool_id=1))

        handles = named(spans, "handle ToolCreated")
        assert handles, "no handle span"
        for handle in handles:  # one per attempt
            assert StatusCode.ERROR == handle.status.status_code
            [exception] = [e for e in handle.events if e.name == "exception"]
            assert "LookupError" == (exception.attributes or {})["exception.type"]
        assert list(range(1, len(handles) + 1)) == sorted(
            int((h.attributes or {})["hidesync.attempt"])
            for h in handles  # type: ignore[arg-type]
        )

    def test_the_envelope_carries_the_trace_context_only_when_tracing(
        self, traced_bus: EventBus, spans: InMemorySpanExporter
    ) -> None:
        seen: list[Envelope] = []
        traced_bus.add_publish_listener(seen.append)
        untraced = EventBus(settings=Settings(mode="eager", tracing=False))
        untraced.add_publish_listener(seen.append)

        traced_bus.publish(ToolCreated(tool_id=1))
        untraced.publish(ToolCreated(tool_id=2))

        traced, plain = (json.loads(envelope.text) for envelope in seen)
        [publish] = named(spans, "publish ToolCreated")
        assert f"{publish.context.trace_id:032x}" in traced["trace"]["traceparent"]
        assert "trace" not in plain
        assert traced["trace"] == decode(seen[0].text, max_bytes=10**6).trace

    def test_publish_many_publishes_under_one_span(
        self, traced_bus: EventBus, spans: InMemorySpanExporter
    ) -> None:
        traced_bus.subscribe(ToolCreated, lambda event: None, name="app:on_tool")

        traced_bus.publish_many([ToolCreated(tool_id=n) for n in range(3)])

        [publish] = named(spans, "publish many")
        handles = named(spans, "handle ToolCreated")
        assert 3 == len(handles)
        assert {publish.context.span_id} == {
            h.parent.span_id for h in handles if h.parent
        }


@pytest.mark.parametrize(
    "trace_header",
    ['"not an object"', "[]", '{"traceparent":7}', '{"tracestate":null}'],
)
def test_a_malformed_trace_header_is_dropped_not_the_event(trace_header: str) -> None:
    """Telemetry never costs an event: it decodes, without a trace context."""
    event = ToolCreated(tool_id=1)
    broken = event.to_json().replace(
        '"payload":', f'"trace":{trace_header},"payload":', 1
    )

    envelope = decode(broken, max_bytes=10**6)

    assert event == envelope.event
    assert envelope.trace is None


def test_baggage_reaches_the_handler_and_what_it_publishes(
    traced_bus: EventBus, spans: InMemorySpanExporter
) -> None:
    seen: list[object] = []
    sent: list[Envelope] = []

    def cascade(event: c.CascadeStarted) -> None:
        seen.append(baggage.get_baggage("tenant"))
        traced_bus.publish(c.CascadeFollowed(token=event.token))

    traced_bus.subscribe(c.CascadeStarted, cascade, name="app:cascade")
    traced_bus.add_publish_listener(sent.append)
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        traced_bus.publish(c.CascadeStarted(token="b"))
    finally:
        context.detach(token)

    assert ["acme"] == seen
    assert all("tenant=acme" in (e.trace or {}).get("baggage", "") for e in sent)


def test_an_envelope_sent_again_travels_in_the_sender_trace(
    traced_bus: EventBus, spans: InMemorySpanExporter
) -> None:
    """A replay or a recorded envelope joins the trace of whoever sends it now."""
    original = ToolCreated(tool_id=3).to_json()
    old_trace = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    }
    recorded = original.replace(
        '"payload":', f'"trace":{json.dumps(old_trace)},"payload":'
    )
    traced_bus.subscribe(ToolCreated, lambda event: None, name="app:on_tool")

    traced_bus.send_envelope(decode(recorded, max_bytes=10**6))

    [publish] = named(spans, "publish ToolCreated")
    [handle] = named(spans, "handle ToolCreated")
    assert publish.context.trace_id == handle.context.trace_id
    assert 0x0AF7651916CD43DD8448EB211C80319C != handle.context.trace_id


def test_tracing_without_opentelemetry_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)

    with pytest.raises(
        ConfigurationError, match=r"pip install 'hidesync-events\[otel\]'"
    ):
        EventBus(settings=configure(mode="eager", tracing=True)).publish(
            ToolCreated(tool_id=1)
        )


def test_workers_continue_the_publisher_trace(
    fresh_redis: ThrowawayRedis,
    worker_fleet: WorkerFleet,
    spans: InMemorySpanExporter,
) -> None:
    """Celery mode: the worker's handlers, and what they publish, share the trace."""
    worker_fleet.start(
        "traced", categories=("conformance",), env={"HIDESYNC_EVENTS_TRACING": "true"}
    )
    configure(mode="celery", broker_url=fresh_redis.url, tracing=True)

    global_event_bus.publish(c.CascadeStarted(token="traced"))

    deadline = time.monotonic() + 30
    while not c.records("cascade_followed", "traced"):
        assert time.monotonic() < deadline, worker_fleet.logs()
        time.sleep(0.1)
    [publish] = named(spans, "publish CascadeStarted")
    trace_id = f"{publish.context.trace_id:032x}"
    assert trace_id == c.records("cascade_started", "traced")[0]["trace_id"]
    assert trace_id == c.records("cascade_followed", "traced")[0]["trace_id"]
