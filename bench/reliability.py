"""Reliability figures: what is lost, duplicated or crashed under faults.

    python -m bench reliability            # the full sizes (a few minutes)
    python -m bench reliability --quick    # smaller sizes, shorter outages

Starts its own ``redis-server`` on loopback (with an append-only file, as production
Redis runs) and real ``celery worker`` processes, runs each scenario and prints one
table. The bar for every row: nothing lost, no duplicate effect, no worker crash.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection
from rich.console import Console
from rich.table import Table

from bench import handlers
from hidesync_events import configure, global_event_bus, queue_name
from hidesync_events.celery_app import DELIVER_TASK
from hidesync_events.codec import decode, encode
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.transports import CeleryTransport
from tests.support.fleet import WorkerFleet
from tests.support.proxy import FaultyProxy

QUEUE = queue_name("bench", "hidesync.events")
WORKER_ENV = {
    "HIDESYNC_EVENTS_HANDLER_TIME_LIMIT_S": "5",
    "HIDESYNC_EVENTS_VISIBILITY_TIMEOUT_S": "30",
    "HIDESYNC_EVENTS_MAX_ENVELOPE_BYTES": "65536",
}


@dataclass
class Row:
    scenario: str
    figures: dict[str, Any]
    lost: int = 0
    duplicates: int = 0
    crashes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.crashes == 0
            and not self.notes
        )


class Lab:
    """A persistent throwaway Redis, a proxy in front of it, and worker processes."""

    def __init__(self) -> None:
        self.redis = ThrowawayRedis(
            extra_args=("--appendonly", "yes", "--appendfsync", "always")
        )
        self.proxy: FaultyProxy | None = None
        self.fleet: WorkerFleet | None = None
        self.spool_dir = tempfile.mkdtemp(prefix="bench-spool-")

    def __enter__(self) -> Lab:
        self.redis.start()
        self.proxy = FaultyProxy(self.redis.port)
        os.environ["HIDESYNC_EVENTS_SPOOL_DIR"] = self.spool_dir
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_workers()
        if self.proxy is not None:
            self.proxy.close()
        self.redis.close()

    @contextmanager
    def scenario(
        self, *, workers: int = 2, through_proxy: bool = False
    ) -> Iterator[None]:
        """A clean Redis, ``workers`` worker processes, and this process publishing."""
        self.redis.client().flushall()
        assert self.proxy is not None
        self.proxy.mode = "pass"
        broker = self.proxy.url if through_proxy else self.redis.url
        configure(
            mode="celery",
            broker_url=broker,
            state_url=self.redis.url,
            handler_modules=(),
        )
        self.fleet = WorkerFleet(self.redis.url)
        for index in range(workers):
            self.fleet.start(
                f"bench{index}", categories=("bench",), handler_modules=("bench.handlers",),
                env=WORKER_ENV,
            )  # fmt: skip
        try:
            yield
        finally:
            self.stop_workers()
            global_event_bus.close()

    def stop_workers(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()

    def crashes(self) -> int:
        """Worker processes that died during the scenario, read from the workers' logs."""
        assert self.fleet is not None
        return self.fleet.logs().count("exited with 'signal")


# -- measuring ----------------------------------------------------------------------------


def effects() -> dict[str, int]:
    return {k: int(v) for k, v in _state().hgetall(handlers.EFFECTS).items()}


def latencies_ms() -> list[float]:
    return [float(v) for v in _state().hgetall(handlers.LATENCY_MS).values()]


def _state() -> Any:
    return global_event_bus.runtime.kv


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def publish_at(
    rate: float, count: int, make: Callable[[int], Any]
) -> list[tuple[str, float, str]]:
    """Publish ``count`` events at ``rate`` per second; return (event id, seconds, status)."""
    results: list[tuple[str, float, str]] = []
    start = time.monotonic()
    for n in range(count):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        event = make(n)
        began = time.monotonic()
        receipt = global_event_bus.publish(event)
        results.append((event.event_id, time.monotonic() - began, receipt.status))
    return results


def settle(published: list[str], timeout_s: float) -> tuple[int, int]:
    """Wait for the published events to be handled; return (lost, duplicate effects)."""
    wanted = set(published)
    wait_until(lambda: wanted <= effects().keys(), timeout_s)
    seen = effects()
    lost = len(wanted - seen.keys())
    duplicates = sum(count - 1 for count in seen.values() if count > 1)
    return lost, duplicates


# -- scenarios ------------------------------------------------------------------------------


def steady_load(lab: Lab, events: int, rate: float) -> Row:
    with lab.scenario():
        sent = publish_at(rate, events, lambda n: handlers.Work(sequence=n))
        lost, duplicates = settle([s[0] for s in sent], timeout_s=120)
        latency = latencies_ms()
        row = Row(
            f"steady load, {rate:g} events/s",
            {
                "published": len(sent),
                "handled": len(sent) - lost,
                "e2e p50": f"{percentile(latency, 0.5):.1f} ms",
                "e2e p99": f"{percentile(latency, 0.99):.1f} ms",
            },
            lost=lost,
            duplicates=duplicates,
            crashes=lab.crashes(),
        )
    return row


