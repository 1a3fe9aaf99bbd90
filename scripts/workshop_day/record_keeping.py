"""The front desk's record keeping: customers, projects and stock.

Walk-in customers are registered with a first project, running projects change
status, every material is counted at opening and at closing, a delivery is booked into
stock, and a few records are retired.
"""

from __future__ import annotations

import random

from pydantic import JsonValue

from hidesync_events import (
    CatalogueEvent,
    EntityCreatedEvent,
    EntityDeletedEvent,
    EntityUpdatedEvent,
)

from .clock import (
    WORKSHOP_DATE,
    at,
    random_minutes,
    random_time,
    stamp,
    stamps_between,
)
from .workshop import (
    ACTIVE_PROJECT_IDS,
    DELIVERED_MATERIAL,
    FIRST_NEW_CUSTOMER_ID,
    FIRST_NEW_PROJECT_ID,
    FRONT_DESK,
    MATERIALS,
    RETIRED_RECORDS,
)

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
