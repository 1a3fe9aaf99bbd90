"""``DomainEvent`` and the registry of event types (DESIGN.md section 3, "Events").

Test-local event classes carry the ``EventTests`` prefix and ``category="event_tests"``:
the registry of wire names is process-wide, so every name here must be unique.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from hidesync_events import (
    DomainEvent,
    EventBus,
    EventDefinitionError,
    NotAnEventTypeError,
    ToolCheckedOut,
    ToolMaintenanceCompleted,
    UnknownEventTypeError,
    category_of,
    event_type_named,
    registered_event_types,
    wire_name,
)
from hidesync_events.event import as_event_type

PLUS_TWO = timezone(timedelta(hours=2))


class Condition(enum.Enum):
    GOOD = "good"
    WORN = "worn"


class EventTestsHideCut(DomainEvent, category="event_tests"):
    """A declared-fields application event."""

    hide_id: int = 0


class EventTestsRenamed(DomainEvent, category="event_tests", event_name="hide.dyed.v1"):
    """An event whose wire name is not its class name."""


class EventTestsUncategorised(DomainEvent):
    """An application event that declares no category."""


class EventTestsStitchingEvent(DomainEvent, category="event_tests", abstract=True):
    """An abstract base: subscribed to, never published itself."""


class EventTestsSaddleStitched(EventTestsStitchingEvent):
    """A concrete event that inherits its base's category."""


class EventTestsVersioned(DomainEvent, category="event_tests", schema_version=3):
    """An event whose payload shape is at version 3."""


class EventTestsToolLent(DomainEvent, category="event_tests"):
    """The older style: a custom ``__init__`` assigning attributes after ``super()``."""

    init_calls: ClassVar[int] = 0

    def __init__(self, tool_id: int, borrower: str, condition: Condition) -> None:
        super().__init__()
        type(self).init_calls += 1
        self.tool_id = tool_id
        self.borrower = borrower
        self.condition = condition.name


class TestAssignment:
    def test_a_value_assigned_later_is_validated(self) -> None:
        """Assigning a field after construction validates the value as construction
        would: a wrong type names the field, a convertible one is converted."""
        event = EventTestsHideCut(hide_id=1)

        with pytest.raises(ValidationError, match="hide_id"):
            event.hide_id = "seven"  # type: ignore[assignment]
        event.hide_id = True

        assert 1 == event.hide_id
        assert int is type(event.hide_id)

    def test_an_assigned_timestamp_is_made_utc(self) -> None:
        """The one rule for timestamps holds for assignment too."""
        event = EventTestsHideCut()
        paris = timezone(timedelta(hours=1))

        event.timestamp = datetime(2026, 12, 4, 10, 0, tzinfo=paris)

        assert datetime(2026, 12, 4, 9, 0, tzinfo=UTC) == event.timestamp
        assert UTC == event.timestamp.tzinfo


class TestEventId:
    def test_generated_id_is_uuid_text(self) -> None:
        """An event built without an id gets a canonical version-4 UUID as text."""
        event = EventTestsHideCut()

        parsed = uuid.UUID(event.event_id)

        assert str(parsed) == event.event_id
        assert parsed.version == 4

    def test_generated_ids_are_unique(self) -> None:
        """Every event built without an id gets a different one."""
        ids = {EventTestsHideCut().event_id for _ in range(1000)}

        assert len(ids) == 1000

    def test_given_id_is_kept(self) -> None:
        """An id given by the caller is kept as it is."""
        given = "0b7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22"

        assert given == EventTestsHideCut(event_id=given).event_id

    @pytest.mark.parametrize(
        "bad_id",
        [
            "not-a-uuid",
            "",
            "0b7e2f4c-2a61-4c1e-9d3a",
            "0b7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22-extra",
            "zb7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22",
        ],
    )
    def test_bad_id_is_refused(self, bad_id: str) -> None:
        """An id that is not UUID text is a validation error naming event_id."""
        with pytest.raises(ValidationError, match=r"\nevent_id\n"):
            EventTestsHideCut(event_id=bad_id)


