"""Tool availability: who has which tool, which tools are in maintenance."""

from __future__ import annotations

from dataclasses import dataclass

from hidesync_events import (
    ToolCheckedOut,
    ToolMaintenanceCompleted,
    ToolMaintenanceScheduled,
    ToolReturned,
    effects,
)
from workers.handlers.base import ReferenceHandlers


@dataclass(frozen=True)
class ToolReport:
    checked_out: dict[int, str]
    in_maintenance: list[int]
    checkouts: int
    returned_with_issues: int


class ToolAvailability(ReferenceHandlers):
    """Records check-outs and maintenance by their own ids; a return or completion
    closes its record. Open records are those without a closing one, whatever order
    the events were handled in.
    """

    area = "tools"

    def register(self) -> None:
        self.bus.subscribe(ToolCheckedOut, self.checked_out)
        self.bus.subscribe(ToolReturned, self.returned)
        self.bus.subscribe(ToolMaintenanceScheduled, self.maintenance_scheduled)
        self.bus.subscribe(ToolMaintenanceCompleted, self.maintenance_completed)

    def checked_out(self, event: ToolCheckedOut) -> None:
        record = f"{event.tool_id}|{event.checked_out_by}"
        effects().hset(self.key("checkouts"), {str(event.checkout_id): record})

    def returned(self, event: ToolReturned) -> None:
        batch = effects().hset(self.key("returns"), {str(event.checkout_id): "1"})
        if event.has_issues:
            batch.hincrby(self.key("totals"), "returned_with_issues")

    def maintenance_scheduled(self, event: ToolMaintenanceScheduled) -> None:
        effects().hset(
            self.key("maintenance"), {str(event.maintenance_id): str(event.tool_id)}
        )

    def maintenance_completed(self, event: ToolMaintenanceCompleted) -> None:
        effects().hset(self.key("maintenance_done"), {str(event.maintenance_id): "1"})

    def report(self) -> ToolReport:
        checkouts = self.kv.hgetall(self.key("checkouts"))
        returns = self.kv.hgetall(self.key("returns"))
        maintenance = self.kv.hgetall(self.key("maintenance"))
        done = self.kv.hgetall(self.key("maintenance_done"))
        holders = {}
        for checkout_id, record in checkouts.items():
            if checkout_id not in returns:
                tool_id, _, holder = record.partition("|")
                holders[int(tool_id)] = holder
        totals = self.kv.hgetall(self.key("totals"))
        return ToolReport(
            checked_out=holders,
            in_maintenance=sorted(
                {int(tool) for mid, tool in maintenance.items() if mid not in done}
            ),
            checkouts=len(checkouts),
            returned_with_issues=int(totals.get("returned_with_issues", 0)),
        )
