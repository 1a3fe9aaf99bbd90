"""Log records made while a handler runs carry its event's ids."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hidesync_events import (
    CorrelationFilter,
    EventBus,
    WorkflowStartedEvent,
    WorkflowStepStartedEvent,
)

app_logger = logging.getLogger("workshop.app")


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # caplog replaces its list of records for each test phase: read it late.
    correlation = CorrelationFilter()
    caplog.handler.addFilter(correlation)
    caplog.set_level(logging.INFO, "workshop.app")
    yield caplog
    caplog.handler.removeFilter(correlation)


class TestCorrelationFilter:
    def test_a_handlers_records_carry_its_event(
        self, bus: EventBus, records: pytest.LogCaptureFixture
    ) -> None:
        """What a handler logs names the event, the handler and the chain."""

        def reserve(event: WorkflowStartedEvent) -> None:
            app_logger.info("reserving for %s", event.execution_id)

        bus.subscribe(WorkflowStartedEvent, reserve, name="workshop:reserve")
        event = WorkflowStartedEvent(execution_id=7)

        bus.publish(event)

        [record] = [r for r in records.records if r.name == "workshop.app"]
        assert ("WorkflowStartedEvent", event.event_id, event.event_id, None) == (
            record.event_type,  # type: ignore[attr-defined]
            record.event_id,  # type: ignore[attr-defined]
            record.correlation_id,  # type: ignore[attr-defined]
            record.causation_id,  # type: ignore[attr-defined]
        )
        assert "workshop:reserve" == record.handler  # type: ignore[attr-defined]

    def test_records_of_a_cascade_keep_the_correlation(
        self, bus: EventBus, records: pytest.LogCaptureFixture
    ) -> None:
        """An event published by a handler is logged with the first event's
        correlation id and its cause."""
        started = WorkflowStartedEvent(execution_id=7)

        def first_step(event: WorkflowStartedEvent) -> None:
            bus.publish(WorkflowStepStartedEvent(execution_id=event.execution_id))

        def log_step(event: WorkflowStepStartedEvent) -> None:
            app_logger.info("step started")

        bus.subscribe(WorkflowStartedEvent, first_step)
        bus.subscribe(WorkflowStepStartedEvent, log_step)
        bus.publish(started)

        [record] = [r for r in records.records if r.name == "workshop.app"]
        assert (started.event_id, started.event_id) == (
            record.correlation_id,  # type: ignore[attr-defined]
            record.causation_id,  # type: ignore[attr-defined]
        )

    def test_records_outside_handlers_get_empty_fields(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        """Outside a handler the fields exist and are None, so formats never fail."""
        app_logger.info("no event here")

        [record] = records.records
        assert (None, None) == (record.correlation_id, record.handler)  # type: ignore[attr-defined]
