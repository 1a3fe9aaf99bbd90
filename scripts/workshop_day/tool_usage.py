"""The tools through the day: arrivals, check-outs, returns and maintenance.

The manager registers the tools delivered in the morning; then each tool, one after
another, is checked out by makers and returned (now and then with an issue), and the
few tools due a service that day are taken off the floor and maintained.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from hidesync_events import (
    CatalogueEvent,
    ToolCheckedOut,
    ToolCreated,
    ToolMaintenanceCompleted,
    ToolMaintenanceScheduled,
    ToolReturned,
    ToolStatusChanged,
)

from .clock import (
    DAY_START,
    LAST_CHECKOUT,
    WORKSHOP_DATE,
    at,
    random_minutes,
    shortly_after,
    stamp,
    stamps_between,
)
from .workshop import (
    ACTIVE_PROJECT_IDS,
    ALL_TOOLS,
    FIRST_CHECKOUT_ID,
    FIRST_MAINTENANCE_ID,
    MAINTENANCE_KINDS,
    MAKERS,
    MANAGER,
    NEW_TOOLS,
    RETURN_ISSUE_RATE,
    RETURN_ISSUES,
    TOOLS_SERVICED_PER_DAY,
    USERS,
    Tool,
)

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
