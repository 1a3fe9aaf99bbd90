"""The 29 catalogued events, checked against the table of DESIGN.md section 6 and the
constructor calls of reference/events-system.md sections 1-8.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

import hidesync_events
from hidesync_events import (
    CATALOGUE,
    CATALOGUE_CATEGORIES,
    AnalyticsEvent,
    CatalogueEvent,
    CoreEvent,
    DomainEvent,
    EntityCreatedEvent,
    EntityDeletedEvent,
    EntityUpdatedEvent,
    ExecutionEvent,
    ImportExportEvent,
    ResourceEvent,
    StepEvent,
    ToolCheckedOut,
    ToolCreated,
    ToolEvent,
    ToolMaintenanceCompleted,
    ToolMaintenanceScheduled,
    ToolReturned,
    ToolStatusChanged,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowCreatedEvent,
    WorkflowDecisionMadeEvent,
    WorkflowDeletedEvent,
    WorkflowEvent,
    WorkflowExportedEvent,
    WorkflowImportedEvent,
    WorkflowMilestoneReachedEvent,
    WorkflowNavigationEvent,
    WorkflowPausedEvent,
    WorkflowProgressUpdateEvent,
    WorkflowPublishedEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceUnavailableEvent,
    WorkflowResumedEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    WorkflowStepStartedEvent,
    WorkflowUpdatedEvent,
    category_of,
    queue_name,
    registered_event_types,
)

# -- DESIGN.md section 6, as data ---------------------------------------------------------

_WORKFLOW = {"workflow_id": 0, "workflow_name": ""}
_EXECUTION = {"workflow_id": 0, "execution_id": 0}
_RUN = {**_EXECUTION, "workflow_name": ""}
_STEP = {**_EXECUTION, "step_id": 0, "step_name": "", "step_type": ""}
_RESOURCE = {
    **_EXECUTION,
    "resource_type": "",
    "resource_id": 0,
    "resource_name": "",
}

#: wire name -> (category, {field besides event_id, timestamp and user_id: default})
TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "EntityCreatedEvent": ("core", {"entity_id": None, "entity_type": ""}),
    "EntityUpdatedEvent": (
        "core",
        {"entity_id": None, "entity_type": "", "changes": {}},
    ),
    "EntityDeletedEvent": ("core", {"entity_id": None, "entity_type": ""}),
    "ToolCreated": ("tools", {"tool_id": 0, "name": "", "category": ""}),
    "ToolStatusChanged": (
        "tools",
        {"tool_id": 0, "previous_status": "", "new_status": "", "reason": None},
    ),
    "ToolMaintenanceScheduled": (
        "tools",
        {"maintenance_id": 0, "tool_id": 0, "maintenance_type": "", "date": None},
    ),
    "ToolMaintenanceCompleted": (
        "tools",
        {
            "maintenance_id": 0,
            "tool_id": 0,
            "completion_date": None,
            "performed_by": None,
            "next_date": None,
        },
    ),
    "ToolCheckedOut": (
        "tools",
        {
            "checkout_id": 0,
            "tool_id": 0,
            "checked_out_by": "",
            "project_id": None,
            "due_date": None,
        },
    ),
    "ToolReturned": (
        "tools",
        {
            "checkout_id": 0,
            "tool_id": 0,
            "has_issues": False,
            "condition_after": None,
        },
    ),
    "WorkflowCreatedEvent": ("workflows", {**_WORKFLOW, "is_template": False}),
    "WorkflowUpdatedEvent": ("workflows", {**_WORKFLOW, "changes": {}}),
    "WorkflowDeletedEvent": ("workflows", {**_WORKFLOW}),
    "WorkflowPublishedEvent": ("workflows", {**_WORKFLOW, "visibility": "public"}),
    "WorkflowStartedEvent": ("execution", {**_RUN, "selected_outcome_id": None}),
    "WorkflowCompletedEvent": (
        "execution",
        {**_RUN, "outcome_id": None, "total_duration": None},
    ),
    "WorkflowPausedEvent": ("execution", {**_RUN, "reason": ""}),
    "WorkflowResumedEvent": ("execution", {**_RUN}),
    "WorkflowCancelledEvent": ("execution", {**_RUN, "reason": ""}),
    "WorkflowStepStartedEvent": ("steps", {**_STEP}),
    "WorkflowStepCompletedEvent": ("steps", {**_STEP, "actual_duration": None}),
    "WorkflowDecisionMadeEvent": (
        "steps",
        {
            **_EXECUTION,
            "step_id": 0,
            "step_name": "",
            "decision_option_id": 0,
            "decision_text": "",
        },
    ),
    "WorkflowNavigationEvent": (
        "steps",
        {
            **_EXECUTION,
            "from_step_id": None,
            "to_step_id": 0,
            "navigation_type": "manual",
        },
    ),
    "WorkflowResourceReservedEvent": ("resources", {**_RESOURCE, "quantity": None}),
    "WorkflowResourceReleasedEvent": ("resources", {**_RESOURCE, "quantity": None}),
    "WorkflowResourceUnavailableEvent": (
        "resources",
        {**_RESOURCE, "required_quantity": None, "available_quantity": None},
    ),
    "WorkflowImportedEvent": (
        "import_export",
        {**_WORKFLOW, "source": "", "preset_name": ""},
    ),
    "WorkflowExportedEvent": (
        "import_export",
        {**_WORKFLOW, "export_format": "json"},
    ),
    "WorkflowMilestoneReachedEvent": (
        "analytics",
        {**_EXECUTION, "step_id": 0, "milestone_name": "", "progress_percentage": 0.0},
    ),
    "WorkflowProgressUpdateEvent": (
        "analytics",
        {
            **_EXECUTION,
            "total_steps": 0,
            "completed_steps": 0,
            "progress_percentage": 0.0,
            "estimated_remaining": None,
        },
    ),
}

CATEGORY_BASES: dict[str, type[CatalogueEvent]] = {
    "core": CoreEvent,
    "tools": ToolEvent,
    "workflows": WorkflowEvent,
    "execution": ExecutionEvent,
    "steps": StepEvent,
    "resources": ResourceEvent,
    "import_export": ImportExportEvent,
    "analytics": AnalyticsEvent,
}

COMMON_FIELDS = {"event_id", "timestamp", "user_id"}

DATE_FIELDS = [
    pytest.param(ToolMaintenanceScheduled, "date", id="scheduled.date"),
    pytest.param(
        ToolMaintenanceCompleted, "completion_date", id="completed.completion_date"
    ),
    pytest.param(ToolMaintenanceCompleted, "next_date", id="completed.next_date"),
    pytest.param(ToolCheckedOut, "due_date", id="checked_out.due_date"),
]

PLUS_TWO = timezone(timedelta(hours=2))


def _typed(value: object) -> tuple[str, object]:
    """A value as (type name, ISO text) when it has one: shows offsets and types."""
    iso = value.isoformat() if isinstance(value, date) else value
    return type(value).__name__, iso


#: Every constructor call of reference/events-system.md sections 1-8.
REFERENCE_EXAMPLES: list[tuple[type[DomainEvent], dict[str, Any]]] = [
    # 1. Core entity events
    (
        EntityCreatedEvent,
        {"entity_id": 123, "entity_type": "Workflow", "user_id": 456},
    ),
    (
        EntityUpdatedEvent,
        {
            "entity_id": 123,
            "entity_type": "Workflow",
            "changes": {"name": "New Name", "status": "active"},
            "user_id": 456,
        },
    ),
    (
        EntityDeletedEvent,
        {"entity_id": 123, "entity_type": "Workflow", "user_id": 456},
    ),
    # 2. Tool management events
    (
        ToolCreated,
        {
            "tool_id": 1,
            "name": "Table Saw",
            "category": "Power Tools",
            "user_id": 123,
        },
    ),
    (
        ToolStatusChanged,
        {
            "tool_id": 1,
            "previous_status": "available",
            "new_status": "maintenance",
        },
    ),
    (
        ToolMaintenanceScheduled,
        {"maintenance_id": 1, "tool_id": 1, "maintenance_type": "routine"},
    ),
    (
        ToolMaintenanceCompleted,
        {"maintenance_id": 1, "tool_id": 1, "completion_date": "2024-01-15"},
    ),
    (
        ToolCheckedOut,
        {
            "checkout_id": 1,
            "tool_id": 1,
            "checked_out_by": "John Doe",
            "due_date": "2024-01-20",
        },
    ),
    (ToolReturned, {"checkout_id": 1, "tool_id": 1, "has_issues": False}),
    # 3. Workflow management events
    (
        WorkflowCreatedEvent,
        {
            "workflow_id": 1,
            "workflow_name": "Leather Wallet",
            "is_template": True,
        },
    ),
    (
        WorkflowUpdatedEvent,
        {
            "workflow_id": 1,
            "changes": {"description": "Updated instructions"},
        },
    ),
    (WorkflowPublishedEvent, {"workflow_id": 1, "visibility": "public"}),
    (
        WorkflowDeletedEvent,
        {"workflow_id": 1, "workflow_name": "Old Workflow"},
    ),
    # 4. Workflow execution events
    (
        WorkflowStartedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "workflow_name": "Leather Wallet",
            "selected_outcome_id": 5,
        },
    ),
    (
        WorkflowCompletedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "outcome_id": 5,
            "total_duration": 240.5,
        },
    ),
    (
        WorkflowPausedEvent,
        {"execution_id": 100, "reason": "Material shortage"},
    ),
    (WorkflowResumedEvent, {"execution_id": 100}),
    (WorkflowCancelledEvent, {"execution_id": 100, "reason": "User request"}),
    # 5. Workflow step events
    (
        WorkflowStepStartedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "step_id": 10,
            "step_name": "Cut Leather Pieces",
            "step_type": "tool",
        },
    ),
    (
        WorkflowStepCompletedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "step_id": 10,
            "actual_duration": 15.5,
        },
    ),
    (
        WorkflowDecisionMadeEvent,
        {
            "execution_id": 100,
            "step_id": 15,
            "decision_option_id": 3,
            "decision_text": "Use hand stitching method",
        },
    ),
    (
        WorkflowNavigationEvent,
        {
            "execution_id": 100,
            "from_step_id": 10,
            "to_step_id": 11,
            "navigation_type": "sequential",
        },
    ),
    # 6. Resource management events
    (
        WorkflowResourceReservedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "resource_type": "material",
            "resource_id": 50,
            "resource_name": "Leather - 4oz",
            "quantity": 2.5,
        },
    ),
    (
        WorkflowResourceReleasedEvent,
        {
            "execution_id": 100,
            "resource_type": "tool",
            "resource_id": 25,
            "resource_name": "Stitching Awl",
        },
    ),
    (
        WorkflowResourceUnavailableEvent,
        {
            "workflow_id": 1,
            "resource_type": "material",
            "resource_id": 50,
            "required_quantity": 5.0,
            "available_quantity": 2.0,
        },
    ),
    # 7. Import/export events
    (
        WorkflowImportedEvent,
        {
            "workflow_id": 1,
            "workflow_name": "Imported Leather Wallet",
            "source": "preset_library",
            "preset_name": "basic_leather_project",
        },
    ),
    (
        WorkflowExportedEvent,
        {
            "workflow_id": 1,
            "workflow_name": "Custom Woodworking",
            "export_format": "json",
        },
    ),
    # 8. Analytics events
    (
        WorkflowMilestoneReachedEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "step_id": 20,
            "milestone_name": "Pieces Cut",
            "progress_percentage": 25.0,
        },
    ),
    (
        WorkflowProgressUpdateEvent,
        {
            "workflow_id": 1,
            "execution_id": 100,
            "total_steps": 12,
            "completed_steps": 5,
            "progress_percentage": 41.7,
            "estimated_remaining": 120.0,
        },
    ),
]


class TestCatalogueContents:
    def test_twenty_nine_classes_in_table_order(self) -> None:
        """CATALOGUE holds exactly the 29 events of the table, in its order."""
        assert 29 == len(CATALOGUE)
        assert list(TABLE) == [cls.__name__ for cls in CATALOGUE]

    @pytest.mark.parametrize("name", TABLE)
    def test_importable_from_the_package(self, name: str) -> None:
        """Each catalogued event is exported by ``hidesync_events``."""
        assert name in hidesync_events.__all__
        assert getattr(hidesync_events, name) in CATALOGUE

    @pytest.mark.parametrize("name", TABLE)
    def test_registered_under_its_class_name(self, name: str) -> None:
        """Each catalogued event's wire name is its class name."""
        assert getattr(hidesync_events, name) is registered_event_types()[name]

    def test_categories_in_catalogue_order(self) -> None:
        """The eight categories are listed once, in table order."""
        in_table_order = list(dict.fromkeys(cat for cat, _ in TABLE.values()))

        assert in_table_order == list(CATALOGUE_CATEGORIES)


