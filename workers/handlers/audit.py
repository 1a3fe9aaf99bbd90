"""The audit trail: one line per event, every event, newest last."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hidesync_events import DomainEvent, EventBus, current_envelope, effects, wire_name
from workers.handlers.base import ReferenceHandlers

#: How many audit lines are kept; older ones are trimmed.
AUDIT_CAPACITY = 100_000


@dataclass(frozen=True)
class AuditReport:
    recorded: int
    by_type: dict[str, int]
    latest: list[dict[str, object]]


class AuditTrail(ReferenceHandlers):
    """Subscribes to ``DomainEvent`` and appends who did what, when, to a capped list."""

    area = "audit"

    def __init__(self, bus: EventBus, capacity: int = AUDIT_CAPACITY) -> None:
        super().__init__(bus)
        self.capacity = capacity

    def register(self) -> None:
        self.bus.subscribe(DomainEvent, self.record)

    def record(self, event: DomainEvent) -> None:
        envelope = current_envelope()
        line = {
            "event_id": event.event_id,
            "event_type": wire_name(event),
            "timestamp": event.timestamp.isoformat(),
            "user_id": getattr(event, "user_id", None),
            "correlation_id": envelope.correlation_id if envelope else None,
        }
        effects().rpush(self.key("trail"), json.dumps(line)).ltrim(
            self.key("trail"), -self.capacity, -1
        ).hincrby(self.key("by_type"), wire_name(event))

    def report(self, latest: int = 5) -> AuditReport:
        by_type = {k: int(v) for k, v in self.kv.hgetall(self.key("by_type")).items()}
        lines = self.kv.lrange(self.key("trail"), -latest, -1) if latest else []
        return AuditReport(
            recorded=sum(by_type.values()),
            by_type=by_type,
            latest=[json.loads(line) for line in lines],
        )
