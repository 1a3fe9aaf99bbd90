"""The state a delivery path works with: stores, metrics, the async loop, defaults.

Eager mode builds a runtime on a :class:`~hidesync_events.keyvalue.MemoryKeyValue`
(private to its bus); Celery mode builds one on Redis, shared by the whole fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

from hidesync_events.completions import CompletionLog, Completions, MemoryCompletionLog
from hidesync_events.dead_letters import DeadLetterStore
from hidesync_events.keyvalue import KeyValue, MemoryKeyValue, open_keyvalue
from hidesync_events.loop import LoopThread
from hidesync_events.metrics import Metrics
from hidesync_events.retry import RetryPolicy
from hidesync_events.settings import Settings
from hidesync_events.tracing import Tracing

#: The one loop of this process on which async handlers run when no loop is running.
PROCESS_LOOP = LoopThread()


@dataclass(frozen=True, slots=True)
class Runtime:
    """Stores, metrics and defaults shared by everything that delivers events."""

    settings: Settings
    kv: KeyValue
    dead_letters: DeadLetterStore
    completions: Completions
    metrics: Metrics
    default_retry: RetryPolicy
    loop: LoopThread
    #: Spans of publishing and handling; None unless ``settings.tracing``.
    tracing: Tracing | None

    @classmethod
    def create(
        cls, settings: Settings, kv: KeyValue, completions: Completions | None = None
    ) -> Runtime:
        prefix = settings.key_prefix
        return cls(
            settings=settings,
            kv=kv,
            dead_letters=DeadLetterStore(
                kv, key_prefix=prefix, max_envelope_bytes=settings.max_envelope_bytes
            ),
            completions=completions
            or CompletionLog(
                kv, key_prefix=prefix, retention_s=settings.completion_retention_s
            ),
            metrics=Metrics(),
            default_retry=RetryPolicy.from_settings(settings),
            loop=PROCESS_LOOP,
            tracing=Tracing() if settings.tracing else None,
        )

    @classmethod
    def in_memory(cls, settings: Settings) -> Runtime:
        """A runtime whose state lives and dies with this object (eager mode, tests)."""
        kv = MemoryKeyValue()
        retention_s = settings.completion_retention_s
        return cls.create(
            settings, kv, MemoryCompletionLog(kv, retention_s=retention_s)
        )

    @classmethod
    def shared(cls, settings: Settings) -> Runtime:
        """A runtime on the state store of Celery mode (``state_url``)."""
        return cls.create(settings, open_keyvalue(settings.resolved_state_url))
