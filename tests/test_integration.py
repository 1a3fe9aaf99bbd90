"""The Celery path end to end: a real redis-server, real ``celery worker`` processes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner

from hidesync_events import (
    CATALOGUE,
    ToolCreated,
    WorkflowStartedEvent,
    configure,
    global_event_bus,
    queue_name,
)
from hidesync_events.cli import main
from hidesync_events.codec import Envelope
from hidesync_events.metrics import Metrics
from hidesync_events.recorded import recorded_workshop_day
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.transports.celery import BATCH_MAX_EVENTS
from tests.support import conformance as c
from tests.support.fleet import WorkerFleet
from tests.support.harness import Harness


class TestRouting:
    def test_every_event_lands_on_its_category_queue(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """With no worker running, each published event waits in its category's queue."""
        configure(mode="celery", broker_url=fresh_redis.url)

        for event_type in CATALOGUE:
            global_event_bus.publish(event_type())

        redis = fresh_redis.client()
        expected = Counter(queue_name(cls.__event_meta__.category) for cls in CATALOGUE)
        assert expected == {queue: redis.llen(queue) for queue in expected}

    def test_workers_consume_only_their_categories(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """Two workers on different categories each handle the events of theirs."""
        # Given one worker for the tools queue and one for the conformance queue
        worker_fleet.start("tools", categories=("tools",))
        worker_fleet.start("rest", categories=("conformance",))
        configure(mode="celery", broker_url=worker_fleet.broker_url)
        harness = Harness("celery")
        token = harness.token()

        # When an event of each category is published
        harness.publish(c.PingOfTools(token=token))
        harness.publish(c.Ping(token=token))

        # Then each ran once, on the worker consuming its queue
        seen = {
            line["type"]: line for line in harness.records("on_ping", token, count=2)
        }
        assert seen["PingOfTools"]["worker"].startswith("tools@")
        assert seen["PingOfTools"]["queue"] == "hidesync.events.tools"
        assert seen["Ping"]["worker"].startswith("rest@")
        assert seen["Ping"]["queue"] == "hidesync.events.conformance"
        assert len(harness.records("on_ping", token, count=2)) == 2


@pytest.mark.timeout(300)
class TestRecordedDay:
    def test_the_day_replays_through_two_workers(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """Every event of the recorded day is handled once, and the reference handlers
        end the day with every execution closed, every reservation released and every
        tool returned."""
        # Given two workers with the reference handlers, one per half of the categories
        front = ("core", "tools", "workflows", "execution")
        back = ("steps", "resources", "import_export", "analytics")
        for name, categories in (("front", front), ("back", back)):
            worker_fleet.start(
                name,
                categories=categories,
                handler_modules=("workers.handlers",),
                concurrency=2,
            )
        day = recorded_workshop_day()
        lines = [json.loads(line) for line in day.read_text().splitlines()]

        # When the recorded day is published from the command line
        result = CliRunner().invoke(
            main, ["publish", str(day), "--broker", worker_fleet.broker_url]
        )
        assert result.exit_code == 0, result.output

        # Then the fleet handles all of it
        from workers import handlers

        harness = Harness("celery", timeout_s=240)
        harness.wait(
            lambda: handlers.audit.report(latest=0).recorded,
            lambda recorded: recorded >= len(lines),
            f"the audit trail to record {len(lines)} events",
        )
        by_type = Counter(line["type"] for line in lines)
        assert by_type == handlers.audit.report(latest=0).by_type

        analytics = handlers.analytics.report()
        started = by_type["WorkflowStartedEvent"]
        assert (started, started) == (
            analytics.started,
            analytics.completed + analytics.cancelled,
        )
        resources = handlers.resources.report()
        assert resources.open_reservations == {}
        assert len(resources.shortages) == by_type["WorkflowResourceUnavailableEvent"]
        tools = handlers.tools.report()
        assert (tools.checked_out, tools.in_maintenance) == ({}, [])
        assert global_event_bus.dead_letters.count() == 0

        runtime = global_event_bus.runtime
        worker_fleet.stop()  # warm shutdown flushes each process's metrics
        totals = Metrics.load(runtime.kv, runtime.settings.key_prefix)
        assert len(lines) == totals.total("delivered")
        assert totals.total("handler_errors") == 0


class TestBatches:
    def test_publish_many_sends_one_message_per_category_and_batch(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """Events published together travel as few messages: one per category, split
        when a batch would hold more than its limit."""
        configure(mode="celery", broker_url=fresh_redis.url)
        tools = [ToolCreated(tool_id=n) for n in range(BATCH_MAX_EVENTS + 10)]
        starts = [WorkflowStartedEvent(execution_id=n) for n in range(3)]

        receipts = global_event_bus.publish_many([*tools, *starts])

        assert [e.event_id for e in [*tools, *starts]] == [r.event_id for r in receipts]
        assert {"sent"} == {r.status for r in receipts}
        redis = fresh_redis.client()
        assert (2, 1) == (
            redis.llen(queue_name("tools")),
            redis.llen(queue_name("execution")),
        )


class TestPartitionedState:
    def test_worker_groups_keep_their_state_in_redis_instances_of_their_own(
        self, worker_fleet: WorkerFleet, fresh_redis: ThrowawayRedis
    ) -> None:
        """Past one Redis's capacity for claims and completions (docs/scaling.md), each
        worker group points HIDESYNC_EVENTS_STATE_URL at a Redis of its own; one broker
        still carries every queue, and duplicates are still caught within a group."""
        with ThrowawayRedis() as second_state:
            # Given the tools group on the broker's Redis, the conformance group on another
            worker_fleet.start("tools", categories=("tools",))
            worker_fleet.start(
                "rest",
                categories=("conformance",),
                env={"HIDESYNC_EVENTS_STATE_URL": second_state.url},
            )
            configure(mode="celery", broker_url=fresh_redis.url)
            harness = Harness("celery")
            token = harness.token()

            # When an event of each group is published, and one of them twice
            sent: list[Envelope] = []
            global_event_bus.add_publish_listener(sent.append)
            harness.publish(c.PingOfTools(token=token))
            harness.publish(c.Ping(token=token))
            global_event_bus.send_envelope(sent[-1])
            harness.publish(c.Ping(token=f"{token}-last"))
            global_event_bus.remove_publish_listener(sent.append)

            # Then each group's handler runs and records land in its own store
            def seen(client: Any, wanted: str) -> list[dict[str, Any]]:
                lines = client.lrange("conformance:on_ping", 0, -1)
                return [
                    json.loads(line)
                    for line in lines
                    if json.loads(line)["token"].startswith(wanted)
                ]

            in_second = harness.wait(
                lambda: seen(second_state.client(), token),
                lambda lines: len(lines) >= 2,
                "both Pings handled by the rest group",
            )
            in_first = harness.wait(
                lambda: seen(fresh_redis.client(), token),
                lambda lines: len(lines) >= 1,
                "PingOfTools handled by the tools group",
            )

        assert ["PingOfTools"] == [line["type"] for line in in_first]
        assert [token, f"{token}-last"] == [line["token"] for line in in_second]
