"""Nothing lost, nothing twice: faults survived against a real redis-server and real
``celery worker`` processes (DESIGN.md section 3, issue "Nothing lost, nothing twice").
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import signal
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from hidesync_events import (
    BrokerUnavailableError,
    SpoolFullError,
    configure,
    global_event_bus,
    queue_name,
)
from hidesync_events.celery_app import DELIVER_TASK
from hidesync_events.codec import decode, encode
from hidesync_events.metrics import Metrics
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.transports.celery import CeleryTransport
from tests.support import conformance as c
from tests.support import faults
from tests.support.fleet import WorkerFleet
from tests.support.harness import Harness
from tests.support.proxy import FaultyProxy

FAULTS = ("tests.support.faults",)
FAULTS_QUEUE = "hidesync.events.faults"
#: Short limits so crashes are noticed within a test's time, and still consistent
#: with the visibility timeout (the worker refuses inconsistent ones).
FAST_LIMITS = {
    "HIDESYNC_EVENTS_HANDLER_TIME_LIMIT_S": "20",
    "HIDESYNC_EVENTS_VISIBILITY_TIMEOUT_S": "120",
}

pytestmark = pytest.mark.timeout(180)


def token() -> str:
    return uuid.uuid4().hex


def use(url: str, **settings: object) -> Harness:
    configure(mode="celery", broker_url=url, handler_modules=(), **settings)
    return Harness("celery", timeout_s=60)


def metrics() -> Metrics:
    runtime = global_event_bus.runtime
    return Metrics.load(runtime.kv, runtime.settings.key_prefix)  # type: ignore[return-value]


@pytest.fixture
def proxy(fresh_redis: ThrowawayRedis) -> Iterator[FaultyProxy]:
    faulty = FaultyProxy(fresh_redis.port)
    yield faulty
    faulty.close()


class TestOncePerHandler:
    def test_a_republished_event_runs_no_handler_twice(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """An envelope sent twice has one effect per handler; the duplicate is counted."""
        worker_fleet.start("w", categories=("faults",), handler_modules=FAULTS)
        harness = use(worker_fleet.broker_url)
        mark = token()
        receipt = global_event_bus.publish(faults.Tally(token=mark))
        harness.wait(
            lambda: faults.effect("fast", mark), lambda n: n == 1, "the first effect"
        )

        # When the same envelope arrives again
        event = faults.Tally(token=mark)
        object.__setattr__(event, "event_id", receipt.event_id)
        global_event_bus.send_envelope(
            decode(encode(event, max_bytes=2**20), max_bytes=2**20)
        )

        # Then it is recognised as done and nothing runs again
        harness.wait(
            lambda: metrics()["duplicates"]["tests.support.faults:count_fast"],
            lambda n: n >= 1,
            "the duplicate to be counted",
        )
        assert (1, 1) == (faults.effect("fast", mark), faults.runs("fast", mark))

    def test_two_workers_given_one_event_at_once_produce_one_effect(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """Copies delivered to two workers at the same moment have one effect."""
        for name in ("a", "b"):
            worker_fleet.start(name, categories=("faults",), handler_modules=FAULTS)
        harness = use(worker_fleet.broker_url)
        mark = token()
        envelope = decode(
            encode(faults.Tally(token=mark, sleep_s=1.0), max_bytes=2**20),
            max_bytes=2**20,
        )

        global_event_bus.send_envelope(envelope)
        global_event_bus.send_envelope(envelope)

        harness.wait(
            lambda: metrics()["duplicates"]["tests.support.faults:count_slow"],
            lambda n: n >= 1,
            "the second copy of the slow handler to be skipped",
        )
        assert 1 == faults.effect("slow", mark)
        assert 1 == faults.runs("slow", mark)


class TestPoisonMessages:
    @pytest.fixture
    def fleet(self, worker_fleet: WorkerFleet) -> WorkerFleet:
        worker_fleet.start("w", categories=("conformance",))
        use(worker_fleet.broker_url)
        return worker_fleet

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("{not json", "malformed"),
            ('{"envelope_version": 1}', "malformed"),
            (
                encode(c.Ping(token="x"), max_bytes=2**20).replace('"Ping"', '"Pong"'),
                "unknown_type",
            ),
            (
                encode(c.Ping(token="x"), max_bytes=2**20).replace(
                    '"token":"x"', '"token":["x"]'
                ),
                "invalid_payload",
            ),
        ],
        ids=["not-json", "no-header", "unknown-type", "invalid-payload"],
    )
    def test_undecodable_envelopes_become_dead_letters(
        self, fleet: WorkerFleet, body: str, reason: str
    ) -> None:
        """A deliver message whose envelope cannot be decoded is kept, with its reason,
        and the worker goes on handling good events."""
        harness = Harness("celery", timeout_s=60)
        app = global_event_bus.transport.app  # type: ignore[attr-defined]

        app.send_task(DELIVER_TASK, args=[body], queue=queue_name("conformance"))

        letter = harness.wait(
            lambda: [
                d for d in global_event_bus.dead_letters.list() if d.reason == reason
            ],
            bool,
            f"a {reason} dead letter",
        )[0]
        assert letter.envelope == body
        _still_handles_events(harness)

    def test_too_large_envelopes_are_kept_by_hash(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """An envelope over the worker's size cap is a dead letter with its hash and size."""
        worker_fleet.start(
            "small", categories=("conformance",),
            env={"HIDESYNC_EVENTS_MAX_ENVELOPE_BYTES": "2048"},
        )  # fmt: skip
        harness = use(worker_fleet.broker_url)

        global_event_bus.publish(c.Ping(token="x" * 5000))

        [letter] = harness.wait(
            global_event_bus.dead_letters.list, bool, "a too_large dead letter"
        )
        assert ("too_large", None) == (letter.reason, letter.envelope)
        assert letter.envelope_bytes > 5000
        assert 64 == len(letter.envelope_sha256)

    def test_a_pickle_message_is_kept_and_never_unpickled(
        self, fleet: WorkerFleet
    ) -> None:
        """A pickle message is refused unread: dead letter, and no code of it runs."""
        harness = Harness("celery", timeout_s=60)
        marker = f"/tmp/unpickled-{token()}"
        body = _Unpickleable(marker)

        with Connection(fleet.broker_url) as connection:
            connection.Producer().publish(
                pickle.dumps([[body], {}, {}]),
                exchange="",
                routing_key=queue_name("conformance"),
                content_type="application/x-python-serialize",
                content_encoding="binary",
                headers={"task": DELIVER_TASK, "id": token(), "lang": "py"},
            )

        [letter] = harness.wait(
            lambda: [
                d
                for d in global_event_bus.dead_letters.list()
                if d.reason == "content_type"
            ],
            bool,
            "a content_type dead letter",
        )
        assert "application/x-python-serialize" in letter.error
        assert not os.path.exists(marker)
        _still_handles_events(harness)

    def test_an_unknown_task_is_kept(self, fleet: WorkerFleet) -> None:
        """A message for a task the worker does not know is kept as malformed."""
        harness = Harness("celery", timeout_s=60)
        app = global_event_bus.transport.app  # type: ignore[attr-defined]

        app.send_task("somebody.elses.task", args=[1], queue=queue_name("conformance"))

        [letter] = harness.wait(
            global_event_bus.dead_letters.list,
            bool,
            "a dead letter for the unknown task",
        )
        assert "somebody.elses.task" in letter.error
        _still_handles_events(harness)


