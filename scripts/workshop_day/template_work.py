"""The manager's template work: workflows imported, drafted, edited and shared.

Presets come in from the library and one is published, a new apron template is built
while a stray copy is deleted, and the running templates get their estimates and notes
revised and are exported. None of these workflows is executed during the day.
"""

from __future__ import annotations

import random

from hidesync_events import (
    CatalogueEvent,
    WorkflowCreatedEvent,
    WorkflowDeletedEvent,
    WorkflowExportedEvent,
    WorkflowImportedEvent,
    WorkflowPublishedEvent,
    WorkflowUpdatedEvent,
)

from .clock import at, stamps_between
from .workshop import (
    KNIFE_SHEATH,
    LEATHER_APRON,
    LEATHER_WALLET,
    MANAGER,
    SADDLE_BAG,
    WALLET_DRAFT,
    WALNUT_CUTTING_BOARD,
    WATCH_STRAP,
)

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
