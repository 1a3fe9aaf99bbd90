"""Resource tracking: what is reserved by open executions, and shortage alerts."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from hidesync_events import (
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceUnavailableEvent,
    effects,
)
from workers.handlers.base import ReferenceHandlers

logger = logging.getLogger("hidesync.events.workers.resources")

#: A reservation without a quantity (a tool, say) counts as one unit.
_UNIT = 1.0


@dataclass(frozen=True)
class ResourceReport:
    reserved: int
    released: int
    open_reservations: dict[str, float]
    shortages: list[dict[str, object]]


class ResourceTracking(ReferenceHandlers):
    """Keeps the net quantity reserved per (execution, resource) and raises alerts.

    Reserving adds and releasing subtracts, so a release handled before its
    reservation (two workers, one queue) still nets to zero.
    """

    area = "resources"

    def register(self) -> None:
        self.bus.subscribe(WorkflowResourceReservedEvent, self.reserved)
        self.bus.subscribe(WorkflowResourceReleasedEvent, self.released)
        self.bus.subscribe(WorkflowResourceUnavailableEvent, self.unavailable)

    def reserved(self, event: WorkflowResourceReservedEvent) -> None:
        effects().hincrbyfloat(
            self.key("net"), _reservation(event), event.quantity or _UNIT
        ).hincrby(self.key("totals"), "reserved")

    def released(self, event: WorkflowResourceReleasedEvent) -> None:
        effects().hincrbyfloat(
            self.key("net"), _reservation(event), -(event.quantity or _UNIT)
        ).hincrby(self.key("totals"), "released")

    def unavailable(self, event: WorkflowResourceUnavailableEvent) -> None:
        alert = {
            "event_id": event.event_id,
            "execution_id": event.execution_id,
            "resource": f"{event.resource_type}:{event.resource_id}",
            "resource_name": event.resource_name,
            "required": event.required_quantity,
            "available": event.available_quantity,
        }
        effects().hset(self.key("shortages"), {event.event_id: json.dumps(alert)})
        logger.warning(
            "shortage: execution %s needs %s of %s, %s available",
            event.execution_id,
            event.required_quantity,
            event.resource_name or alert["resource"],
            event.available_quantity,
        )

    def report(self) -> ResourceReport:
        net = self.kv.hgetall(self.key("net"))
        totals = self.kv.hgetall(self.key("totals"))
        shortages = self.kv.hgetall(self.key("shortages"))
        return ResourceReport(
            reserved=int(totals.get("reserved", 0)),
            released=int(totals.get("released", 0)),
            open_reservations={k: float(v) for k, v in net.items() if float(v) > 1e-9},
            shortages=[json.loads(text) for text in shortages.values()],
        )


def _reservation(
    event: WorkflowResourceReservedEvent | WorkflowResourceReleasedEvent,
) -> str:
    return f"{event.execution_id}:{event.resource_type}:{event.resource_id}"
