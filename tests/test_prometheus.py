"""Prometheus metrics of a worker: real ``celery worker`` processes, scraped over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from hidesync_events import configure, global_event_bus, queue_name
from hidesync_events.redis_server import ThrowawayRedis, free_port
from tests.support import conformance as c
from tests.support.fleet import ROOT, WorkerFleet

#: name -> {labels as a sorted tuple of pairs -> value}
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def wait_for(
    port: int, ready: Callable[[Samples], bool], timeout_s: float = 30
) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


class TestWorkerMetrics:
    @pytest.fixture
    def port(self, fresh_redis: ThrowawayRedis, worker_fleet: WorkerFleet) -> int:
        port = free_port()
        worker_fleet.start(
            "prometheus",
            categories=("conformance",),
            concurrency=2,
            env={"HIDESYNC_EVENTS_METRICS_PORT": str(port)},
        )
        configure(mode="celery", broker_url=fresh_redis.url)
        return port

    def test_handled_events_are_counted_by_type_handler_and_outcome(
        self, port: int
    ) -> None:
        """Runs in both prefork children add up in the one page the worker serves."""
        for token in ("a", "b", "c", "d"):
            global_event_bus.publish(c.Ping(token=token))

        samples = wait_for(
            port,
            lambda s: (
                value(
                    s,
                    "hidesync_events_handled_total",
                    event_type="Ping",
                    handler=f"{c.__name__}:on_ping",
                    outcome="succeeded",
                )
                == 4
            ),
        )

        assert 4 == value(
            samples,
            "hidesync_events_handled_total",
            event_type="Ping",
            handler=f"{c.__name__}:on_ping",
            outcome="succeeded",
        )
        assert 4 == value(
            samples,
            "hidesync_events_handler_duration_seconds_count",
            event_type="Ping",
            handler=f"{c.__name__}:on_ping",
        )
        assert 0 < value(
            samples,
            "hidesync_events_handler_duration_seconds_sum",
            event_type="Ping",
            handler=f"{c.__name__}:on_ping",
        )

    def test_failures_retries_and_dead_letters_are_counted(self, port: int) -> None:
        """``doomed`` fails three times (its policy), is retried twice, then dead-lettered."""
        global_event_bus.publish(c.DoomedJob(token="e"))
        doomed = f"{c.__name__}:doomed"

        def failed_runs(samples: Samples) -> float:
            return value(
                samples,
                "hidesync_events_handled_total",
                event_type="DoomedJob",
                handler=doomed,
                outcome="failed",
            )

        # Handler runs reach the page when a child folds its metrics (every second).
        samples = wait_for(port, lambda s: failed_runs(s) == 3)

        assert 3 == failed_runs(samples)
        assert 2 == value(samples, "hidesync_events_retries_total", handler=doomed)
        assert 1 == value(
            samples, "hidesync_events_dead_letters_total", reason="handler_failed"
        )

    def test_queue_depth_is_read_from_the_broker_at_each_scrape(
        self, port: int, fresh_redis: ThrowawayRedis
    ) -> None:
        queue = queue_name("conformance")
        # The worker stops taking from the queue, so that what waits there stays.
        control = Celery(broker=fresh_redis.url, set_as_current=False)
        assert control.control.cancel_consumer(queue, reply=True, timeout=5)
        control.close()

        for token in ("f", "g", "h"):
            global_event_bus.publish(c.Ping(token=token))
        depth_while_waiting = value(
            scrape(port), "hidesync_events_queue_depth", queue=queue
        )
        fresh_redis.client().delete(queue)
        depth_once_emptied = value(
            scrape(port), "hidesync_events_queue_depth", queue=queue
        )

        assert 3 == depth_while_waiting
        assert 0 == depth_once_emptied


def test_a_port_in_use_stops_the_worker_with_a_clear_error(
    fresh_redis: ThrowawayRedis, worker_fleet: WorkerFleet
) -> None:
    port = free_port()
    worker_fleet.start(
        "first",
        categories=("conformance",),
        env={"HIDESYNC_EVENTS_METRICS_PORT": str(port)},
    )

    second = subprocess.run(
        [sys.executable, "-m", "hidesync_events", "worker", "conformance",
         "--handlers", c.__name__, "--metrics-port", str(port),
         "--broker", fresh_redis.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip

    assert 1 == second.returncode
    assert f"cannot serve Prometheus metrics on 127.0.0.1:{port}" in second.stderr


def test_prometheus_imported_too_early_is_a_configuration_error() -> None:
    """Multiprocess mode is chosen at import: a worker cannot switch it on later."""
    program = (
        "import prometheus_client\n"
        "from hidesync_events import prometheus\n"
        "from hidesync_events.errors import ConfigurationError\n"
        "try:\n"
        "    prometheus.prepare()\n"
        "except ConfigurationError as error:\n"
        "    print(error)\n"
    )
    environment = {"PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        check=True,
    )

    assert "prometheus_client was imported before" in result.stdout


class TestAcrossRuns:
    def test_a_broker_that_does_not_answer_is_reported_not_hidden(
        self, fresh_redis: ThrowawayRedis, worker_fleet: WorkerFleet
    ) -> None:
        port = free_port()
        worker_fleet.start(
            "blind",
            categories=("conformance",),
            env={"HIDESYNC_EVENTS_METRICS_PORT": str(port)},
        )
        up_before = value(scrape(port), "hidesync_events_broker_up")

        fresh_redis.stop()
        try:
            while_down = scrape(port)
        finally:
            fresh_redis.start()

        assert 1 == up_before
        assert 0 == value(while_down, "hidesync_events_broker_up")
        assert "hidesync_events_queue_depth" not in while_down

    def test_each_run_counts_from_zero_in_a_directory_of_its_own(
        self,
        fresh_redis: ThrowawayRedis,
        worker_fleet: WorkerFleet,
        tmp_path: Path,
    ) -> None:
        """A PROMETHEUS_MULTIPROC_DIR the user set holds one fresh subdirectory per
        worker run, removed when it stops: nothing carries over or mixes."""
        port = free_port()
        env = {
            "HIDESYNC_EVENTS_METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        }
        on_ping = {
            "event_type": "Ping",
            "handler": f"{c.__name__}:on_ping",
            "outcome": "succeeded",
        }
        worker_fleet.start("first", categories=("conformance",), env=env)
        configure(mode="celery", broker_url=fresh_redis.url)
        global_event_bus.publish(c.Ping(token="first run"))
        first = wait_for(
            port, lambda s: value(s, "hidesync_events_handled_total", **on_ping) == 1
        )
        [run_directory] = list(tmp_path.iterdir())

        worker_fleet.stop()
        removed = not run_directory.exists()
        worker_fleet.start("second", categories=("conformance",), env=env)
        second = scrape(port)

        assert 1 == value(first, "hidesync_events_handled_total", **on_ping)
        assert removed
        assert 0 == value(second, "hidesync_events_handled_total", **on_ping)
