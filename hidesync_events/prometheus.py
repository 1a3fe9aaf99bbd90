"""Prometheus metrics of a worker, served on ``HIDESYNC_EVENTS_METRICS_PORT``.

A Celery worker is several processes: the main one, which consumes, and its prefork
children, which run the handlers. The children count in ``prometheus_client``'s
multiprocess mode (one memory-mapped file per process in a directory named by
``PROMETHEUS_MULTIPROC_DIR``), and the main process serves the sum. That mode is chosen
when ``prometheus_client`` is first imported, so :func:`prepare` runs before anything
imports it: the worker calls it at ``worker_init``, after handler modules are imported
and before the pool forks. Handler modules that import ``prometheus_client``
themselves need ``PROMETHEUS_MULTIPROC_DIR`` set before the worker starts.

Each worker run keeps its files in a fresh directory (inside
``PROMETHEUS_MULTIPROC_DIR`` when that is set), removed when the worker exits: counts
never carry over from an earlier run or mix with another worker's. A worker killed
outright (SIGKILL) leaves its directory behind. Counters of prefork children that
exited stay in their files, as they must for the totals to hold; a worker that
replaces its children often (``--max-tasks-per-child``) gathers one small file per
child, read at every scrape.

What is exported::

    hidesync_events_handled_total{event_type, handler, outcome}   succeeded | failed
    hidesync_events_handler_duration_seconds{event_type, handler}  histogram
    hidesync_events_retries_total{handler}
    hidesync_events_duplicates_total{handler}                      skipped: done before
    hidesync_events_dead_letters_total{reason}
    hidesync_events_queue_depth{queue}                             read at each scrape
    hidesync_events_broker_up                                      1 if it answered

Handler runs are counted as they finish; the broker is asked for the queue depths at
each scrape, and when it does not answer the depths are left out and
``hidesync_events_broker_up`` is 0.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hidesync_events.errors import ConfigurationError
from hidesync_events.metrics import Finished

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: Handler durations, in seconds: from 25 us (a handler that only records something)
#: to the default time limit.
DURATION_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip


def prepare() -> str:
    """Make this worker run's multiprocess directory and point the children at it.

    Refuses when ``prometheus_client`` was imported already, outside multiprocess
    mode: the children's counts would then never reach the page.
    """
    if "prometheus_client" in sys.modules and not _in_multiprocess_mode():
        raise ConfigurationError(
            "prometheus_client was imported before the worker could switch it to "
            f"multiprocess mode; set {MULTIPROCESS_DIR_VARIABLE} to a directory "
            "before the worker starts, or import prometheus_client later"
        )

    parent = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None
    if parent:
        os.makedirs(parent, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="hidesync-prometheus-", dir=parent)
    # prometheus_client reads the variable whenever a process opens its file.
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
    owner = os.getpid()

    def remove() -> None:
        # Only the process that made it: prefork children leave with os._exit, but
        # one that exits normally must not take its siblings' files away.
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def _in_multiprocess_mode() -> bool:
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


class PrometheusExporter:
    """Feeds the built-in metrics of one process into Prometheus counters.

    Attached to :class:`~hidesync_events.metrics.Metrics`, which calls it for every
    count and every finished handler run as they are noted, before they are folded.
    """

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.handled = Counter(
            "hidesync_events_handled",
            "Handler runs, by event type, handler and outcome.",
            ["event_type", "handler", "outcome"],
        )
        self.durations = Histogram(
            "hidesync_events_handler_duration_seconds",
            "How long handlers ran.",
            ["event_type", "handler"],
            buckets=DURATION_BUCKETS,
        )
        self._counters = {
            "retries": Counter(
                "hidesync_events_retries",
                "Retries scheduled after a handler failed.",
                ["handler"],
            ),
            "duplicates": Counter(
                "hidesync_events_duplicates",
                "Handler runs skipped because they had completed before.",
                ["handler"],
            ),
            "dead_letters": Counter(
                "hidesync_events_dead_letters",
                "Dead letters kept, by reason.",
                ["reason"],
            ),
        }

    def count(self, family: str, key: str, amount: int) -> None:
        counter = self._counters.get(family)
        if counter is not None:
            counter.labels(key).inc(amount)

    def handlers_finished(self, finished: Iterable[Finished]) -> None:
        for handler, event_type, duration_s, failed in finished:
            outcome = "failed" if failed else "succeeded"
            self.handled.labels(event_type, handler, outcome).inc()
            self.durations.labels(event_type, handler).observe(duration_s)


class QueueDepthCollector:
    """The depth of this worker's queues, asked of the broker at each scrape."""

    def __init__(self, broker_url: str, queues: Sequence[str]) -> None:
        self._broker_url = broker_url
        self._queues = list(queues)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from hidesync_events.stats import queue_depths

        gauge = GaugeMetricFamily(
            "hidesync_events_queue_depth",
            "Messages waiting in each queue this worker consumes.",
            labels=["queue"],
        )
        # A broker that does not answer leaves the depths out of this scrape and says
        # so in broker_up; the scrape itself, and the counters, still work.
        try:
            depths = queue_depths(self._broker_url, self._queues)
        except Exception:
            depths = {}
            answered = False
        else:
            answered = True
        for queue, depth in depths.items():
            gauge.add_metric([queue], depth.depth)
        yield gauge
        yield GaugeMetricFamily(
            "hidesync_events_broker_up",
            "1 when the broker answered this scrape's queue-depth question, else 0.",
            value=1 if answered else 0,
        )


def serve(
    directory: str, host: str, port: int, extra: Iterable[Collector] = ()
) -> None:
    """Serve the sum of the processes' files in ``directory`` (and ``extra``)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for collector in extra:
        registry.register(collector)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ConfigurationError(
            f"cannot serve Prometheus metrics on {host}:{port}: {error.strerror}; "
            "give the worker a free port (--metrics-port or HIDESYNC_EVENTS_METRICS_PORT)"
        ) from error
