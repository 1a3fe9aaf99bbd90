"""Workflow analytics: how long steps take by step type, how executions end."""

from __future__ import annotations

from dataclasses import dataclass

from hidesync_events import (
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    effects,
)
from workers.handlers.base import ReferenceHandlers


@dataclass(frozen=True)
class StepTypeStats:
    step_type: str
    completed: int
    minutes: float

    @property
    def mean_minutes(self) -> float:
        return self.minutes / self.completed if self.completed else 0.0


@dataclass(frozen=True)
class AnalyticsReport:
    started: int
    completed: int
    cancelled: int
    completed_minutes: float
    steps: list[StepTypeStats]


class WorkflowAnalytics(ReferenceHandlers):
    """Counts executions by outcome and step minutes by step type."""

    area = "analytics"

    def register(self) -> None:
        self.bus.subscribe(WorkflowStartedEvent, self.execution_started)
        self.bus.subscribe(WorkflowCompletedEvent, self.execution_completed)
        self.bus.subscribe(WorkflowCancelledEvent, self.execution_cancelled)
        self.bus.subscribe(WorkflowStepCompletedEvent, self.step_completed)

    def execution_started(self, event: WorkflowStartedEvent) -> None:
        effects().hincrby(self.key("executions"), "started")

    def execution_completed(self, event: WorkflowCompletedEvent) -> None:
        batch = effects().hincrby(self.key("executions"), "completed")
        if event.total_duration is not None:
            batch.hincrbyfloat(
                self.key("executions"), "completed_minutes", event.total_duration
            )

    def execution_cancelled(self, event: WorkflowCancelledEvent) -> None:
        effects().hincrby(self.key("executions"), "cancelled")

    def step_completed(self, event: WorkflowStepCompletedEvent) -> None:
        step_type = event.step_type or "unspecified"
        batch = effects().hincrby(self.key("step_count"), step_type)
        if event.actual_duration is not None:
            batch.hincrbyfloat(
                self.key("step_minutes"), step_type, event.actual_duration
            )

    def report(self) -> AnalyticsReport:
        executions = self.kv.hgetall(self.key("executions"))
        counts = self.kv.hgetall(self.key("step_count"))
        minutes = self.kv.hgetall(self.key("step_minutes"))
        steps = [
            StepTypeStats(step_type, int(count), float(minutes.get(step_type, 0)))
            for step_type, count in sorted(counts.items())
        ]
        return AnalyticsReport(
            started=int(executions.get("started", 0)),
            completed=int(executions.get("completed", 0)),
            cancelled=int(executions.get("cancelled", 0)),
            completed_minutes=float(executions.get("completed_minutes", 0)),
            steps=steps,
        )