class TestFields:
    @pytest.mark.parametrize("name", TABLE)
    def test_exactly_the_listed_fields(self, name: str) -> None:
        """Each event has the table's fields plus event_id, timestamp and user_id."""
        _, fields = TABLE[name]

        assert set(fields) | COMMON_FIELDS == set(
            getattr(hidesync_events, name).model_fields
        )

    @pytest.mark.parametrize("name", TABLE)
    def test_defaults(self, name: str) -> None:
        """Every field has the table's default, of the right type; user_id is None."""
        _, fields = TABLE[name]

        event = getattr(hidesync_events, name)()

        expected = {field: _typed(value) for field, value in fields.items()}
        assert expected == {field: _typed(getattr(event, field)) for field in fields}
        assert event.user_id is None

    @pytest.mark.parametrize("cls", [EntityUpdatedEvent, WorkflowUpdatedEvent])
    def test_changes_default_is_not_shared(self, cls: type[DomainEvent]) -> None:
        """Each event gets its own empty ``changes`` dict."""
        first, second = cls(), cls()

        first.changes["name"] = "New Name"  # type: ignore[attr-defined]

        assert {} == second.changes  # type: ignore[attr-defined]

    @pytest.mark.parametrize("cls", CATALOGUE)
    def test_constructible_with_no_arguments(self, cls: type[DomainEvent]) -> None:
        """Every catalogued event can be built from its defaults alone."""
        assert cls is type(cls())

    @pytest.mark.parametrize("cls", CATALOGUE)
    def test_unknown_keyword_is_refused(self, cls: type[DomainEvent]) -> None:
        """A keyword that is not a field is a validation error, not silently dropped."""
        with pytest.raises(ValidationError, match=r"\ncolour\n  Extra inputs"):
            cls(colour="tan")

    @pytest.mark.parametrize(
        ("cls", "field", "value"),
        [
            (ToolCreated, "tool_id", "table saw"),
            (ToolCreated, "user_id", "someone"),
            (WorkflowCreatedEvent, "workflow_name", 123),
            (WorkflowCreatedEvent, "is_template", "maybe"),
            (ToolCheckedOut, "project_id", "p-1"),
            (WorkflowProgressUpdateEvent, "progress_percentage", "most"),
            (WorkflowCompletedEvent, "total_duration", "four hours"),
            (WorkflowUpdatedEvent, "changes", ["description"]),
            (EntityCreatedEvent, "entity_id", object()),
            (ToolStatusChanged, "reason", 404),
        ],
    )
    def test_wrong_type_names_the_field(
        self, cls: type[DomainEvent], field: str, value: object
    ) -> None:
        """A value of the wrong type is a ValidationError whose text names the field."""
        with pytest.raises(ValidationError, match=rf"\n{field}\n"):
            cls(**{field: value})

    @pytest.mark.parametrize(
        "entity_id", [123, "wf-123", {"tenant": 1, "id": 123}, [1, 2]]
    )
    def test_entity_id_takes_any_json_value(self, entity_id: object) -> None:
        """``entity_id`` accepts any JSON value and keeps it."""
        assert entity_id == EntityCreatedEvent(entity_id=entity_id).entity_id


