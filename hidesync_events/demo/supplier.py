"""A simulated supplier integration, so the demo shows retries and dead letters.

When an execution reserves a material, HideSync would place an order with the
material's supplier over an unreliable API. This handler stands in for that call: about
4% of orders fail twice with a timeout before they go through (retried), and about 1%
are refused for good (dead-lettered). Which orders fail follows from the execution and
the material, so every run of the recorded day fails the same orders; the attempts are
counted in the bus's store, so every worker process agrees.
"""

from __future__ import annotations

import hashlib

from hidesync_events import (
    RetryPolicy,
    WorkflowResourceReservedEvent,
    global_event_bus,
)

#: Fast retries keep the demo short; production policies wait longer.
SUPPLIER_RETRY = RetryPolicy(max_attempts=3, backoff_s=0.2, max_backoff_s=1.0)


class SupplierTimeout(Exception):
    """The supplier's API did not answer in time."""


class OrderRefused(Exception):
    """The supplier refused the order."""


@global_event_bus.subscribe(retry=SUPPLIER_RETRY)
def order_material(event: WorkflowResourceReservedEvent) -> None:
    """Place the order for a reserved material with its supplier."""
    if event.resource_type != "material":
        return

    order = f"{event.execution_id}:{event.resource_id}".encode()
    bucket = int.from_bytes(hashlib.sha256(order).digest()[:4], "big") % 100
    if bucket == 99:
        raise OrderRefused(f"supplier refused {event.resource_name!r}: discontinued")

    if bucket < 4:
        key = f"{global_event_bus.settings.key_prefix}:demo:supplier_attempts"
        attempts = global_event_bus.runtime.kv.hincrby(key, event.event_id)
        if attempts <= 2:
            raise SupplierTimeout(f"supplier API timed out (attempt {attempts})")
