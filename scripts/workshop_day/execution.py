"""One execution of a workflow template, from start to completion or cancellation.

A maker starts the execution and reserves its resources, works its steps (making the
decisions some steps ask for, reporting progress and milestones, moving on to the next
step), may be paused and resumed or cancelled on the way, and at the end releases what
was reserved. ``record_execution`` runs one; ``ExecutionRun`` keeps its clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from hidesync_events import (
    CatalogueEvent,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowDecisionMadeEvent,
    WorkflowMilestoneReachedEvent,
    WorkflowNavigationEvent,
    WorkflowPausedEvent,
    WorkflowProgressUpdateEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceUnavailableEvent,
    WorkflowResumedEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    WorkflowStepStartedEvent,
)

from .clock import Stamp, shortly_after, stamp
from .workshop import (
    CANCEL_RATE,
    CANCEL_REASONS,
    MAKERS,
    MANUAL_NAVIGATION_RATE,
    MATERIAL_REASONS,
    MILESTONES,
    PAUSE_RATE,
    PAUSE_REASONS,
    Resource,
    Step,
    Workflow,
)

# -- one execution ---------------------------------------------------------------------


@dataclass(frozen=True)
class Interruption:
    """A pause, or a cancellation, before the execution's next step."""

    after_steps: int
    reason: str
    cancels: bool

    @property
    def lacks_material(self) -> bool:
        return self.reason in MATERIAL_REASONS


class ExecutionKey(TypedDict):
    workflow_id: int
    execution_id: int


def choose_interruption(rng: random.Random, step_count: int) -> Interruption | None:
    """Decide whether, when and why an execution will be paused or cancelled."""
    roll = rng.random()
    if roll < CANCEL_RATE:
        after_steps = rng.randrange(step_count)
        return Interruption(after_steps, rng.choice(CANCEL_REASONS), cancels=True)

    if roll < CANCEL_RATE + PAUSE_RATE:
        after_steps = rng.randint(1, step_count - 1)
        return Interruption(after_steps, rng.choice(PAUSE_REASONS), cancels=False)

    return None