class TestTimestamp:
    """Timestamps are always timezone-aware UTC, by one rule.

    The default is the current time in UTC. A naive datetime given by the caller (or
    naive ISO text) is read as UTC already, its wall-clock time kept; an aware one is
    converted to UTC, the same instant.
    """

    def test_default_is_now_in_utc(self) -> None:
        """An event built without a timestamp is stamped with the current UTC time."""
        before = datetime.now(UTC)
        event = EventTestsHideCut()
        after = datetime.now(UTC)

        assert timedelta(0) == event.timestamp.utcoffset()
        assert before <= event.timestamp <= after

    @pytest.mark.parametrize(
        "naive",
        [datetime(2024, 1, 15, 9, 30), "2024-01-15T09:30:00"],
        ids=["datetime", "iso-text"],
    )
    def test_naive_datetime_is_read_as_utc(self, naive: datetime | str) -> None:
        """A naive datetime keeps its wall-clock time and is marked as UTC."""
        stamp = EventTestsHideCut(timestamp=naive).timestamp

        assert datetime(2024, 1, 15, 9, 30, tzinfo=UTC) == stamp
        assert timedelta(0) == stamp.utcoffset()

    @pytest.mark.parametrize(
        "aware",
        [datetime(2024, 1, 15, 11, 30, tzinfo=PLUS_TWO), "2024-01-15T11:30:00+02:00"],
        ids=["datetime", "iso-text"],
    )
    def test_aware_datetime_is_converted_to_utc(self, aware: datetime | str) -> None:
        """An aware datetime keeps its instant and is expressed in UTC."""
        stamp = EventTestsHideCut(timestamp=aware).timestamp

        assert datetime(2024, 1, 15, 9, 30, tzinfo=UTC) == stamp
        assert timedelta(0) == stamp.utcoffset()


class TestToDict:
    def test_dates_and_times_are_iso_text(self) -> None:
        """to_dict() writes the timestamp and date fields as ISO text."""
        event = ToolMaintenanceCompleted(
            timestamp=datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
            completion_date=datetime(2024, 1, 15, 11, 0, tzinfo=PLUS_TWO),
            next_date=date(2024, 7, 15),
        )

        data = event.to_dict()

        assert data["timestamp"] == "2024-01-15T09:30:00Z"
        assert data["completion_date"] == "2024-01-15T11:00:00+02:00"
        assert data["next_date"] == "2024-07-15"

    def test_holds_every_field_and_the_event_type(self) -> None:
        """to_dict() holds every field plus ``event_type``, the wire name."""
        event = EventTestsHideCut(
            event_id="0b7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22",
            timestamp=datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
            hide_id=7,
        )

        assert {
            "event_id": "0b7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22",
            "timestamp": "2024-01-15T09:30:00Z",
            "hide_id": 7,
            "event_type": "EventTestsHideCut",
        } == event.to_dict()

    def test_event_type_is_the_wire_name(self) -> None:
        """``event_type`` is the wire name, even when it differs from the class name."""
        assert EventTestsRenamed().to_dict()["event_type"] == "hide.dyed.v1"

    def test_values_are_plain_json(self) -> None:
        """to_dict() survives json.dumps and json.loads unchanged."""
        data = ToolCheckedOut(tool_id=1, due_date="2024-01-20").to_dict()

        assert data == json.loads(json.dumps(data))


class TestJsonRoundTrip:
    def test_concrete_class_reads_its_own_json(self) -> None:
        """from_json() on the event's class rebuilds an equal event."""
        event = ToolCheckedOut(checkout_id=1, tool_id=1, due_date="2024-01-20")

        assert event == ToolCheckedOut.from_json(event.to_json())

    @pytest.mark.parametrize("base", [DomainEvent, EventTestsStitchingEvent])
    def test_base_class_picks_the_class_from_the_envelope(
        self, base: type[DomainEvent]
    ) -> None:
        """from_json() on a base class returns an event of the envelope's class."""
        event = EventTestsSaddleStitched()

        rebuilt = base.from_json(event.to_json())

        assert EventTestsSaddleStitched is type(rebuilt)
        assert event == rebuilt

    def test_bytes_are_accepted(self) -> None:
        """from_json() reads UTF-8 bytes as well as text."""
        event = EventTestsHideCut(hide_id=3)

        assert event == EventTestsHideCut.from_json(event.to_json().encode())

    def test_concrete_class_refuses_another_class(self) -> None:
        """from_json() on a concrete class refuses an envelope of another class."""
        text = EventTestsHideCut().to_json()

        with pytest.raises(
            TypeError,
            match=r"holds a EventTestsHideCut, not a ToolCheckedOut; "
            r"call DomainEvent\.from_json\(\)",
        ):
            ToolCheckedOut.from_json(text)

    def test_abstract_event_cannot_be_written(self) -> None:
        """to_json() refuses an instance of an abstract base, which is never sent."""
        with pytest.raises(TypeError, match="abstract event base"):
            EventTestsStitchingEvent().to_json()