class TestDateFields:
    @pytest.mark.parametrize(("cls", "field"), DATE_FIELDS)
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("2024-01-15", ("date", "2024-01-15")),
            ("2024-01-15T09:30:00+02:00", ("datetime", "2024-01-15T09:30:00+02:00")),
            (date(2024, 1, 15), ("date", "2024-01-15")),
            (
                datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
                ("datetime", "2024-01-15T09:30:00+00:00"),
            ),
            (
                datetime(2024, 1, 15, 9, 30, tzinfo=PLUS_TWO),
                ("datetime", "2024-01-15T09:30:00+02:00"),
            ),
            ("", ("NoneType", None)),
        ],
        ids=[
            "iso-date",
            "iso-datetime",
            "date",
            "datetime-utc",
            "datetime-offset",
            "empty",
        ],
    )
    def test_accepted_values(
        self,
        cls: type[DomainEvent],
        field: str,
        given: object,
        expected: tuple[str, object],
    ) -> None:
        """ISO text, date and datetime values are read as dates or datetimes; "" is None."""
        event = cls(**{field: given})

        assert expected == _typed(getattr(event, field))

    @pytest.mark.parametrize(("cls", "field"), DATE_FIELDS)
    @pytest.mark.parametrize(
        "garbage", ["next tuesday", "2024-13-45", "15/01/2024", "2024-01-15 at noon"]
    )
    def test_garbage_is_refused_with_a_message(
        self, cls: type[DomainEvent], field: str, garbage: str
    ) -> None:
        """Text that is no ISO date is refused, naming the field and the format."""
        with pytest.raises(
            ValidationError,
            match=rf"\n{field}\n  Value error, expected an ISO date \(2024-01-15\) "
            r"or date-time \(2024-01-15T09:30:00\+00:00\), got '",
        ):
            cls(**{field: garbage})

    @pytest.mark.parametrize(("cls", "field"), DATE_FIELDS)
    def test_serialised_as_iso_text(self, cls: type[DomainEvent], field: str) -> None:
        """Date fields always serialise as ISO text."""
        event = cls(**{field: date(2024, 1, 15)})

        assert "2024-01-15" == event.to_dict()[field]