class _Unpickleable:
    """Unpickling this would create a file: the proof that nothing was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def _still_handles_events(harness: Harness) -> None:
    mark = harness.token()
    global_event_bus.publish(c.Ping(token=mark))
    harness.records("on_ping", mark)


class TestBrokerOutage:
    def test_events_spool_while_redis_is_down_and_arrive_in_order(
        self, worker_fleet: WorkerFleet, fresh_redis: ThrowawayRedis
    ) -> None:
        """With Redis stopped, publish spools; once Redis is back, the relay sends every
        event, in the order they were published."""
        worker_fleet.start("w", categories=("faults",), handler_modules=FAULTS)
        harness = use(fresh_redis.url)
        global_event_bus.publish(faults.Tally(token="warm-up"))  # a live connection
        mark = token()

        fresh_redis.stop()
        receipts = [
            global_event_bus.publish(faults.Tally(token=mark, sequence=n))
            for n in range(10)
        ]
        fresh_redis.start()  # empty: this Redis keeps nothing on disk

        assert {"spooled"} == {r.status for r in receipts}
        harness.wait(lambda: faults.order(mark), lambda seen: len(seen) == 10, "all 10")
        assert list(range(10)) == faults.order(mark)

    def test_a_blackholed_broker_spools_within_the_budget(
        self, proxy: FaultyProxy, fresh_redis: ThrowawayRedis
    ) -> None:
        """A connection where nothing comes back spools the event; when traffic flows
        again the relay delivers it to its queue.

        The first attempt, held in the dark, may land as well once traffic flows (as
        TCP delivers what it retransmitted after a partition heals): the event arrives
        at least once, and the workers' claims run its handlers once.
        """
        harness = use(proxy.url, publish_timeout_s=0.5)
        global_event_bus.publish(c.Ping(token="warm-up"))

        proxy.mode = "blackhole"
        receipt = global_event_bus.publish(c.Ping(token="in the dark"))
        proxy.mode = "pass"

        assert "spooled" == receipt.status
        transport = global_event_bus.transport
        assert isinstance(transport, CeleryTransport)
        harness.wait(lambda: transport.publisher.spooled, lambda n: n == 0, "the relay")
        redis = fresh_redis.client()
        queued = _tokens_queued(redis.lrange(queue_name("conformance"), 0, -1))
        assert ["warm-up"] == [t for t in queued if t != "in the dark"]
        assert queued.count("in the dark") in (1, 2)

    @pytest.mark.parametrize("mode", ["refuse", "reset"])
    def test_without_a_spool_publish_raises_a_typed_error(
        self, proxy: FaultyProxy, mode: str
    ) -> None:
        """With the spool disabled, an unreachable broker is a BrokerUnavailableError."""
        use(proxy.url, publish_timeout_s=0.3, spool_enabled=False)
        proxy.mode = mode  # type: ignore[assignment]

        with pytest.raises(BrokerUnavailableError, match="did not take a message"):
            global_event_bus.publish(c.Ping(token="nowhere"))

    def test_a_full_spool_raises(self, proxy: FaultyProxy) -> None:
        """When the spool holds its limit, publish raises SpoolFullError."""
        use(proxy.url, publish_timeout_s=0.2, spool_max_events=2)
        proxy.mode = "refuse"

        for n in range(2):
            assert "spooled" == global_event_bus.publish(c.Ping(token=str(n))).status
        with pytest.raises(SpoolFullError, match="limit"):
            global_event_bus.publish(c.Ping(token="one too many"))

    def test_a_redis_restarted_empty_still_receives_events(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """After Redis restarts without its data, published events still reach the
        category queue (no exchange binding is needed)."""
        use(fresh_redis.url)
        global_event_bus.publish(c.Ping(token="before"))

        fresh_redis.restart()
        receipt = global_event_bus.publish(c.Ping(token="after"))

        assert "sent" == receipt.status
        [message] = fresh_redis.client().lrange(queue_name("conformance"), 0, -1)
        [envelope], _, _ = json.loads(base64.b64decode(json.loads(message)["body"]))
        assert '"token":"after"' in envelope

    def test_a_dead_pooled_connection_is_replaced(
        self, fresh_redis: ThrowawayRedis
    ) -> None:
        """When the server drops the publisher's connection, the next publish opens a new
        one and the event is sent, not spooled."""
        use(fresh_redis.url)
        global_event_bus.publish(c.Ping(token="first"))

        fresh_redis.client().client_kill_filter(_type="normal", skipme=True)
        receipt = global_event_bus.publish(c.Ping(token="second"))

        assert "sent" == receipt.status
        assert 2 == fresh_redis.client().llen(queue_name("conformance"))

    def test_publish_async_never_blocks_the_loop(self, proxy: FaultyProxy) -> None:
        """While publish_async waits on a black-holed broker, the loop keeps running."""
        use(proxy.url, publish_timeout_s=0.5)
        proxy.mode = "blackhole"

        async def scenario() -> tuple[str, int]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            running = asyncio.create_task(ticker())
            receipt = await global_event_bus.publish_async(c.Ping(token="async"))
            running.cancel()
            return receipt.status, ticks

        status, ticks = asyncio.run(scenario())
        assert "spooled" == status
        assert ticks >= 10


class TestWorkerCrashes:
    def test_a_worker_killed_mid_handler_finishes_the_event_once(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """SIGKILL in the middle of a handler: the event is delivered again and every
        handler's effect happens once. A handler that had finished in the killed
        message runs again, but its effects were not applied the first time: a message's
        effects are applied together when all its handlers have run."""
        worker_fleet.start(
            "w", categories=("faults",), handler_modules=FAULTS, env=FAST_LIMITS
        )
        harness = use(worker_fleet.broker_url)
        mark = token()

        global_event_bus.publish(faults.Tally(token=mark, sleep_s=2.0))
        pid = harness.wait(lambda: faults.started_pid(mark), bool, "the slow handler")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        harness.wait(
            lambda: faults.effect("slow", mark), lambda n: n == 1, "the slow effect"
        )
        assert (1, 1) == (faults.effect("fast", mark), faults.effect("slow", mark))
        assert (2, 2) == (faults.runs("fast", mark), faults.runs("slow", mark))

    def test_a_message_that_kills_every_worker_ends_as_a_dead_letter(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """A crash loop stops after max_deliveries: dead letter reason worker_lost, and
        the worker goes on."""
        env = {**FAST_LIMITS, "HIDESYNC_EVENTS_MAX_DELIVERIES": "3"}
        modules = (*FAULTS, "tests.support.conformance")
        categories = ("faults", "conformance")
        worker_fleet.start("w", categories=categories, handler_modules=modules, env=env)
        harness = use(worker_fleet.broker_url)
        event = faults.Crash(token=token())

        global_event_bus.publish(event)

        [letter] = harness.dead_letters(event.event_id)
        assert ("worker_lost", 3) == (letter.reason, letter.attempts)
        assert 2 <= faults.runs("crash", event.token) <= 3
        _still_handles_events(harness)

    def test_warm_shutdown_lets_a_running_handler_finish(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """SIGTERM while a handler runs: it completes before the worker exits."""
        worker = worker_fleet.start("w", categories=("faults",), handler_modules=FAULTS)
        harness = use(worker_fleet.broker_url)
        mark = token()

        global_event_bus.publish(faults.Tally(token=mark, sleep_s=1.5))
        harness.wait(lambda: faults.started_pid(mark), bool, "the slow handler")
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(30)

        assert (1, 1) == (faults.effect("slow", mark), faults.effect("fast", mark))
        assert 0 == worker.process.returncode

    def test_a_worker_refuses_settings_that_would_deliver_twice(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """A handler time limit reaching the visibility timeout stops the worker at start."""
        env = {"HIDESYNC_EVENTS_HANDLER_TIME_LIMIT_S": "60",
               "HIDESYNC_EVENTS_VISIBILITY_TIMEOUT_S": "90"}  # fmt: skip

        with pytest.raises(RuntimeError, match="visibility timeout"):
            worker_fleet.start(
                "unsafe", categories=("faults",), handler_modules=FAULTS, env=env
            )

    def test_a_worker_warns_about_categories_nobody_consumes(
        self, worker_fleet: WorkerFleet
    ) -> None:
        """Handlers for a category no worker consumes are reported at start."""
        worker = worker_fleet.start("tools-only", categories=("tools",))
        harness = Harness("celery", timeout_s=30)

        harness.wait(
            worker.output,
            lambda log: "no worker consumes hidesync.events.conformance" in log,
            "the warning about the conformance category",
        )


def _tokens_queued(messages: list[str]) -> list[str]:
    """The tokens of the Ping events in queued Celery messages, in queue order."""
    tokens = []
    for message in messages:
        [envelope], _, _ = json.loads(base64.b64decode(json.loads(message)["body"]))
        event = decode(envelope, max_bytes=2**20).event
        assert isinstance(event, c.Ping)
        tokens.append(event.token)
    return tokens
