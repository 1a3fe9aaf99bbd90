"""The HideSync event catalogue: 29 events in 8 categories.

Every field has a default (ints 0, strings ``""``, optional values ``None``) so events
can be built with only the fields at hand; ``user_id`` is an optional int on every event.
Ids are ints, durations are minutes as floats. Date fields accept ISO text, ``date`` or
``datetime`` values: ``"2024-01-15"`` becomes a ``date``, a text with a time becomes a
``datetime``, ``""`` becomes ``None``, and they always travel as ISO text.

Each category has an abstract base (``ToolEvent``, ``ExecutionEvent``...): subscribing
to it receives every event of the category.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, JsonValue

from hidesync_events.event import DomainEvent


def _parse_iso_date(value: Any) -> Any:
    if value is None or isinstance(value, dt.date):  # datetime is a date too
        return value

    if not isinstance(value, str):
        raise ValueError(
            f"expected ISO text, a date or a datetime, got {type(value).__name__} {value!r}"
        )

    if value == "":
        return None

    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected an ISO date (2024-01-15) or date-time "
            f"(2024-01-15T09:30:00+00:00), got {value!r}"
        ) from None


#: A calendar date or a point in time, given as ISO text or a date/datetime value.
IsoDate = Annotated[dt.datetime | dt.date | None, BeforeValidator(_parse_iso_date)]
Minutes = float


class CatalogueEvent(DomainEvent, abstract=True):
    """Base of the 29 catalogued events: they all carry the acting user."""

    user_id: int | None = None


# -- core --------------------------------------------------------------------------------


class CoreEvent(CatalogueEvent, category="core", abstract=True):
    """Entity lifecycle events shared by every domain model."""


class EntityCreatedEvent(CoreEvent):
    entity_id: JsonValue = None
    entity_type: str = ""


class EntityUpdatedEvent(CoreEvent):
    entity_id: JsonValue = None
    entity_type: str = ""
    changes: dict[str, JsonValue] = Field(default_factory=dict)


class EntityDeletedEvent(CoreEvent):
    entity_id: JsonValue = None
    entity_type: str = ""


# -- tools -------------------------------------------------------------------------------


class ToolEvent(CatalogueEvent, category="tools", abstract=True):
    """Tool lifecycle, maintenance, check-out and return."""


class ToolCreated(ToolEvent):
    tool_id: int = 0
    name: str = ""
    category: str = ""


class ToolStatusChanged(ToolEvent):
    tool_id: int = 0
    previous_status: str = ""
    new_status: str = ""
    reason: str | None = None


class ToolMaintenanceScheduled(ToolEvent):
    maintenance_id: int = 0
    tool_id: int = 0
    maintenance_type: str = ""
    date: IsoDate = None


class ToolMaintenanceCompleted(ToolEvent):
    maintenance_id: int = 0
    tool_id: int = 0
    completion_date: IsoDate = None
    performed_by: str | None = None
    next_date: IsoDate = None


class ToolCheckedOut(ToolEvent):
    checkout_id: int = 0
    tool_id: int = 0
    checked_out_by: str = ""
    project_id: int | None = None
    due_date: IsoDate = None


class ToolReturned(ToolEvent):
    checkout_id: int = 0
    tool_id: int = 0
    has_issues: bool = False
    condition_after: str | None = None


# -- workflows ---------------------------------------------------------------------------


class WorkflowEvent(CatalogueEvent, category="workflows", abstract=True):
    """Workflow definitions and templates."""


class WorkflowCreatedEvent(WorkflowEvent):
    workflow_id: int = 0
    workflow_name: str = ""
    is_template: bool = False


class WorkflowUpdatedEvent(WorkflowEvent):
    workflow_id: int = 0
    workflow_name: str = ""
    changes: dict[str, JsonValue] = Field(default_factory=dict)


class WorkflowDeletedEvent(WorkflowEvent):
    workflow_id: int = 0
    workflow_name: str = ""


class WorkflowPublishedEvent(WorkflowEvent):
    workflow_id: int = 0
    workflow_name: str = ""
    visibility: str = "public"


# -- execution ---------------------------------------------------------------------------


class ExecutionEvent(CatalogueEvent, category="execution", abstract=True):
    """A workflow execution starting, pausing, resuming, completing or being cancelled."""


class WorkflowStartedEvent(ExecutionEvent):
    workflow_id: int = 0
    execution_id: int = 0
    workflow_name: str = ""
    selected_outcome_id: int | None = None


class WorkflowCompletedEvent(ExecutionEvent):
    workflow_id: int = 0
    execution_id: int = 0
    workflow_name: str = ""
    outcome_id: int | None = None
    total_duration: Minutes | None = None


class WorkflowPausedEvent(ExecutionEvent):
    workflow_id: int = 0
    execution_id: int = 0
    workflow_name: str = ""
    reason: str = ""


class WorkflowResumedEvent(ExecutionEvent):
    workflow_id: int = 0
    execution_id: int = 0
    workflow_name: str = ""


class WorkflowCancelledEvent(ExecutionEvent):
    workflow_id: int = 0
    execution_id: int = 0
    workflow_name: str = ""
    reason: str = ""


# -- steps -------------------------------------------------------------------------------


class StepEvent(CatalogueEvent, category="steps", abstract=True):
    """Steps of an execution: started, completed, decided, navigated."""


class WorkflowStepStartedEvent(StepEvent):
    workflow_id: int = 0
    execution_id: int = 0
    step_id: int = 0
    step_name: str = ""
    step_type: str = ""


class WorkflowStepCompletedEvent(StepEvent):
    workflow_id: int = 0
    execution_id: int = 0
    step_id: int = 0
    step_name: str = ""
    step_type: str = ""
    actual_duration: Minutes | None = None


class WorkflowDecisionMadeEvent(StepEvent):
    workflow_id: int = 0
    execution_id: int = 0
    step_id: int = 0
    step_name: str = ""
    decision_option_id: int = 0
    decision_text: str = ""


class WorkflowNavigationEvent(StepEvent):
    workflow_id: int = 0
    execution_id: int = 0
    from_step_id: int | None = None
    to_step_id: int = 0
    navigation_type: str = "manual"


# -- resources ---------------------------------------------------------------------------


class ResourceEvent(CatalogueEvent, category="resources", abstract=True):
    """Materials and tools reserved for, released by, or missing from an execution."""


class WorkflowResourceReservedEvent(ResourceEvent):
    workflow_id: int = 0
    execution_id: int = 0
    resource_type: str = ""
    resource_id: int = 0
    resource_name: str = ""
    quantity: float | None = None


class WorkflowResourceReleasedEvent(ResourceEvent):
    workflow_id: int = 0
    execution_id: int = 0
    resource_type: str = ""
    resource_id: int = 0
    resource_name: str = ""
    quantity: float | None = None


class WorkflowResourceUnavailableEvent(ResourceEvent):
    workflow_id: int = 0
    execution_id: int = 0
    resource_type: str = ""
    resource_id: int = 0
    resource_name: str = ""
    required_quantity: float | None = None
    available_quantity: float | None = None


# -- import and export -------------------------------------------------------------------


class ImportExportEvent(CatalogueEvent, category="import_export", abstract=True):
    """Workflows brought in from presets or written out for sharing."""


class WorkflowImportedEvent(ImportExportEvent):
    workflow_id: int = 0
    workflow_name: str = ""
    source: str = ""
    preset_name: str = ""


class WorkflowExportedEvent(ImportExportEvent):
    workflow_id: int = 0
    workflow_name: str = ""
    export_format: str = "json"


# -- analytics ---------------------------------------------------------------------------


class AnalyticsEvent(CatalogueEvent, category="analytics", abstract=True):
    """Progress and milestones of an execution."""


class WorkflowMilestoneReachedEvent(AnalyticsEvent):
    workflow_id: int = 0
    execution_id: int = 0
    step_id: int = 0
    milestone_name: str = ""
    progress_percentage: float = 0.0


class WorkflowProgressUpdateEvent(AnalyticsEvent):
    workflow_id: int = 0
    execution_id: int = 0
    total_steps: int = 0
    completed_steps: int = 0
    progress_percentage: float = 0.0
    estimated_remaining: Minutes | None = None


CATALOGUE: tuple[type[CatalogueEvent], ...] = (
    EntityCreatedEvent,
    EntityUpdatedEvent,
    EntityDeletedEvent,
    ToolCreated,
    ToolStatusChanged,
    ToolMaintenanceScheduled,
    ToolMaintenanceCompleted,
    ToolCheckedOut,
    ToolReturned,
    WorkflowCreatedEvent,
    WorkflowUpdatedEvent,
    WorkflowDeletedEvent,
    WorkflowPublishedEvent,
    WorkflowStartedEvent,
    WorkflowCompletedEvent,
    WorkflowPausedEvent,
    WorkflowResumedEvent,
    WorkflowCancelledEvent,
    WorkflowStepStartedEvent,
    WorkflowStepCompletedEvent,
    WorkflowDecisionMadeEvent,
    WorkflowNavigationEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceUnavailableEvent,
    WorkflowImportedEvent,
    WorkflowExportedEvent,
    WorkflowMilestoneReachedEvent,
    WorkflowProgressUpdateEvent,
)
"""The 29 catalogued event classes, in catalogue order."""
