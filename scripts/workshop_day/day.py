"""The whole workshop day: every event drawn, checked and written as JSON Lines.

``record_day`` draws the tools, the template work, the record keeping and some 250
executions from one ``random.Random(seed)``, in that order, sorts them by timestamp and
checks that every catalogued type occurs within working hours; ``write_lines`` writes
one ``{"type": ..., "payload": ...}`` line per event.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from hidesync_events import CATALOGUE, CatalogueEvent, wire_name

from .clock import (
    DAY_END,
    DAY_START,
    FIRST_EXECUTION_START,
    LAST_EXECUTION_START,
    random_time,
)
from .execution import record_execution
from .record_keeping import record_record_keeping
from .template_work import record_workflow_admin
from .tool_usage import record_tools
from .workshop import EXECUTIONS_PER_DAY, FIRST_EXECUTION_ID, TEMPLATES

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