class ExecutionRun:
    """One execution of a workflow, recorded event by event as its clock advances."""

    def __init__(
        self,
        rng: random.Random,
        workflow: Workflow,
        execution_id: int,
        user_id: int,
        start: datetime,
    ) -> None:
        self.rng = rng
        self.workflow = workflow
        self.key = ExecutionKey(
            workflow_id=workflow.workflow_id, execution_id=execution_id
        )
        self.user_id = user_id
        self.now = start
        self.events: list[CatalogueEvent] = []
        self.completed_steps = 0
        self.minutes_worked = 0.0
        self.reservations: list[tuple[Resource, float]] = []

    def _stamp(self) -> Stamp:
        # Consecutive events sit a second or two apart, so sorting the whole day by
        # timestamp keeps each execution's events in the order they happened.
        self.now = shortly_after(self.rng, self.now)
        return stamp(self.rng, self.now, self.user_id)

    def _spend(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)
        self.minutes_worked += minutes

    def start(self, selected_outcome_id: int | None) -> None:
        """Start the execution and reserve what the workflow needs."""
        self.events.append(
            WorkflowStartedEvent(
                **self._stamp(),
                **self.key,
                workflow_name=self.workflow.name,
                selected_outcome_id=selected_outcome_id,
            )
        )
        for resource in self.workflow.resources:
            self._reserve(resource)

    def _reserve(self, resource: Resource) -> None:
        quantity = resource.quantity
        if resource.resource_type == "material":
            quantity = round(quantity * self.rng.uniform(0.85, 1.25), 2)

        self.reservations.append((resource, quantity))
        self.events.append(
            WorkflowResourceReservedEvent(
                **self._stamp(),
                **self.key,
                resource_type=resource.resource_type,
                resource_id=resource.resource_id,
                resource_name=resource.name,
                quantity=quantity,
            )
        )

    def navigate(self, from_step: Step, to_step: Step) -> None:
        """Move from one step to the next, usually by the app, sometimes by hand."""
        manual = self.rng.random() < MANUAL_NAVIGATION_RATE
        self.events.append(
            WorkflowNavigationEvent(
                **self._stamp(),
                **self.key,
                from_step_id=from_step.step_id,
                to_step_id=to_step.step_id,
                navigation_type="manual" if manual else "sequential",
            )
        )

    def run_step(self, step: Step) -> None:
        """Start a step, decide if it is a decision, work it and report progress."""
        self.events.append(
            WorkflowStepStartedEvent(
                **self._stamp(),
                **self.key,
                step_id=step.step_id,
                step_name=step.name,
                step_type=step.step_type,
            )
        )
        if step.options:
            self._decide(step)

        minutes = round(max(0.5, step.minutes * self.rng.uniform(0.7, 1.4)), 1)
        self._spend(minutes)
        self.events.append(
            WorkflowStepCompletedEvent(
                **self._stamp(),
                **self.key,
                step_id=step.step_id,
                step_name=step.name,
                step_type=step.step_type,
                actual_duration=minutes,
            )
        )
        self.completed_steps += 1
        self._report_progress(step)

    def _decide(self, step: Step) -> None:
        choice = self.rng.randrange(len(step.options))
        self.events.append(
            WorkflowDecisionMadeEvent(
                **self._stamp(),
                **self.key,
                step_id=step.step_id,
                step_name=step.name,
                decision_option_id=step.step_id * 10 + choice + 1,
                decision_text=step.options[choice],
            )
        )

    def _report_progress(self, step: Step) -> None:
        total = len(self.workflow.steps)
        before = 100 * (self.completed_steps - 1) / total
        progress = 100 * self.completed_steps / total
        remaining = sum(
            later.minutes for later in self.workflow.steps[self.completed_steps :]
        )
        self.events.append(
            WorkflowProgressUpdateEvent(
                **self._stamp(),
                **self.key,
                total_steps=total,
                completed_steps=self.completed_steps,
                progress_percentage=round(progress, 1),
                estimated_remaining=round(remaining, 1),
            )
        )

        for threshold, name in MILESTONES:
            if before < threshold <= progress:
                self._mark_milestone(step, name, progress)

    def _mark_milestone(self, step: Step, name: str, progress: float) -> None:
        self.events.append(
            WorkflowMilestoneReachedEvent(
                **self._stamp(),
                **self.key,
                step_id=step.step_id,
                milestone_name=name,
                progress_percentage=round(progress, 1),
            )
        )

    def interrupt(self, interruption: Interruption) -> None:
        """Pause and resume, or cancel; first report the missing material if any."""
        if interruption.lacks_material:
            self._report_shortage()

        if interruption.cancels:
            self._cancel(interruption.reason)
        else:
            self._pause(interruption.reason)

    def _report_shortage(self) -> None:
        materials = [
            (resource, quantity)
            for resource, quantity in self.reservations
            if resource.resource_type == "material"
        ]
        resource, reserved = self.rng.choice(materials)
        required = round(reserved * self.rng.uniform(0.3, 0.8), 2)
        available = round(required * self.rng.uniform(0.0, 0.6), 2)
        self.events.append(
            WorkflowResourceUnavailableEvent(
                **self._stamp(),
                **self.key,
                resource_type=resource.resource_type,
                resource_id=resource.resource_id,
                resource_name=resource.name,
                required_quantity=required,
                available_quantity=available,
            )
        )

    def _pause(self, reason: str) -> None:
        self.events.append(
            WorkflowPausedEvent(
                **self._stamp(),
                **self.key,
                workflow_name=self.workflow.name,
                reason=reason,
            )
        )
        self._spend(round(self.rng.uniform(5.0, 45.0), 1))
        self.events.append(
            WorkflowResumedEvent(
                **self._stamp(), **self.key, workflow_name=self.workflow.name
            )
        )

    def _cancel(self, reason: str) -> None:
        # Whatever was reserved goes back before the execution ends.
        self._release_all()
        self.events.append(
            WorkflowCancelledEvent(
                **self._stamp(),
                **self.key,
                workflow_name=self.workflow.name,
                reason=reason,
            )
        )

    def complete(self, outcome_id: int) -> None:
        """Give back what was reserved and close the execution with its outcome."""
        self._release_all()
        self.events.append(
            WorkflowCompletedEvent(
                **self._stamp(),
                **self.key,
                workflow_name=self.workflow.name,
                outcome_id=outcome_id,
                total_duration=round(self.minutes_worked, 1),
            )
        )

    def _release_all(self) -> None:
        for resource, quantity in self.reservations:
            self.events.append(
                WorkflowResourceReleasedEvent(
                    **self._stamp(),
                    **self.key,
                    resource_type=resource.resource_type,
                    resource_id=resource.resource_id,
                    resource_name=resource.name,
                    quantity=quantity,
                )
            )


def record_execution(
    rng: random.Random, workflow: Workflow, execution_id: int, start: datetime
) -> list[CatalogueEvent]:
    """One execution from start to end: completed, paused and resumed, or cancelled."""
    run = ExecutionRun(rng, workflow, execution_id, rng.choice(MAKERS), start)
    interruption = choose_interruption(rng, len(workflow.steps))
    selected_outcome_id = rng.choice((*workflow.outcome_ids, None))
    run.start(selected_outcome_id)

    for done, step in enumerate(workflow.steps):
        if interruption is not None and interruption.after_steps == done:
            run.interrupt(interruption)
            if interruption.cancels:
                return run.events

        if done > 0:
            run.navigate(workflow.steps[done - 1], step)
        run.run_step(step)

    if selected_outcome_id is None:
        selected_outcome_id = rng.choice(workflow.outcome_ids)
    run.complete(selected_outcome_id)
    return run.events