class TestWireName:
    def test_default_is_the_class_name(self) -> None:
        """An event class is known on the wire by its class name by default."""
        assert wire_name(EventTestsHideCut) == "EventTestsHideCut"
        assert EventTestsHideCut is event_type_named("EventTestsHideCut")

    def test_event_name_overrides_it(self) -> None:
        """``event_name=`` gives the class another wire name, registered instead."""
        assert wire_name(EventTestsRenamed()) == "hide.dyed.v1"
        assert EventTestsRenamed is event_type_named("hide.dyed.v1")
        assert "EventTestsRenamed" not in registered_event_types()

    def test_envelope_carries_the_wire_name(self) -> None:
        """The envelope's ``type`` is the wire name."""
        envelope = json.loads(EventTestsRenamed().to_json())

        assert envelope["type"] == "hide.dyed.v1"


class TestCategory:
    def test_declared_category(self) -> None:
        """A class's ``category=`` keyword is its category."""
        assert category_of(EventTestsHideCut) == "event_tests"

    def test_inherited_from_parent(self) -> None:
        """A class without ``category=`` takes its parent's."""
        assert category_of(EventTestsSaddleStitched()) == "event_tests"

    def test_default_at_the_root(self) -> None:
        """A direct DomainEvent subclass without ``category=`` is in "default"."""
        assert category_of(EventTestsUncategorised) == "default"

    @pytest.mark.parametrize(
        "category",
        ["Tools", "tool-events", "tools.v2", "1tools", "", "a" * 64, "tööls"],
    )
    def test_invalid_category_is_refused_at_class_creation(self, category: str) -> None:
        """A category that is not a valid queue suffix fails the class statement."""
        with pytest.raises(
            EventDefinitionError,
            match=r"is not a valid queue suffix; use lower-case letters",
        ):

            class EventTestsBadCategory(DomainEvent, category=category):
                pass

        assert "EventTestsBadCategory" not in registered_event_types()


class TestSchemaVersion:
    def test_defaults_to_one(self) -> None:
        """A class without ``schema_version=`` is at version 1."""
        assert EventTestsHideCut.__event_meta__.schema_version == 1

    def test_declared_version_travels_in_the_envelope(self) -> None:
        """``schema_version=`` is recorded and written into the envelope."""
        envelope = json.loads(EventTestsVersioned().to_json())

        assert EventTestsVersioned.__event_meta__.schema_version == 3
        assert envelope["schema_version"] == 3


class TestAbstractBases:
    def test_abstract_base_is_not_registered(self) -> None:
        """An ``abstract=True`` base has no wire name in the registry."""
        assert "EventTestsStitchingEvent" not in registered_event_types()

    def test_its_concrete_subclass_is_registered(self) -> None:
        """A concrete subclass of an abstract base is registered."""
        assert EventTestsSaddleStitched is event_type_named("EventTestsSaddleStitched")

    def test_domain_event_itself_is_not_registered(self) -> None:
        """The root DomainEvent is abstract and has no wire name in the registry."""
        assert DomainEvent not in registered_event_types().values()


class TestWireNameCollisions:
    def test_two_classes_with_one_name_fail_at_class_creation(self) -> None:
        """A second class taking a wire name fails, naming both modules and the fix."""
        with pytest.raises(
            EventDefinitionError,
            match=r"'EventTestsHideCut' is already used by "
            r"tests\.test_event\.EventTestsHideCut; "
            r"billing\.events\.EventTestsHideCut cannot use it too\. "
            r"Import the one class from one module, or give this one its own wire "
            r"name: class EventTestsHideCut\(\.\.\., event_name='\.\.\.'\)",
        ):

            class EventTestsHideCut(DomainEvent):
                __module__ = "billing.events"
                __qualname__ = "EventTestsHideCut"

    def test_collision_keeps_the_first_class(self) -> None:
        """The refused class does not replace the one registered under the name."""
        with pytest.raises(EventDefinitionError):

            class EventTestsCopied(DomainEvent, event_name="EventTestsHideCut"):
                pass

        assert EventTestsHideCut is event_type_named("EventTestsHideCut")

    def test_same_class_defined_again_by_its_module_replaces_it(self) -> None:
        """Defining a class again (same module and qualname) replaces the first."""

        def define() -> type[DomainEvent]:
            class EventTestsReloaded(DomainEvent, category="event_tests"):
                pass

            return EventTestsReloaded

        first = define()
        second = define()

        assert first is not second
        assert second is event_type_named("EventTestsReloaded")


