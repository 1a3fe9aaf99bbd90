"""HideSync's reference handlers, in eager mode on a fresh bus."""

from __future__ import annotations

import logging

import pytest

from hidesync_events import (
    EventBus,
    ToolCheckedOut,
    ToolMaintenanceCompleted,
    ToolMaintenanceScheduled,
    ToolReturned,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceUnavailableEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
)
from workers.handlers import (
    AuditTrail,
    ResourceTracking,
    ToolAvailability,
    WorkflowAnalytics,
)


@pytest.fixture
def analytics(bus: EventBus) -> WorkflowAnalytics:
    handlers = WorkflowAnalytics(bus)
    handlers.register()
    return handlers


@pytest.fixture
def resources(bus: EventBus) -> ResourceTracking:
    handlers = ResourceTracking(bus)
    handlers.register()
    return handlers


@pytest.fixture
def tools(bus: EventBus) -> ToolAvailability:
    handlers = ToolAvailability(bus)
    handlers.register()
    return handlers


@pytest.fixture
def audit(bus: EventBus) -> AuditTrail:
    handlers = AuditTrail(bus, capacity=3)
    handlers.register()
    return handlers


class TestWorkflowAnalytics:
    def test_counts_executions_by_outcome(
        self, bus: EventBus, analytics: WorkflowAnalytics
    ) -> None:
        """Starts, completions (with their minutes) and cancellations are counted."""
        for execution_id in (1, 2, 3):
            bus.publish(WorkflowStartedEvent(execution_id=execution_id))
        bus.publish(WorkflowCompletedEvent(execution_id=1, total_duration=40.0))
        bus.publish(WorkflowCompletedEvent(execution_id=2, total_duration=20.5))
        bus.publish(WorkflowCancelledEvent(execution_id=3, reason="Material shortage"))

        report = analytics.report()

        assert (report.started, report.completed, report.cancelled) == (3, 2, 1)
        assert report.completed_minutes == pytest.approx(60.5)

    def test_step_minutes_per_step_type(
        self, bus: EventBus, analytics: WorkflowAnalytics
    ) -> None:
        """Step durations add up per step type; a step without a type is 'unspecified'."""
        bus.publish(
            WorkflowStepCompletedEvent(step_type="cutting", actual_duration=10.0)
        )
        bus.publish(
            WorkflowStepCompletedEvent(step_type="cutting", actual_duration=15.0)
        )
        bus.publish(WorkflowStepCompletedEvent(step_type="stitching"))
        bus.publish(WorkflowStepCompletedEvent(actual_duration=3.0))

        steps = {
            s.step_type: (s.completed, s.mean_minutes) for s in analytics.report().steps
        }

        assert steps == {
            "cutting": (2, 12.5),
            "stitching": (1, 0.0),
            "unspecified": (1, 3.0),
        }


class TestResourceTracking:
    def test_released_reservations_close(
        self, bus: EventBus, resources: ResourceTracking
    ) -> None:
        """A reservation stays open until released, whatever order the two arrive in."""
        leather = {"execution_id": 7, "resource_type": "material", "resource_id": 50}
        awl = {"execution_id": 7, "resource_type": "tool", "resource_id": 25}

        bus.publish(WorkflowResourceReleasedEvent(**leather, quantity=2.5))
        bus.publish(WorkflowResourceReservedEvent(**leather, quantity=2.5))
        bus.publish(WorkflowResourceReservedEvent(**awl))

        report = resources.report()
        assert report.open_reservations == {"7:tool:25": 1.0}
        assert (report.reserved, report.released) == (2, 1)

    def test_unavailable_resources_raise_a_shortage_alert(
        self,
        bus: EventBus,
        resources: ResourceTracking,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A reservation that cannot be met is recorded and logged as a warning."""
        event = WorkflowResourceUnavailableEvent(
            execution_id=9, resource_type="material", resource_id=50,
            resource_name="Leather - 4oz", required_quantity=5.0, available_quantity=2.0,
        )  # fmt: skip

        with caplog.at_level(logging.WARNING, "hidesync.events.workers.resources"):
            bus.publish(event)

        [alert] = resources.report().shortages
        assert {
            key: alert[key] for key in ("execution_id", "required", "available")
        } == {"execution_id": 9, "required": 5.0, "available": 2.0}
        assert "Leather - 4oz" in caplog.text


class TestToolAvailability:
    def test_who_has_which_tool(self, bus: EventBus, tools: ToolAvailability) -> None:
        """Checked-out tools are listed with their holder until returned."""
        bus.publish(ToolCheckedOut(checkout_id=1, tool_id=3, checked_out_by="Ana"))
        bus.publish(ToolCheckedOut(checkout_id=2, tool_id=4, checked_out_by="Ben"))
        bus.publish(ToolReturned(checkout_id=1, tool_id=3, has_issues=True))

        report = tools.report()

        assert report.checked_out == {4: "Ben"}
        assert (report.checkouts, report.returned_with_issues) == (2, 1)

    def test_tools_in_maintenance(self, bus: EventBus, tools: ToolAvailability) -> None:
        """A tool is in maintenance from scheduling until the same job completes."""
        bus.publish(ToolMaintenanceScheduled(maintenance_id=1, tool_id=8))
        bus.publish(ToolMaintenanceScheduled(maintenance_id=2, tool_id=9))
        bus.publish(ToolMaintenanceCompleted(maintenance_id=1, tool_id=8))

        assert tools.report().in_maintenance == [9]


class TestAuditTrail:
    def test_every_event_is_recorded_within_capacity(
        self, bus: EventBus, audit: AuditTrail
    ) -> None:
        """Every event is counted by type; only the newest lines are kept."""
        events = [WorkflowStartedEvent(execution_id=n, user_id=n) for n in range(5)]
        for event in events:
            bus.publish(event)

        report = audit.report(latest=10)

        assert report.recorded == 5
        assert report.by_type == {"WorkflowStartedEvent": 5}
        assert [e.event_id for e in events[-3:]] == [
            line["event_id"] for line in report.latest
        ]
        assert [line["user_id"] for line in report.latest] == [2, 3, 4]
