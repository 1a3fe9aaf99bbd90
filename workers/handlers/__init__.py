"""HideSync's reference handlers, subscribed to the global event bus on import.

* :mod:`~workers.handlers.analytics`: step durations per step type, completions,
  cancellations;
* :mod:`~workers.handlers.resources`: open reservations and shortage alerts;
* :mod:`~workers.handlers.tools`: who has which tool, what is in maintenance;
* :mod:`~workers.handlers.audit`: an audit trail of every event.

Their state lives in the bus's key-value store: Redis in Celery mode (shared by every
worker), memory in eager mode. Every update is queued on
:func:`~hidesync_events.effects`, applied atomically with the record that the handler
completed, so it happens once per event even when a message is delivered twice. Every
update is also commutative (counters, per-id records), so events of one category
handled by several workers in any order give the same state.
"""

from hidesync_events import global_event_bus
from workers.handlers.analytics import WorkflowAnalytics
from workers.handlers.audit import AuditTrail
from workers.handlers.resources import ResourceTracking
from workers.handlers.tools import ToolAvailability

analytics = WorkflowAnalytics(global_event_bus)
resources = ResourceTracking(global_event_bus)
tools = ToolAvailability(global_event_bus)
audit = AuditTrail(global_event_bus)

for _handlers in (analytics, resources, tools, audit):
    _handlers.register()

__all__ = [
    "AuditTrail",
    "ResourceTracking",
    "ToolAvailability",
    "WorkflowAnalytics",
    "analytics",
    "audit",
    "resources",
    "tools",
]