def broker_outage(lab: Lab, kind: str, outage_s: float, rate: float) -> Row:
    with lab.scenario(through_proxy=kind == "black-holed"):
        transport = global_event_bus.transport
        assert isinstance(transport, CeleryTransport)
        before_s, after_s = 2.0, 2.0
        total = round((before_s + outage_s + after_s) * rate)
        outage_from, outage_to = (
            round(before_s * rate),
            round((before_s + outage_s) * rate),
        )
        restored_at = [0.0]

        def make(n: int) -> handlers.Work:
            if n == outage_from:
                _break(lab, kind)
            if n == outage_to:
                _mend(lab, kind)
                restored_at[0] = time.monotonic()
            return handlers.Work(sequence=n)

        sent = publish_at(rate, total, make)
        drained = wait_until(lambda: transport.publisher.spooled == 0, 120)
        drain_s = time.monotonic() - restored_at[0]
        lost, duplicates = settle([s[0] for s in sent], timeout_s=180)
        row = Row(
            f"broker {kind} for {outage_s:g} s at {rate:g} events/s",
            {
                "attempted": len(sent),
                "sent": sum(1 for s in sent if s[2] == "sent"),
                "spooled": sum(1 for s in sent if s[2] == "spooled"),
                "longest publish": f"{max(s[1] for s in sent):.2f} s",
                "spool drained": f"{drain_s:.1f} s after" if drained else "not drained",
            },
            lost=lost,
            duplicates=duplicates,
            crashes=lab.crashes(),
        )
    return row


def _break(lab: Lab, kind: str) -> None:
    if kind == "stopped":
        lab.redis.stop()
    else:
        assert lab.proxy is not None
        lab.proxy.mode = "blackhole"


def _mend(lab: Lab, kind: str) -> None:
    if kind == "stopped":
        lab.redis.start()
    else:
        assert lab.proxy is not None
        lab.proxy.mode = "pass"


def worker_sigkill(lab: Lab, times: int) -> Row:
    with lab.scenario(workers=1):
        published = []
        kills = 0
        for n in range(times):
            event = handlers.Work(sequence=n, sleep_s=0.5)
            global_event_bus.publish(event)
            published.append(event.event_id)
            pid = _started_pid(event.event_id, timeout_s=30)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                kills += 1
        lost, duplicates = settle(published, timeout_s=180)
        assert lab.fleet is not None
        redelivered = lab.fleet.logs().count("delivered again after a worker was lost")
        row = Row(
            f"worker SIGKILL mid-handler x{times}",
            {
                "killed": kills,
                "redelivered": redelivered,
                "handled": len(published) - lost,
            },
            lost=lost,
            duplicates=duplicates,
            crashes=lab.crashes() - kills,  # the kills themselves are the test
        )
    return row


def _started_pid(event_id: str, timeout_s: float) -> int | None:
    # The handler writes its process id when it starts: the process to kill.
    wait_until(lambda: bool(_state().hget(handlers.STARTED, event_id)), timeout_s)
    pid = _state().hget(handlers.STARTED, event_id)
    return int(pid) if pid else None


def poison(lab: Lab, good: int) -> Row:
    with lab.scenario(workers=1):
        expected = _send_poison(lab)
        sent = [
            global_event_bus.publish(handlers.Work(sequence=n)).event_id
            for n in range(good)
        ]
        wait_until(lambda: global_event_bus.dead_letters.count() >= len(expected), 60)
        lost, duplicates = settle(sent, timeout_s=60)
        reasons = sorted(d.reason for d in global_event_bus.dead_letters.list())
        row = Row(
            f"{len(expected)} kinds of poison among {good} good events",
            {
                "dead letters": len(reasons),
                "right reasons": sum(1 for r in expected if r in reasons),
                "good handled": good - lost,
            },
            lost=lost,
            duplicates=duplicates,
            crashes=lab.crashes(),
        )
        if sorted(expected) != reasons:
            row.notes.append(f"reasons {reasons} != expected {sorted(expected)}")
    return row


