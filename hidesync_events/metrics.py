"""Built-in metrics: events per type, handler runs and errors, retries, dead letters,
and handler durations.

Each process counts in memory (cheap on the hot path) and, in Celery mode, adds what it
counted to shared totals in the key-value store every few seconds and at shutdown, so
``hidesync-events stats`` and the demo see the whole fleet. Durations go into
logarithmic buckets (20 per decade, each about 12% wide): percentiles read from them are
accurate to within half a bucket, about 6%.
"""

from __future__ import annotations

import os
import threading
import weakref
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Protocol, TypeVar

from hidesync_events.keyvalue import KeyValue

_BUCKETS_PER_DECADE = 20
#: How many counts and finished handler runs are noted before they are counted.
_FOLD_EVERY = 4096
_SMALLEST_S = 1e-6
_T = TypeVar("_T")

FAMILIES = (
    "published",
    "delivered",
    "handler_runs",
    "handler_errors",
    "retries",
    "retried",
    "dead_letters",
    "duplicates",
    "spooled",
    "durations",
)


def duration_bucket(duration_s: float) -> int:
    """Return the histogram bucket of a duration (0 for a microsecond or less)."""
    return bisect_left(_UPPERS_S, duration_s)


def bucket_upper_s(bucket: float) -> float:
    """Return the longest duration that falls in ``bucket``."""
    return _SMALLEST_S * 10 ** (bucket / _BUCKETS_PER_DECADE)


#: Each bucket's longest duration, from a microsecond to 31 years (longer ones fall
#: in the last bucket): a bucket is found by bisection, in C, when runs are counted.
_UPPERS_S = [bucket_upper_s(bucket) for bucket in range(15 * _BUCKETS_PER_DECADE + 1)]
_bucket_of = partial(bisect_left, _UPPERS_S)


@dataclass
class MetricsSnapshot:
    """Counters by family (``published``, ``handler_runs``...) at one moment."""

    counters: dict[str, Counter[str]] = field(
        default_factory=lambda: {family: Counter() for family in FAMILIES}
    )

    def __getitem__(self, family: str) -> Counter[str]:
        return self.counters[family]

    def total(self, family: str) -> int:
        return sum(self.counters[family].values())

    def duration_percentile_s(
        self, quantile: float, handler: str | None = None
    ) -> float:
        """Estimate a percentile of handler durations, of one handler or of all."""
        buckets: Counter[int] = Counter()
        for key, count in self.counters["durations"].items():
            name, _, bucket_text = key.rpartition("|")
            if handler is None or name == handler:
                buckets[int(bucket_text)] += count

        total = sum(buckets.values())
        if not total:
            return 0.0

        rank = quantile * total
        seen = 0
        for bucket in sorted(buckets):
            seen += buckets[bucket]
            if seen >= rank:
                # The bucket's geometric middle: half a bucket's error either way.
                return bucket_upper_s(bucket - 0.5) if bucket else _SMALLEST_S

        return bucket_upper_s(max(buckets))

    def summary(self) -> dict[str, object]:
        """Return the figures the reference ``EventMetrics`` reported, and more."""
        delivered = self.counters["delivered"]
        return {
            "total_events": sum(delivered.values()),
            "event_types": dict(delivered),
            "handler_errors": dict(self.counters["handler_errors"]),
            "most_common_events": delivered.most_common(10),
            "retries": self.total("retries"),
            "dead_letters": self.total("dead_letters"),
        }


#: A finished handler run: handler, event type, duration, whether it failed.
Finished = tuple[str, str, float, bool]


class Exporter(Protocol):
    """Somewhere else the counts go as they are made (Prometheus, on workers)."""

    def count(self, family: str, key: str, amount: int) -> None: ...
    def handlers_finished(self, finished: Iterable[Finished]) -> None: ...


