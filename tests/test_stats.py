"""``hidesync-events stats`` and :mod:`hidesync_events.stats`: what waits in each queue,
who consumes it, what was handled and failed, and the dead letters, per category.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from hidesync_events import (
    ToolCreated,
    WorkflowStartedEvent,
    configure,
    global_event_bus,
    known_categories,
)
from hidesync_events.cli import main
from hidesync_events.cli.stats import live_frame
from hidesync_events.codec import encode
from hidesync_events.fleet import ConsumerRegistry
from hidesync_events.metrics import Metrics
from hidesync_events.redis_server import ThrowawayRedis, free_port
from hidesync_events.stats import gather_stats, message_timestamp
from tests.support.fleet import WorkerFleet

TEN_MINUTES_AGO = datetime.now(UTC) - timedelta(minutes=10)
ONE_MINUTE_AGO = datetime.now(UTC) - timedelta(minutes=1)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _stats_json(broker_url: str) -> dict[str, Any]:
    result = run("stats", "--json", "--broker", broker_url)
    assert 0 == result.exit_code, result.output
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def _recorded_metrics() -> Metrics:
    metrics = Metrics()
    metrics.count("delivered", "ToolCreated", 5)
    metrics.count("delivered", "WorkflowStartedEvent", 2)
    metrics.handler_finished(
        "app.handlers:reserve", "WorkflowStartedEvent", 0.020, failed=True
    )
    metrics.handler_finished(
        "app.handlers:reserve", "WorkflowStartedEvent", 0.025, failed=False
    )
    metrics.handler_finished("app.handlers:notify", "ToolCreated", 0.004, failed=False)
    metrics.count("retries", "app.handlers:reserve")
    metrics.count("duplicates", "app.handlers:notify", 2)
    return metrics


def _wait_until_announced(worker: str, timeout_s: float = 30.0) -> None:
    runtime = global_event_bus.runtime
    registry = ConsumerRegistry(runtime.kv, key_prefix=runtime.settings.key_prefix)
    deadline = time.monotonic() + timeout_s
    while worker not in registry.consumers():
        assert time.monotonic() < deadline, f"{worker} never announced its queues"
        time.sleep(0.1)


class TestStatsJson:
    @pytest.fixture
    def fleet_state(
        self, fresh_redis: ThrowawayRedis, worker_fleet: WorkerFleet
    ) -> tuple[str, Metrics]:
        """Events waiting in two queues, three dead letters, flushed metrics, and one
        worker consuming the steps queue; returns the worker's name and the metrics.
        """
        configure(mode="celery", broker_url=fresh_redis.url)
        # No worker consumes tools or execution: these wait, the oldest first.
        global_event_bus.publish(ToolCreated(tool_id=1, timestamp=TEN_MINUTES_AGO))
        global_event_bus.publish(ToolCreated(tool_id=2))
        global_event_bus.publish(ToolCreated(tool_id=3))
        global_event_bus.publish(
            WorkflowStartedEvent(execution_id=7, timestamp=ONE_MINUTE_AGO)
        )

        store = global_event_bus.dead_letters
        failed = WorkflowStartedEvent(execution_id=8)
        store.record(
            reason="handler_failed",
            raw=encode(failed, max_bytes=2**20),
            error=ValueError("no leather"),
            event_type="WorkflowStartedEvent",
            event_id=failed.event_id,
            handler="app.handlers:reserve",
        )
        store.record(
            reason="malformed",
            raw="{not json",
            error="not JSON",
            queue="hidesync.events.tools",
        )
        store.record(reason="malformed", raw="[]", error="not an envelope")

        metrics = _recorded_metrics()
        metrics.flush(global_event_bus.runtime.kv, global_event_bus.settings.key_prefix)

        worker_fleet.start("stats", categories=("steps",))
        name = f"stats@{socket.gethostname()}"
        _wait_until_announced(name)
        return name, metrics

    def test_reports_each_category_queue(
        self, fleet_state: tuple[str, Metrics], fresh_redis: ThrowawayRedis
    ) -> None:
        """Per category: depth, oldest waiting message's age, consumers, handled,
        failed and dead letters; a letter without an event type counts by its queue.
        """
        worker, _ = fleet_state

        figures = _stats_json(fresh_redis.url)

        categories = figures["categories"]
        assert list(known_categories()) == list(categories)
        tools, execution = categories.pop("tools"), categories.pop("execution")
        # The oldest message (at the tail kombu pops from) is the ten-minute-old one.
        assert 600 <= tools.pop("oldest_age_s") < 3600
        assert 60 <= execution.pop("oldest_age_s") < 600
        assert {
            "queue": "hidesync.events.tools",
            "depth": 3,
            "consumers": [],
            "handled": 5,
            "failed": 0,
            "dead_letters": 1,
        } == tools
        assert {
            "queue": "hidesync.events.execution",
            "depth": 1,
            "consumers": [],
            "handled": 2,
            "failed": 1,
            "dead_letters": 1,
        } == execution
        assert {
            "queue": "hidesync.events.steps",
            "depth": 0,
            "oldest_age_s": None,
            "consumers": [worker],
            "handled": 0,
            "failed": 0,
            "dead_letters": 0,
        } == categories.pop("steps")
        for category, rest in categories.items():
            assert (f"hidesync.events.{category}", 0, None, [], 0, 0, 0) == (
                rest["queue"],
                rest["depth"],
                rest["oldest_age_s"],
                rest["consumers"],
                rest["handled"],
                rest["failed"],
                rest["dead_letters"],
            )

    def test_reports_fleet_totals_and_most_common_events(
        self, fleet_state: tuple[str, Metrics], fresh_redis: ThrowawayRedis
    ) -> None:
        """Totals come from the flushed metrics and the dead-letter store (all three
        letters, the one with no category included); latency from the histogram.
        """
        _, metrics = fleet_state
        recorded = metrics.snapshot()

        figures = _stats_json(fresh_redis.url)

        assert {
            "handled": 7,
            "handler_runs": 3,
            "failed": 1,
            "retries": 1,
            "duplicates": 2,
            "spooled": 0,
            "dead_letters": 3,
            "handler_p50_s": recorded.duration_percentile_s(0.50),
            "handler_p99_s": recorded.duration_percentile_s(0.99),
        } == figures["totals"]
        assert [
            {"event": "ToolCreated", "category": "tools", "handled": 5},
            {"event": "WorkflowStartedEvent", "category": "execution", "handled": 2},
        ] == figures["most_common_events"]
        assert fresh_redis.url == figures["broker"]
        assert figures["oldest_age_known"] is True


class TestOldestMessage:
    def test_the_timestamp_is_read_from_the_celery_message(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """The envelope inside the kombu message's base64 body gives the event time."""
        configure(mode="celery", broker_url=fresh_redis.url)
        global_event_bus.publish(ToolCreated(timestamp=TEN_MINUTES_AGO))

        [message] = fresh_redis.client().lrange("hidesync.events.tools", 0, -1)

        assert TEN_MINUTES_AGO == message_timestamp(message)

    def test_a_redis_url_in_capitals_is_read_as_redis(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """A scheme in capitals is still Redis (as kombu and redis-py read it): the
        oldest message's age is known."""
        broker_url = fresh_redis.url.replace("redis://", "REDIS://")
        configure(mode="celery", broker_url=broker_url)
        global_event_bus.publish(ToolCreated(timestamp=TEN_MINUTES_AGO))

        figures = gather_stats()

        assert figures.oldest_age_known is True
        assert figures.category("tools").oldest_age_s is not None

    def test_an_unreadable_oldest_message_counts_but_has_no_age(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """A message that is not a deliver task still counts in the depth; its age is
        unknown (None), never a guess from the newer messages.
        """
        configure(mode="celery", broker_url=fresh_redis.url)
        fresh_redis.client().lpush("hidesync.events.tools", "not a kombu message")
        global_event_bus.publish(ToolCreated(timestamp=ONE_MINUTE_AGO))

        tools = gather_stats().category("tools")

        assert (2, None) == (tools.depth, tools.oldest_age_s)


class TestLiveView:
    def test_a_frame_shows_the_queues(self, fresh_redis: ThrowawayRedis) -> None:
        """One frame of --watch lists each category with its waiting messages, and
        says "none" where messages wait with no worker to consume them.
        """
        configure(mode="celery", broker_url=fresh_redis.url)
        for tool_id in range(4):
            global_event_bus.publish(ToolCreated(tool_id=tool_id))
        console = Console(record=True, width=160)

        console.print(live_frame(gather_stats))

        text = console.export_text()
        [tools_row] = [line for line in text.splitlines() if "│ tools " in line]
        cells = [cell.strip() for cell in tools_row.split("│")[1:-1]]
        # category, waiting, oldest, consumers, handled, failed, dead letters
        assert ("tools", "4", "none") == (cells[0], cells[1], cells[3])
        assert "handler latency p99" in text

    def test_a_frame_says_when_the_broker_is_away(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """While the broker is down a frame says so instead of ending the view."""
        configure(mode="celery", broker_url=fresh_redis.url)
        fresh_redis.stop()
        console = Console(record=True, width=160)

        console.print(live_frame(gather_stats))

        assert "cannot reach the broker" in console.export_text()


class TestCommand:
    def test_an_unreachable_broker_exits_3(self) -> None:
        """With nothing listening at the broker URL, stats exits with code 3."""
        result = CliRunner().invoke(
            main, ["stats", "--broker", f"redis://127.0.0.1:{free_port()}/0"]
        )

        assert 3 == result.exit_code
        assert "cannot reach the broker" in result.output

    def test_json_and_watch_do_not_combine(self) -> None:
        """--json with --watch is a usage error, exit code 2."""
        result = CliRunner().invoke(main, ["stats", "--json", "--watch"])

        assert 2 == result.exit_code