class TestCategories:
    @pytest.mark.parametrize("name", TABLE)
    def test_category_and_queue(self, name: str) -> None:
        """Each event has the table's category and the queue named after it."""
        category, _ = TABLE[name]
        cls = getattr(hidesync_events, name)

        assert category == category_of(cls)
        assert f"hidesync.events.{category}" == queue_name(category_of(cls))

    @pytest.mark.parametrize("name", TABLE)
    def test_subclass_of_its_category_base(self, name: str) -> None:
        """Each event derives from its category's base (so subscribing to it works)."""
        category, _ = TABLE[name]

        assert issubclass(getattr(hidesync_events, name), CATEGORY_BASES[category])

    @pytest.mark.parametrize(
        ("base", "category"),
        [(CatalogueEvent, "default")]
        + [(base, category) for category, base in CATEGORY_BASES.items()],
        ids=lambda value: value.__name__ if isinstance(value, type) else value,
    )
    def test_category_bases_are_abstract(
        self, base: type[DomainEvent], category: str
    ) -> None:
        """Category bases are abstract: never registered, but carry the category."""
        assert base.__event_meta__.abstract
        assert base not in registered_event_types().values()
        assert category == category_of(base)


class TestReferenceExamples:
    @pytest.mark.parametrize(
        ("cls", "kwargs"),
        REFERENCE_EXAMPLES,
        ids=[cls.__name__ for cls, _ in REFERENCE_EXAMPLES],
    )
    def test_example_constructs_and_keeps_its_values(
        self, cls: type[DomainEvent], kwargs: dict[str, Any]
    ) -> None:
        """The documented call builds the event, every given value kept as JSON."""
        event = cls(**kwargs)

        assert kwargs == event.model_dump(mode="json", include=set(kwargs))