def _send_poison(lab: Lab) -> list[str]:
    good = encode(handlers.Work(sequence=-1), max_bytes=2**20)
    envelopes = {
        "not JSON": ("{not json", "malformed"),
        "a JSON array": ("[1, 2, 3]", "malformed"),
        "no payload": (good.replace(',"payload":{', ',"x":{'), "malformed"),
        "envelope version 9": (
            good.replace('"envelope_version":1', '"envelope_version":9'),
            "malformed",
        ),
        "unknown type": (good.replace('"Work"', '"NoSuchEvent"'), "unknown_type"),
        "invalid payload": (
            good.replace('"sequence":-1', '"sequence":"many"'),
            "invalid_payload",
        ),
        "too large": (
            good.replace('"sequence":-1', '"sequence":-1,"x":"' + "x" * 70000 + '"'),
            "too_large",
        ),
    }
    app = global_event_bus.transport.app  # type: ignore[attr-defined]
    for body, _ in envelopes.values():
        app.send_task(DELIVER_TASK, args=[body], queue=QUEUE)

    with Connection(lab.redis.url) as connection:
        producer = connection.Producer()
        headers = {"task": DELIVER_TASK, "id": str(uuid.uuid4()), "lang": "py"}
        producer.publish(b"\x80\x04K\x01.", exchange="", routing_key=QUEUE, headers=headers,
                         content_type="application/x-python-serialize",
                         content_encoding="binary")  # fmt: skip
        producer.publish([[good], {}, {}], exchange="", routing_key=QUEUE, serializer="json",
                         headers={**headers, "task": "someone.elses.task"})  # fmt: skip
        producer.publish(b"\xff\xfe not json", exchange="", routing_key=QUEUE, headers=headers,
                         content_type="application/json", content_encoding="utf-8")  # fmt: skip
    return [reason for _, reason in envelopes.values()] + [
        "content_type",
        "malformed",
        "malformed",
    ]


def always_failing(lab: Lab) -> Row:
    with lab.scenario(workers=1):
        event = handlers.Doomed()
        started = time.monotonic()
        global_event_bus.publish(event)
        wait_until(lambda: global_event_bus.dead_letters.count() >= 1, 60)
        to_dead_letter_s = time.monotonic() - started
        times = [
            float(t)
            for t in _state().lrange(f"{handlers.ATTEMPTS}:{event.event_id}", 0, -1)
        ]
        waits = [round(b - a, 2) for a, b in itertools.pairwise(times)]
        policy = handlers.DOOMED_POLICY
        expected = [policy.delay_s(n) for n in range(1, policy.max_attempts)]
        letters = global_event_bus.dead_letters.list()
        row = Row(
            "an always-failing handler",
            {
                "attempts": len(times),
                "waits (s)": " ".join(f"{w:g}" for w in waits),
                "policy (s)": " ".join(f"{w:g}" for w in expected),
                "to dead letter": f"{to_dead_letter_s:.1f} s",
            },
            crashes=lab.crashes(),
        )
        if [policy.max_attempts] != [letter.attempts for letter in letters]:
            row.notes.append("no dead letter with the policy's attempts")
        if any(abs(w - e) > 0.25 for w, e in zip(waits, expected, strict=False)):
            row.notes.append("a wait differs from the policy by more than 0.25 s")
    return row


def duplicate_delivery(lab: Lab, events: int, copies: int) -> Row:
    with lab.scenario(workers=2):
        ids = []
        for n in range(events):
            envelope = decode(
                encode(handlers.Work(sequence=n), max_bytes=2**20), max_bytes=2**20
            )
            for _ in range(copies):
                global_event_bus.send_envelope(envelope)
            ids.append(envelope.event_id)
        lost, duplicates = settle(ids, timeout_s=120)
        per_event = effects()
        row = Row(
            f"each event delivered {copies} times",
            {
                "events": events,
                "deliveries": events * copies,
                "effects per event": "/".join(
                    sorted({str(v) for v in per_event.values()})
                ),
            },
            lost=lost,
            duplicates=duplicates,
            crashes=lab.crashes(),
        )
    return row


# -- the table --------------------------------------------------------------------------------


def run(quick: bool) -> list[Row]:
    rows = []
    outages = (2.0,) if quick else (2.0, 10.0, 30.0)
    with Lab() as lab:
        rows.append(steady_load(lab, events=500 if quick else 5000, rate=200))
        for kind in ("stopped", "black-holed"):
            for seconds in outages:
                rows.append(broker_outage(lab, kind, seconds, rate=50))
        rows.append(worker_sigkill(lab, times=5 if quick else 20))
        rows.append(poison(lab, good=50 if quick else 500))
        rows.append(always_failing(lab))
        rows.append(duplicate_delivery(lab, events=100 if quick else 1000, copies=3))
    return rows


def render(rows: list[Row]) -> Table:
    table = Table(title="hidesync-events reliability", title_justify="left")
    for column in ("scenario", "figures", "lost", "dup. effects", "crashes", "verdict"):
        table.add_column(column, overflow="fold")
    for row in rows:
        figures = "\n".join(f"{key}: {value}" for key, value in row.figures.items())
        verdict = "ok" if row.ok else "FAIL " + "; ".join(row.notes)
        table.add_row(row.scenario, figures, str(row.lost), str(row.duplicates),
                      str(row.crashes), verdict)  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, short outages"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    rows = run(args.quick)
    console = Console(width=120)
    console.print(render(rows))
    console.print(f"{len(rows)} scenarios in {time.monotonic() - started:.0f} s")
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
