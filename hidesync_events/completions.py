"""The record of which handlers have completed which events.

Delivery is at-least-once: a message can arrive again after a worker crash, a Redis
visibility timeout or a republish. Before a handler runs, its ``(event_id, handler)``
pair is looked up here; once it succeeds, the pair is recorded. A pair is kept for the
configured retention (``HIDESYNC_EVENTS_COMPLETION_RETENTION_S``), after which the same
event would run that handler again.
"""

from __future__ import annotations

from hidesync_events.keyvalue import KeyValue


class CompletionLog:
    """Completed ``(event_id, handler)`` pairs, each kept for ``retention_s`` seconds."""

    def __init__(self, kv: KeyValue, *, key_prefix: str, retention_s: int) -> None:
        self._kv = kv
        self._prefix = f"{key_prefix}:done"
        self._retention_s = retention_s

    def is_done(self, event_id: str, handler: str) -> bool:
        """Whether ``handler`` already completed the event ``event_id``."""
        return self._kv.exists(self._key(event_id, handler))

    def mark_done(self, event_id: str, handler: str) -> None:
        """Record that ``handler`` completed the event ``event_id``."""
        self._kv.set(self._key(event_id, handler), "1", ex_s=self._retention_s)

    def _key(self, event_id: str, handler: str) -> str:
        return f"{self._prefix}:{event_id}:{handler}"