class Metrics:
    """Counters of one process; what was already shared is remembered, not kept apart,
    so counting costs one update.

    Counts and finished runs are noted first, on deques (an append takes no lock and
    is never lost to a concurrent reader), and counted in bulk when read or every few
    thousand notes: noting happens for every handler of every event.
    """

    def __init__(self) -> None:
        self.exporter: Exporter | None = None
        self._lock = threading.Lock()
        self._totals = MetricsSnapshot()
        self._shared = MetricsSnapshot()
        self._counters = self._totals.counters
        self._counts: deque[tuple[str, str, int]] = deque()
        #: Finished handler runs, as (handler, duration bucket).
        self._runs: deque[tuple[str, int]] = deque()
        _renew_lock_in_forked_children(self)

    def after_fork(self) -> None:
        """A forked child starts with a free lock (the parent's flusher may have held
        it at the moment of the fork) and counts from zero: what the parent counted
        is the parent's to share, and would be shared twice otherwise."""
        self._lock = threading.Lock()
        self.reset()

    def count(self, family: str, key: str, amount: int = 1) -> None:
        counts = self._counts
        counts.append((family, key, amount))
        if self.exporter is not None:
            self.exporter.count(family, key, amount)
        if len(counts) >= _FOLD_EVERY:
            self._fold_now()

    def handler_finished(
        self, handler: str, event_type: str, duration_s: float, *, failed: bool
    ) -> None:
        # A run is noted as its handler and duration bucket, the key it is counted
        # under: one small tuple, and one pass of Counter when folded.
        runs = self._runs
        runs.append((handler, _bucket_of(duration_s)))
        if failed:
            self._counts.append(("handler_errors", f"{handler}:{event_type}", 1))
        if self.exporter is not None:
            # At once: a process killed before its next fold keeps these counted.
            self.exporter.handlers_finished(
                ((handler, event_type, duration_s, failed),)
            )
        if len(runs) >= _FOLD_EVERY:
            self._fold_now()

    def snapshot(self) -> MetricsSnapshot:
        """Return a copy of this process's counters."""
        with self._lock:
            self._fold()
            return _copy(self._totals)

    def _fold_now(self) -> None:
        with self._lock:
            self._fold()

    def _fold(self) -> None:
        # The noted items are taken off their deques and tallied by Counter, in C:
        # Python runs once per distinct key, not once per item.
        counters = self._counters
        counts = Counter(_take_all(self._counts))
        for (family, key, amount), times in counts.items():
            counters[family][key] += amount * times

        runs, durations = counters["handler_runs"], counters["durations"]
        for (handler, bucket), times in Counter(_take_all(self._runs)).items():
            runs[handler] += times
            durations[f"{handler}|{bucket}"] += times

    def reset(self) -> None:
        with self._lock:
            self._totals = MetricsSnapshot()
            self._shared = MetricsSnapshot()
            self._counters = self._totals.counters
            self._counts.clear()
            self._runs.clear()

    def flush(self, kv: KeyValue, key_prefix: str) -> None:
        """Add what was counted since the last flush to the shared totals in ``kv``."""
        with self._lock:
            self._fold()
            now = _copy(self._totals)
        pending = {
            family: counter - self._shared.counters[family]
            for family, counter in now.counters.items()
        }

        batch = kv.batch()
        queued = False
        for family, counter in pending.items():
            for key, amount in counter.items():
                batch.hincrby(f"{key_prefix}:metrics:{family}", key, amount)
                queued = True
        if queued:
            batch.execute()
        self._shared = now  # only once the store has it: a failed flush is retried

    @staticmethod
    def load(kv: KeyValue, key_prefix: str) -> MetricsSnapshot:
        """Read the shared totals of every process that flushed to ``kv``."""
        snapshot = MetricsSnapshot()
        for family in FAMILIES:
            stored = kv.hgetall(f"{key_prefix}:metrics:{family}")
            snapshot.counters[family].update({k: int(v) for k, v in stored.items()})
        return snapshot


def _take_all(noted: deque[_T]) -> list[_T]:
    """Take the items in ``noted`` now, leaving any appended meanwhile."""
    return list(islice(iter(noted.popleft, None), len(noted)))


def _renew_lock_in_forked_children(metrics: Metrics) -> None:
    reference = weakref.ref(metrics)

    def renew() -> None:
        alive = reference()
        if alive is not None:
            alive.after_fork()

    os.register_at_fork(after_in_child=renew)


def _copy(snapshot: MetricsSnapshot) -> MetricsSnapshot:
    return MetricsSnapshot({k: Counter(v) for k, v in snapshot.counters.items()})
