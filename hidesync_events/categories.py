"""The category table: which categories exist and which Celery queue carries each.

Queues are named ``<queue_prefix>.<category>`` (``hidesync.events.tools``). This table
is the only place queue names come from: the Celery app, ``celeryconfig.py``, the
worker command and ``docker-compose.yml`` all read it.
"""

from __future__ import annotations

from hidesync_events.event import DEFAULT_CATEGORY, registered_event_types
from hidesync_events.settings import get_settings

#: The eight categories of the HideSync event catalogue, in catalogue order.
CATALOGUE_CATEGORIES: tuple[str, ...] = (
    "core",
    "tools",
    "workflows",
    "execution",
    "steps",
    "resources",
    "import_export",
    "analytics",
)


def known_categories() -> tuple[str, ...]:
    """Return the catalogue's categories, the default one, then application ones."""
    declared = {
        cls.__event_meta__.category for cls in registered_event_types().values()
    }
    builtin = (*CATALOGUE_CATEGORIES, DEFAULT_CATEGORY)
    return builtin + tuple(sorted(declared.difference(builtin)))


def queue_name(category: str, prefix: str | None = None) -> str:
    """Return the queue that carries events of ``category``."""
    return f"{prefix or get_settings().queue_prefix}.{category}"


def category_of_queue(queue: str, prefix: str | None = None) -> str:
    """Return the category a queue name belongs to (the inverse of :func:`queue_name`)."""
    head = f"{prefix or get_settings().queue_prefix}."
    if not queue.startswith(head):
        raise ValueError(f"queue {queue!r} does not start with {head!r}")

    return queue[len(head) :]