class TestLegacyStyle:
    def test_assigned_attributes_are_kept(self) -> None:
        """Attributes assigned in a custom __init__, an enum's name too, are kept."""
        event = EventTestsToolLent(7, "Ana", Condition.WORN)

        assert (event.tool_id, event.borrower, event.condition) == (7, "Ana", "WORN")

    def test_attributes_appear_in_to_dict(self) -> None:
        """to_dict() includes the assigned attributes."""
        data = EventTestsToolLent(7, "Ana", Condition.WORN).to_dict()

        assert {"tool_id": 7, "borrower": "Ana", "condition": "WORN"}.items() <= (
            data.items()
        )

    def test_rebuilt_from_json_without_calling_init(self) -> None:
        """from_json() rebuilds the event with its attributes, not via its __init__."""
        event = EventTestsToolLent(7, "Ana", Condition.GOOD)
        text = event.to_json()
        calls_before = EventTestsToolLent.init_calls

        rebuilt = DomainEvent.from_json(text)

        assert calls_before == EventTestsToolLent.init_calls
        assert EventTestsToolLent is type(rebuilt)
        assert event == rebuilt
        assert rebuilt.condition == "GOOD"

    def test_published_event_reaches_a_handler(self, bus: EventBus) -> None:
        """A legacy-style event publishes and its handler sees the attributes."""
        seen: list[EventTestsToolLent] = []

        def on_lent(received: EventTestsToolLent) -> None:
            seen.append(received)

        bus.subscribe(EventTestsToolLent, on_lent)
        event = EventTestsToolLent(7, "Ana", Condition.WORN)

        bus.publish(event)

        [received] = seen
        assert received is not event
        assert event.event_id == received.event_id
        assert (
            received.tool_id,
            received.borrower,
            received.condition,
        ) == (7, "Ana", "WORN")


class TestRegistryLookups:
    def test_event_type_named_returns_the_class(self) -> None:
        """A registered wire name resolves to its class."""
        assert ToolCheckedOut is event_type_named("ToolCheckedOut")

    def test_event_type_named_refuses_an_unknown_name(self) -> None:
        """An unknown wire name raises UnknownEventTypeError, a LookupError."""
        with pytest.raises(
            UnknownEventTypeError,
            match=r"no event class is registered under the name 'ToolLost'; "
            r"pass an event class, or import the module that defines 'ToolLost'",
        ) as caught:
            event_type_named("ToolLost")

        assert isinstance(caught.value, LookupError)

    def test_registered_event_types_lists_every_registered_class(self) -> None:
        """The registry view maps each wire name to its class."""
        types = registered_event_types()

        assert ToolCheckedOut is types["ToolCheckedOut"]
        assert EventTestsRenamed is types["hide.dyed.v1"]

    def test_registered_event_types_is_read_only(self) -> None:
        """The registry view cannot be written to."""
        with pytest.raises(TypeError, match="does not support item assignment"):
            registered_event_types()["ToolLost"] = EventTestsHideCut  # type: ignore[index]


class TestAsEventType:
    @pytest.mark.parametrize("value", [ToolCheckedOut, "ToolCheckedOut"])
    def test_accepts_a_class_or_its_wire_name(self, value: object) -> None:
        """An event class, or its registered wire name, resolves to the class."""
        assert ToolCheckedOut is as_event_type(value)

    def test_accepts_an_abstract_base(self) -> None:
        """An abstract base is an event type (subscriptions to it are allowed)."""
        assert EventTestsStitchingEvent is as_event_type(EventTestsStitchingEvent)

    def test_unknown_name_is_a_lookup_error(self) -> None:
        """An unknown string raises UnknownEventTypeError, a LookupError."""
        with pytest.raises(LookupError, match=r"pass an event class, or import"):
            as_event_type("ToolLost")

    @pytest.mark.parametrize(
        "value",
        [int, BaseModel, 42, None, ToolCheckedOut()],
        ids=["int", "pydantic-model", "number", "none", "event-instance"],
    )
    def test_non_event_is_a_type_error(self, value: object) -> None:
        """Anything else raises NotAnEventTypeError, a TypeError, saying what to pass."""
        with pytest.raises(
            NotAnEventTypeError,
            match=r"expected a DomainEvent subclass or a registered event name, got .*; "
            r"pass the event class, e\.g\. subscribe\(WorkflowStartedEvent, handler\)",
        ) as caught:
            as_event_type(value)

        assert isinstance(caught.value, TypeError)
