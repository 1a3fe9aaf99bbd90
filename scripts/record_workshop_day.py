"""Record a simulated day in a leather-and-wood workshop as HideSync events.

Produces ``hidesync_events/data/workshop_day.jsonl``: one working day (07:30 to 18:30
UTC on 12 March 2026) of tool check-outs and maintenance, template and record keeping,
and some 250 workflow executions running side by side, covering all 29 catalogued event
types. Each line is one event, in timestamp order::

    {"type": "ToolCheckedOut", "payload": {"event_id": "...", "timestamp": "...", ...}}

where ``type`` is the wire name and ``payload`` is ``event.model_dump(mode="json")``.
Everything, event ids included, is drawn from one ``random.Random(seed)``, so a seed
always gives the same bytes.

Run from the project root::

    python scripts/record_workshop_day.py [--seed N] [--output PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple, TypedDict

from pydantic import JsonValue

from hidesync_events import (
    CATALOGUE,
    CatalogueEvent,
    EntityCreatedEvent,
    EntityDeletedEvent,
    EntityUpdatedEvent,
    ToolCheckedOut,
    ToolCreated,
    ToolMaintenanceCompleted,
    ToolMaintenanceScheduled,
    ToolReturned,
    ToolStatusChanged,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowCreatedEvent,
    WorkflowDecisionMadeEvent,
    WorkflowDeletedEvent,
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
    wire_name,
)

DEFAULT_SEED = 20260312
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent
    / "hidesync_events"
    / "data"
    / "workshop_day.jsonl"
)

WORKSHOP_DATE = date(2026, 3, 12)


def at(hour: int, minute: int) -> datetime:
    """Return the moment ``hour:minute`` UTC on the workshop day."""
    return datetime.combine(WORKSHOP_DATE, time(hour, minute), tzinfo=UTC)


DAY_START = at(7, 30)
DAY_END = at(18, 30)
FIRST_EXECUTION_START = at(7, 35)
# The longest job, with its longest pause, still ends before DAY_END.
LAST_EXECUTION_START = at(16, 0)
# The longest loan, or a maintenance, still ends before DAY_END.
LAST_CHECKOUT = at(16, 15)


# -- people ----------------------------------------------------------------------------

USERS: dict[int, str] = {
    1: "Maya Okafor",
    2: "Tom Lindqvist",
    3: "Ana Ruiz",
    4: "Ben Carter",
    5: "Priya Nair",
    6: "Jonas Weber",
    7: "Grace Kim",
    8: "Luca Bianchi",
    9: "Sofia Haddad",
    10: "Owen Murphy",
    11: "Hana Sato",
    12: "Eli Brooks",
}
MANAGER = 1
FRONT_DESK = 2
MAKERS = tuple(range(3, 13))


# -- tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    tool_id: int
    name: str
    category: str


POWER_TOOLS = "Power Tools"
HAND_TOOLS = "Hand Tools"
LEATHER_TOOLS = "Leather Tools"

TABLE_SAW = Tool(1, "Table Saw", POWER_TOOLS)
BANDSAW = Tool(2, "Bandsaw", POWER_TOOLS)
ROUTER = Tool(3, "Router", POWER_TOOLS)
ORBITAL_SANDER = Tool(4, "Random Orbit Sander", POWER_TOOLS)
DRILL_PRESS = Tool(5, "Drill Press", POWER_TOOLS)
DOVETAIL_SAW = Tool(6, "Dovetail Saw", HAND_TOOLS)
CHISEL_SET = Tool(7, "Chisel Set", HAND_TOOLS)
BLOCK_PLANE = Tool(8, "Block Plane", HAND_TOOLS)
MARKING_GAUGE = Tool(9, "Marking Gauge", HAND_TOOLS)
STITCHING_AWL = Tool(10, "Stitching Awl", LEATHER_TOOLS)
EDGE_BEVELER = Tool(11, "Edge Beveler", LEATHER_TOOLS)
SKIVING_KNIFE = Tool(12, "Skiving Knife", LEATHER_TOOLS)
STRAP_CUTTER = Tool(13, "Strap Cutter", LEATHER_TOOLS)
BURNISHER = Tool(14, "Burnisher", LEATHER_TOOLS)
PRICKING_IRONS = Tool(15, "Pricking Irons", LEATHER_TOOLS)
ROUND_KNIFE = Tool(16, "Round Knife", LEATHER_TOOLS)
SPOKESHAVE = Tool(17, "Spokeshave", HAND_TOOLS)

NEW_TOOLS = (ROUND_KNIFE, SPOKESHAVE)
ALL_TOOLS = (
    TABLE_SAW,
    BANDSAW,
    ROUTER,
    ORBITAL_SANDER,
    DRILL_PRESS,
    DOVETAIL_SAW,
    CHISEL_SET,
    BLOCK_PLANE,
    MARKING_GAUGE,
    STITCHING_AWL,
    EDGE_BEVELER,
    SKIVING_KNIFE,
    STRAP_CUTTER,
    BURNISHER,
    PRICKING_IRONS,
    *NEW_TOOLS,
)

MAINTENANCE_KINDS: dict[str, tuple[str, ...]] = {
    POWER_TOOLS: ("Blade replacement", "Fence calibration", "Dust port cleaning"),
    HAND_TOOLS: ("Sharpening", "Handle refit"),
    LEATHER_TOOLS: ("Sharpening", "Stropping", "Tip polish"),
}
TOOLS_SERVICED_PER_DAY = 4
RETURN_ISSUES = ("Needs sharpening", "Handle loose", "Chipped edge", "Out of alignment")
RETURN_ISSUE_RATE = 0.08
FIRST_CHECKOUT_ID = 7001
FIRST_MAINTENANCE_ID = 501


# -- materials and records -------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    material_id: int
    name: str
    unit: str


LEATHER_4OZ = Material(1, "Leather - 4oz", "sq ft")
LEATHER_8OZ = Material(2, "Leather - 8oz", "sq ft")
WAXED_THREAD = Material(3, "Waxed Thread", "m")
EDGE_PAINT = Material(4, "Edge Paint", "ml")
BRASS_BUCKLE = Material(5, "Brass Buckle", "pcs")
BRASS_RIVETS = Material(6, "Brass Rivets", "pcs")
WALNUT_BOARD = Material(7, "Walnut Board", "board ft")
MAPLE_BOARD = Material(8, "Maple Board", "board ft")
WOOD_GLUE = Material(9, "Wood Glue", "ml")
MINERAL_OIL = Material(10, "Food-Safe Mineral Oil", "ml")
BEESWAX = Material(11, "Beeswax Finish", "g")
MATERIALS = (
    LEATHER_4OZ,
    LEATHER_8OZ,
    WAXED_THREAD,
    EDGE_PAINT,
    BRASS_BUCKLE,
    BRASS_RIVETS,
    WALNUT_BOARD,
    MAPLE_BOARD,
    WOOD_GLUE,
    MINERAL_OIL,
    BEESWAX,
)
DELIVERED_MATERIAL = Material(12, "Leather - 6oz", "sq ft")

ACTIVE_PROJECT_IDS = tuple(range(301, 336))
FIRST_NEW_CUSTOMER_ID = 231
FIRST_NEW_PROJECT_ID = 341
# Records retired today; nothing else in the day refers to them.
RETIRED_RECORDS = (("Customer", 219), ("Project", 338), ("Material", 14))


# -- workflows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    resource_type: str
    resource_id: int
    name: str
    quantity: float


def material(item: Material, quantity: float) -> Resource:
    """Return ``quantity`` (in the material's unit) of ``item`` as a resource."""
    return Resource("material", item.material_id, item.name, quantity)


def tool(item: Tool) -> Resource:
    """Return ``item`` as a resource: one of it, for the whole execution."""
    return Resource("tool", item.tool_id, item.name, 1.0)


@dataclass(frozen=True)
class Step:
    step_id: int
    name: str
    step_type: str
    minutes: float
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workflow:
    workflow_id: int
    name: str
    steps: tuple[Step, ...] = ()
    resources: tuple[Resource, ...] = ()
    outcome_ids: tuple[int, ...] = ()
    popularity: int = 0


LEATHER_WALLET = Workflow(
    101,
    "Leather Wallet",
    steps=(
        Step(1011, "Cut Panels", "cutting", 8.0),
        Step(1012, "Stitch Card Pockets", "stitching", 15.0),
        Step(
            1013,
            "Choose Edge Finish",
            "decision",
            1.0,
            ("Burnish with beeswax", "Two coats of edge paint"),
        ),
        Step(1014, "Finish Edges", "finishing", 10.0),
    ),
    resources=(material(LEATHER_4OZ, 1.5), material(EDGE_PAINT, 15.0), tool(BURNISHER)),
    outcome_ids=(11, 12),
    popularity=5,
)
HAND_STITCHED_BELT = Workflow(
    102,
    "Belt with Hand Stitching",
    steps=(
        Step(1021, "Cut Strap", "cutting", 6.0),
        Step(
            1022,
            "Choose Buckle",
            "decision",
            1.0,
            ("Solid brass roller buckle", "Nickel heel bar buckle"),
        ),
        Step(1023, "Stitch Buckle Fold", "stitching", 12.0),
        Step(1024, "Bevel and Burnish Edges", "finishing", 9.0),
    ),
    resources=(
        material(LEATHER_8OZ, 1.0),
        material(BRASS_BUCKLE, 1.0),
        tool(STRAP_CUTTER),
    ),
    outcome_ids=(21, 22),
    popularity=3,
)
WALNUT_CUTTING_BOARD = Workflow(
    103,
    "Walnut Cutting Board",
    steps=(
        Step(1031, "Rip Strips", "cutting", 10.0),
        Step(1032, "Glue Up", "assembly", 12.0),
        Step(1033, "Flatten and Oil", "finishing", 16.0),
        Step(1034, "Final Inspection", "inspection", 3.0),
    ),
    resources=(material(WALNUT_BOARD, 3.5), tool(TABLE_SAW)),
    outcome_ids=(31,),
    popularity=3,
)
DOVETAIL_BOX = Workflow(
    104,
    "Dovetail Box",
    steps=(
        Step(1041, "Mill Stock", "cutting", 12.0),
        Step(1042, "Cut Dovetails", "cutting", 18.0),
        Step(1043, "Choose Lid", "decision", 1.0, ("Sliding lid", "Hinged lid")),
        Step(1044, "Glue Up and Wax", "assembly", 14.0),
    ),
    resources=(
        material(MAPLE_BOARD, 2.0),
        material(WOOD_GLUE, 25.0),
        tool(DOVETAIL_SAW),
    ),
    outcome_ids=(41, 42),
    popularity=2,
)
CARD_HOLDER = Workflow(
    105,
    "Card Holder",
    steps=(
        Step(1051, "Cut Pieces", "cutting", 4.0),
        Step(1052, "Stitch Sides", "stitching", 8.0),
        Step(1053, "Burnish Edges", "finishing", 5.0),
    ),
    resources=(material(LEATHER_4OZ, 0.5), material(WAXED_THREAD, 1.5)),
    outcome_ids=(51,),
    popularity=7,
)
SADDLE_BAG = Workflow(
    106,
    "Saddle Bag",
    steps=(
        Step(1061, "Cut Panels", "cutting", 14.0),
        Step(1062, "Stitch Gusset", "stitching", 20.0),
        Step(
            1063, "Choose Closure", "decision", 1.0, ("Buckle straps", "Magnetic snap")
        ),
        Step(1064, "Set Hardware", "assembly", 8.0),
        Step(1065, "Final Inspection", "inspection", 4.0),
    ),
    resources=(
        material(LEATHER_8OZ, 4.0),
        material(BRASS_RIVETS, 8.0),
        material(WAXED_THREAD, 8.0),
        tool(STITCHING_AWL),
    ),
    outcome_ids=(61, 62),
    popularity=1,
)
TEMPLATES = (
    LEATHER_WALLET,
    HAND_STITCHED_BELT,
    WALNUT_CUTTING_BOARD,
    DOVETAIL_BOX,
    CARD_HOLDER,
    SADDLE_BAG,
)

# Workflows the manager works on today without anyone running them yet.
KNIFE_SHEATH = Workflow(107, "Knife Sheath")
WATCH_STRAP = Workflow(108, "Watch Strap")
LEATHER_APRON = Workflow(109, "Leather Apron")
WALLET_DRAFT = Workflow(110, "Leather Wallet (copy)")


# -- executions ------------------------------------------------------------------------

FIRST_EXECUTION_ID = 5001
EXECUTIONS_PER_DAY = (250, 260)
CANCEL_RATE = 0.06
PAUSE_RATE = 0.14
PAUSE_REASONS = (
    "Material shortage",
    "Waiting for glue to cure",
    "Lunch break",
    "Tool needed on another job",
)
CANCEL_REASONS = (
    "Customer cancelled the order",
    "Flaw found in the hide",
    "Material out of stock",
)
MATERIAL_REASONS = frozenset({"Material shortage", "Material out of stock"})
MANUAL_NAVIGATION_RATE = 0.1
MILESTONES = (
    (25.0, "Quarter done"),
    (50.0, "Halfway"),
    (75.0, "Three quarters done"),
    (100.0, "All steps done"),
)


# -- stamps and clocks -----------------------------------------------------------------


class Stamp(TypedDict):
    """The fields every recorded event shares: its id, its moment and who acted."""

    event_id: str
    timestamp: datetime
    user_id: int


def stamp(rng: random.Random, moment: datetime, user_id: int) -> Stamp:
    """Return a stamp with a fresh event id drawn from ``rng``."""
    event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    return Stamp(event_id=str(event_id), timestamp=moment, user_id=user_id)


def random_minutes(rng: random.Random, low: float, high: float) -> timedelta:
    """Return a span of ``low`` to ``high`` minutes, in whole milliseconds."""
    return timedelta(
        milliseconds=rng.randint(round(low * 60_000), round(high * 60_000))
    )


def random_time(rng: random.Random, earliest: datetime, latest: datetime) -> datetime:
    """Return a moment between ``earliest`` and ``latest``, in whole milliseconds."""
    span = (latest - earliest) // timedelta(milliseconds=1)
    return earliest + timedelta(milliseconds=rng.randint(0, span))


def shortly_after(rng: random.Random, moment: datetime) -> datetime:
    """Return a moment a second or two after ``moment``."""
    return moment + timedelta(milliseconds=rng.randint(150, 2_500))


def stamps_between(
    rng: random.Random, user_id: int, count: int, earliest: datetime, latest: datetime
) -> Iterator[Stamp]:
    """Yield ``count`` stamps for ``user_id`` at random, increasing moments."""
    for moment in sorted(random_time(rng, earliest, latest) for _ in range(count)):
        yield stamp(rng, moment, user_id)


# -- tools -----------------------------------------------------------------------------


class ToolIds(NamedTuple):
    checkouts: Iterator[int]
    maintenance: Iterator[int]


def record_tools(rng: random.Random) -> list[CatalogueEvent]:
    """New tools arriving, then every tool's check-outs and maintenance of the day."""
    arrivals = record_new_tools(rng)
    # A new tool can only be lent once it has been registered.
    opens_at = {item.tool_id: DAY_START for item in ALL_TOOLS} | {
        event.tool_id: event.timestamp for event in arrivals
    }
    serviced = [item.tool_id for item in rng.sample(ALL_TOOLS, TOOLS_SERVICED_PER_DAY)]
    ids = ToolIds(
        checkouts=itertools.count(FIRST_CHECKOUT_ID),
        maintenance=itertools.count(FIRST_MAINTENANCE_ID),
    )

    events: list[CatalogueEvent] = [*arrivals]
    for item in ALL_TOOLS:
        needs_service = item.tool_id in serviced
        events += record_tool_usage(
            rng, item, opens_at[item.tool_id], ids, needs_service
        )
    return events


def record_new_tools(rng: random.Random) -> list[ToolCreated]:
    """The manager registers the tools delivered this morning."""
    stamps = stamps_between(rng, MANAGER, len(NEW_TOOLS), at(8, 0), at(9, 30))
    return [
        ToolCreated(
            **next(stamps), tool_id=item.tool_id, name=item.name, category=item.category
        )
        for item in NEW_TOOLS
    ]


def record_tool_usage(
    rng: random.Random,
    item: Tool,
    opens_at: datetime,
    ids: ToolIds,
    needs_service: bool,
) -> list[CatalogueEvent]:
    """One tool's check-outs (and its maintenance, if due), one after another."""
    service_turn = rng.randint(0, 1) if needs_service else None
    events: list[CatalogueEvent] = []
    turn = 0
    begins = opens_at + random_minutes(rng, 10, 80)

    while begins <= LAST_CHECKOUT:
        if turn == service_turn:
            events += record_maintenance(rng, item, begins, next(ids.maintenance))
        else:
            events += record_checkout(rng, item, begins, next(ids.checkouts))
        turn += 1
        begins = events[-1].timestamp + random_minutes(rng, 10, 80)
    return events


def record_checkout(
    rng: random.Random, item: Tool, begins: datetime, checkout_id: int
) -> list[CatalogueEvent]:
    """A maker borrows the tool for a job and brings it back, now and then damaged."""
    user_id = rng.choice(MAKERS)
    project_id = rng.choice((*ACTIVE_PROJECT_IDS, None))
    returned = begins + random_minutes(rng, 15, 120)
    issue = rng.choice(RETURN_ISSUES) if rng.random() < RETURN_ISSUE_RATE else None

    return [
        ToolCheckedOut(
            **stamp(rng, begins, user_id),
            checkout_id=checkout_id,
            tool_id=item.tool_id,
            checked_out_by=USERS[user_id],
            project_id=project_id,
            due_date=WORKSHOP_DATE,
        ),
        ToolStatusChanged(
            **stamp(rng, shortly_after(rng, begins), user_id),
            tool_id=item.tool_id,
            previous_status="available",
            new_status="in_use",
            reason=f"Checked out ({checkout_id})",
        ),
        ToolReturned(
            **stamp(rng, returned, user_id),
            checkout_id=checkout_id,
            tool_id=item.tool_id,
            has_issues=issue is not None,
            condition_after=issue,
        ),
        ToolStatusChanged(
            **stamp(rng, shortly_after(rng, returned), user_id),
            tool_id=item.tool_id,
            previous_status="in_use",
            new_status="available",
            reason=f"Returned ({checkout_id})",
        ),
    ]


def record_maintenance(
    rng: random.Random, item: Tool, begins: datetime, maintenance_id: int
) -> list[CatalogueEvent]:
    """The manager books a service, a maker takes the tool off the floor and does it."""
    technician = rng.choice(MAKERS)
    kind = rng.choice(MAINTENANCE_KINDS[item.category])
    taken = shortly_after(rng, begins)
    done = taken + random_minutes(rng, 20, 75)
    next_due = WORKSHOP_DATE + timedelta(days=rng.choice((30, 60, 90)))

    return [
        ToolMaintenanceScheduled(
            **stamp(rng, begins, MANAGER),
            maintenance_id=maintenance_id,
            tool_id=item.tool_id,
            maintenance_type=kind,
            date=WORKSHOP_DATE,
        ),
        ToolStatusChanged(
            **stamp(rng, taken, technician),
            tool_id=item.tool_id,
            previous_status="available",
            new_status="maintenance",
            reason=kind,
        ),
        ToolMaintenanceCompleted(
            **stamp(rng, done, technician),
            maintenance_id=maintenance_id,
            tool_id=item.tool_id,
            completion_date=WORKSHOP_DATE,
            performed_by=USERS[technician],
            next_date=next_due,
        ),
        ToolStatusChanged(
            **stamp(rng, shortly_after(rng, done), technician),
            tool_id=item.tool_id,
            previous_status="maintenance",
            new_status="available",
            reason="Maintenance completed",
        ),
    ]


# -- the manager's template work -------------------------------------------------------


def record_workflow_admin(rng: random.Random) -> list[CatalogueEvent]:
    """Templates imported, drafted, edited, exported and tidied up by the manager."""
    return [
        *record_preset_imports(rng),
        *record_new_template(rng),
        *record_template_upkeep(rng),
    ]


def record_preset_imports(rng: random.Random) -> list[CatalogueEvent]:
    """Two presets come in from the library; one is adjusted and published."""
    stamps = stamps_between(rng, MANAGER, 4, at(7, 40), at(9, 0))
    return [
        WorkflowImportedEvent(
            **next(stamps),
            workflow_id=KNIFE_SHEATH.workflow_id,
            workflow_name=KNIFE_SHEATH.name,
            source="preset_library",
            preset_name="Pancake Knife Sheath",
        ),
        WorkflowUpdatedEvent(
            **next(stamps),
            workflow_id=KNIFE_SHEATH.workflow_id,
            workflow_name=KNIFE_SHEATH.name,
            changes={"estimated_duration": 70.0, "difficulty_level": "intermediate"},
        ),
        WorkflowPublishedEvent(
            **next(stamps),
            workflow_id=KNIFE_SHEATH.workflow_id,
            workflow_name=KNIFE_SHEATH.name,
        ),
        WorkflowImportedEvent(
            **next(stamps),
            workflow_id=WATCH_STRAP.workflow_id,
            workflow_name=WATCH_STRAP.name,
            source="preset_library",
            preset_name="Padded Watch Strap",
        ),
    ]


def record_new_template(rng: random.Random) -> list[CatalogueEvent]:
    """A new apron template is built and published; a stray copy is deleted."""
    stamps = stamps_between(rng, MANAGER, 5, at(10, 0), at(16, 30))
    return [
        WorkflowCreatedEvent(
            **next(stamps),
            workflow_id=LEATHER_APRON.workflow_id,
            workflow_name=LEATHER_APRON.name,
            is_template=True,
        ),
        WorkflowCreatedEvent(
            **next(stamps),
            workflow_id=WALLET_DRAFT.workflow_id,
            workflow_name=WALLET_DRAFT.name,
        ),
        WorkflowUpdatedEvent(
            **next(stamps),
            workflow_id=LEATHER_APRON.workflow_id,
            workflow_name=LEATHER_APRON.name,
            changes={"description": "Cross-back apron in 8oz veg-tan", "steps": 6},
        ),
        WorkflowPublishedEvent(
            **next(stamps),
            workflow_id=LEATHER_APRON.workflow_id,
            workflow_name=LEATHER_APRON.name,
            visibility="private",
        ),
        WorkflowDeletedEvent(
            **next(stamps),
            workflow_id=WALLET_DRAFT.workflow_id,
            workflow_name=WALLET_DRAFT.name,
        ),
    ]


def record_template_upkeep(rng: random.Random) -> list[CatalogueEvent]:
    """Running templates get their estimates and notes revised, and are shared."""
    stamps = stamps_between(rng, MANAGER, 5, at(11, 0), at(18, 0))
    return [
        WorkflowUpdatedEvent(
            **next(stamps),
            workflow_id=LEATHER_WALLET.workflow_id,
            workflow_name=LEATHER_WALLET.name,
            changes={"estimated_duration": 38.0},
        ),
        WorkflowExportedEvent(
            **next(stamps),
            workflow_id=WALNUT_CUTTING_BOARD.workflow_id,
            workflow_name=WALNUT_CUTTING_BOARD.name,
        ),
        WorkflowUpdatedEvent(
            **next(stamps),
            workflow_id=WALNUT_CUTTING_BOARD.workflow_id,
            workflow_name=WALNUT_CUTTING_BOARD.name,
            changes={"notes": "Two coats of oil, twenty minutes apart"},
        ),
        WorkflowExportedEvent(
            **next(stamps),
            workflow_id=LEATHER_WALLET.workflow_id,
            workflow_name=LEATHER_WALLET.name,
        ),
        WorkflowExportedEvent(
            **next(stamps),
            workflow_id=SADDLE_BAG.workflow_id,
            workflow_name=SADDLE_BAG.name,
            export_format="yaml",
        ),
    ]


# -- the front desk's record keeping ---------------------------------------------------


def record_record_keeping(rng: random.Random) -> list[CatalogueEvent]:
    """Customers, projects and stock levels kept up to date at the front desk."""
    return [
        *record_new_customers(rng),
        *record_project_updates(rng),
        *record_stock_counts(rng),
        *record_delivery(rng),
        *record_retirements(rng),
    ]


def record_new_customers(rng: random.Random) -> list[CatalogueEvent]:
    """Walk-in customers, each registered with a first project."""
    events: list[CatalogueEvent] = []
    for offset in range(rng.randint(4, 6)):
        customer_id = FIRST_NEW_CUSTOMER_ID + offset
        project_id = FIRST_NEW_PROJECT_ID + offset
        arrives = random_time(rng, at(8, 30), at(17, 30))
        events += [
            EntityCreatedEvent(
                **stamp(rng, arrives, FRONT_DESK),
                entity_id=customer_id,
                entity_type="Customer",
            ),
            EntityCreatedEvent(
                **stamp(rng, arrives + random_minutes(rng, 2, 6), FRONT_DESK),
                entity_id=project_id,
                entity_type="Project",
            ),
            EntityUpdatedEvent(
                **stamp(rng, arrives + random_minutes(rng, 7, 12), FRONT_DESK),
                entity_id=project_id,
                entity_type="Project",
                changes={"customer_id": customer_id, "status": "planning"},
            ),
        ]
    return events


def record_project_updates(rng: random.Random) -> list[CatalogueEvent]:
    """Running projects move on: started, finished or put on hold."""
    events: list[CatalogueEvent] = []
    for project_id in sorted(rng.sample(ACTIVE_PROJECT_IDS, 14)):
        status = rng.choice(("in_progress", "completed", "on_hold"))
        changes: dict[str, JsonValue] = {"status": status}
        if status == "completed":
            changes["completed_date"] = WORKSHOP_DATE.isoformat()

        events.append(
            EntityUpdatedEvent(
                **stamp(rng, random_time(rng, at(8, 0), at(18, 0)), FRONT_DESK),
                entity_id=project_id,
                entity_type="Project",
                changes=changes,
            )
        )
    return events


def record_stock_counts(rng: random.Random) -> list[CatalogueEvent]:
    """Every material counted at opening and again, lower, at closing."""
    morning = stamps_between(rng, FRONT_DESK, len(MATERIALS), at(7, 40), at(8, 10))
    evening = stamps_between(rng, FRONT_DESK, len(MATERIALS), at(17, 30), at(18, 0))
    events: list[CatalogueEvent] = []
    for item in MATERIALS:
        opening = round(rng.uniform(10.0, 120.0), 1)
        closing = round(opening * rng.uniform(0.6, 0.95), 1)
        for stamped, quantity in ((next(morning), opening), (next(evening), closing)):
            events.append(
                EntityUpdatedEvent(
                    **stamped,
                    entity_id=item.material_id,
                    entity_type="Material",
                    changes={"quantity": quantity, "unit": item.unit},
                )
            )
    return events


def record_delivery(rng: random.Random) -> list[CatalogueEvent]:
    """A new hide weight arrives and is booked into stock."""
    stamps = stamps_between(rng, FRONT_DESK, 2, at(13, 0), at(13, 30))
    item = DELIVERED_MATERIAL
    return [
        EntityCreatedEvent(
            **next(stamps), entity_id=item.material_id, entity_type="Material"
        ),
        EntityUpdatedEvent(
            **next(stamps),
            entity_id=item.material_id,
            entity_type="Material",
            changes={"name": item.name, "quantity": 45.0, "unit": item.unit},
        ),
    ]


def record_retirements(rng: random.Random) -> list[CatalogueEvent]:
    """A duplicate customer, an abandoned project and a discontinued material go."""
    stamps = stamps_between(rng, FRONT_DESK, len(RETIRED_RECORDS), at(16, 0), at(17, 0))
    return [
        EntityDeletedEvent(**next(stamps), entity_id=entity_id, entity_type=entity_type)
        for entity_type, entity_id in RETIRED_RECORDS
    ]


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


# -- the day ---------------------------------------------------------------------------


def record_executions(rng: random.Random) -> list[CatalogueEvent]:
    """Some 250 executions of the workshop's templates, started through the day."""
    count = rng.randint(*EXECUTIONS_PER_DAY)
    starts = sorted(
        random_time(rng, FIRST_EXECUTION_START, LAST_EXECUTION_START)
        for _ in range(count)
    )
    weights = [workflow.popularity for workflow in TEMPLATES]

    events: list[CatalogueEvent] = []
    # Ids follow start order, as the database hands them out.
    for execution_id, start in enumerate(starts, start=FIRST_EXECUTION_ID):
        workflow = rng.choices(TEMPLATES, weights)[0]
        events += record_execution(rng, workflow, execution_id, start)
    return events


def record_day(seed: int) -> list[CatalogueEvent]:
    """Return every event of the workshop day, in timestamp order."""
    rng = random.Random(seed)
    events = [
        *record_tools(rng),
        *record_workflow_admin(rng),
        *record_record_keeping(rng),
        *record_executions(rng),
    ]

    # The sort is stable: events sharing a timestamp keep the order they were recorded.
    events.sort(key=lambda event: event.timestamp)
    check_day(events)
    return events


def check_day(events: Sequence[CatalogueEvent]) -> None:
    """Refuse a day that misses a catalogued type or spills out of working hours."""
    recorded = {wire_name(event) for event in events}
    missing = [wire_name(cls) for cls in CATALOGUE if wire_name(cls) not in recorded]
    if missing:
        raise RuntimeError(f"the recorded day has no {', '.join(missing)} events")

    if events[0].timestamp < DAY_START or events[-1].timestamp > DAY_END:
        raise RuntimeError(
            f"the recorded day runs from {events[0].timestamp} to "
            f"{events[-1].timestamp}, outside {DAY_START} to {DAY_END}"
        )


def to_line(event: CatalogueEvent) -> str:
    """Return ``event`` as one JSON line: its wire name and its fields."""
    record = {"type": wire_name(event), "payload": event.model_dump(mode="json")}
    return json.dumps(record, separators=(",", ":"))


def write_lines(events: Sequence[CatalogueEvent], path: Path) -> None:
    """Write one line per event to ``path``, creating its directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{to_line(event)}\n" for event in events)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Record a simulated workshop day as HideSync events."
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the day's randomness"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON Lines file to write"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    events = record_day(args.seed)
    write_lines(events, args.output)

    type_count = len({wire_name(event) for event in events})
    print(f"wrote {len(events)} events of {type_count} types to {args.output}")


if __name__ == "__main__":
    main()
