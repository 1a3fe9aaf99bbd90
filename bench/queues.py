"""Broker scenarios: publishing, end to end, latency, memory, against raw Celery and
Dramatiq on one throwaway Redis, with real worker processes on both sides.

Every side publishes a payload of the same size: the raw Celery task and the Dramatiq
actor take one string as long as a hidesync-events envelope. Workers on both sides run
two prefork processes with the same settings (JSON, late acks, prefetch 1).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import redis

from bench.baselines import LATENCY_KEY as CELERY_LATENCY_KEY
from bench.baselines import point_at, trivial
from bench.perf_handlers import LATENCY_KEY as OUR_LATENCY_KEY
from bench.perf_handlers import (
    Benchmarked,
    BenchmarkedIdempotent,
    BenchmarkedIdle,
    BenchmarkPayload,
)
from bench.results import (
    Result,
    alternate,
    latency_p99,
    publish_rate,
    single_event_rate,
)
from hidesync_events import configure, global_event_bus
from hidesync_events.codec import encode
from hidesync_events.redis_server import ThrowawayRedis
from tests.support.fleet import WorkerFleet

ROOT = Path(__file__).resolve().parents[1]
OUR_QUEUE, OUR_IDLE = "hidesync.events.bench", "hidesync.events.bench_idle"
CELERY_QUEUE, CELERY_IDLE = "bench.celery", "bench.idle"
PAYLOAD = "leather " * 25  # a realistic free-text field


class BrokerLab(Protocol):
    """What the publishing, end-to-end and latency scenarios need of a lab, whichever
    broker it runs: the queues of each side, the raw task, a state-store Redis for
    the latency samples, and how to empty or wait for a queue."""

    client: redis.Redis
    ours: str
    ours_idle: str
    raw: str
    raw_idle: str

    @property
    def trivial(self) -> Any: ...
    def purge(self, queue: str) -> None: ...
    def wait_drained(self, queue: str, timeout_s: float = 300) -> None: ...


class Lab:
    """One Redis, our worker and a raw Celery worker, both idle until fed.

    ``handler_modules`` and ``worker_env`` go to our worker (``bench waits`` adds a
    module that times its round trips); ``baseline=False`` starts no Celery worker.
    """

    #: Each side's queue of handled messages, and of messages nobody consumes.
    ours, ours_idle = OUR_QUEUE, OUR_IDLE
    raw, raw_idle = CELERY_QUEUE, CELERY_IDLE

    def __init__(
        self,
        *,
        handler_modules: tuple[str, ...] = ("bench.perf_handlers",),
        worker_env: dict[str, str] | None = None,
        baseline: bool = True,
    ) -> None:
        self.redis = ThrowawayRedis()
        self.client: redis.Redis
        self.fleet: WorkerFleet
        self.celery_worker: subprocess.Popen[bytes] | None = None
        self._handler_modules = handler_modules
        self._worker_env = worker_env or {}
        self._baseline = baseline

    def __enter__(self) -> Lab:
        self.redis.start()
        self.client = self.redis.client()
        os.environ["BENCH_BROKER_URL"] = self.redis.url
        point_at(self.redis.url)
        configure(mode="celery", broker_url=self.redis.url, handler_modules=())
        self.fleet = WorkerFleet(self.redis.url)
        self.fleet.start(
            "ours",
            categories=("bench",),
            handler_modules=self._handler_modules,
            concurrency=2,
            env={"HIDESYNC_EVENTS_SLOW_HANDLER_S": "60", **self._worker_env},
            loglevel="WARNING",
        )
        if not self._baseline:
            return self

        self.celery_worker = start_process(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.baselines:celery_app",
                "worker",
                "-Q",
                CELERY_QUEUE,
                "-c",
                "2",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
        time.sleep(3)  # let the raw worker connect
        return self

    def __exit__(self, *exc: object) -> None:
        self.fleet.stop()
        stop_process(self.celery_worker)
        global_event_bus.close()
        self.redis.close()

    @property
    def trivial(self) -> Any:
        """The raw Celery task, on this lab's Redis."""
        return trivial

    def purge(self, queue: str) -> None:
        self.client.delete(queue)

    def drained(self, queue: str) -> bool:
        # A message is gone once acknowledged: not queued, not held unacknowledged.
        return self.client.llen(queue) == 0 and self.client.hlen("unacked") == 0

    def wait_drained(self, queue: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.drained(queue):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue} not drained within {timeout_s}s")
            time.sleep(0.01)


def start_process(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def raw_payload() -> str:
    # The raw task carries a string as long as our envelope: the same JSON size.
    return "x" * len(encode(Benchmarked(payload=PAYLOAD), max_bytes=2**20))


# -- publishing ----------------------------------------------------------------------------


def publish_ours(lab: BrokerLab, count: int) -> float:
    events = [BenchmarkedIdle(payload=PAYLOAD) for _ in range(count)]
    started = time.perf_counter()
    for event in events:
        global_event_bus.publish(event)
    rate = count / (time.perf_counter() - started)
    lab.purge(lab.ours_idle)
    return rate


def publish_many_ours(lab: BrokerLab, count: int) -> float:
    events = [BenchmarkedIdle(payload=PAYLOAD) for _ in range(count)]
    started = time.perf_counter()
    global_event_bus.publish_many(events)
    rate = count / (time.perf_counter() - started)
    lab.purge(lab.ours_idle)
    return rate


def publish_celery(lab: BrokerLab, count: int) -> float:
    task, payload = lab.trivial, raw_payload()
    started = time.perf_counter()
    for _ in range(count):
        task.apply_async(args=[payload], queue=lab.raw_idle)
    rate = count / (time.perf_counter() - started)
    lab.purge(lab.raw_idle)
    return rate


# -- end to end ----------------------------------------------------------------------------


def e2e_ours(
    lab: BrokerLab, count: int, event_type: type[BenchmarkPayload] = Benchmarked
) -> float:
    events = [event_type(payload=PAYLOAD) for _ in range(count)]
    started = time.perf_counter()
    for event in events:
        global_event_bus.publish(event)
    lab.wait_drained(lab.ours)
    return count / (time.perf_counter() - started)


def e2e_batches_ours(lab: Lab, count: int) -> float:
    events = [Benchmarked(payload=PAYLOAD) for _ in range(count)]
    started = time.perf_counter()
    for chunk in range(0, count, 500):
        global_event_bus.publish_many(events[chunk : chunk + 500])
    lab.wait_drained(OUR_QUEUE)
    return count / (time.perf_counter() - started)


def e2e_celery(lab: BrokerLab, count: int) -> float:
    task, payload = lab.trivial, raw_payload()
    started = time.perf_counter()
    for _ in range(count):
        task.apply_async(args=[payload], queue=lab.raw)
    lab.wait_drained(lab.raw)
    return count / (time.perf_counter() - started)


def latency_p99_ours(
    lab: BrokerLab,
    count: int,
    rate: float,
    event_type: type[BenchmarkPayload] = Benchmarked,
) -> float:
    lab.client.delete(OUR_LATENCY_KEY)
    paced(
        count,
        rate,
        lambda: global_event_bus.publish(
            event_type(payload=PAYLOAD, sent_at=time.time())
        ),
    )
    lab.wait_drained(lab.ours)
    return p99(_samples(lab, OUR_LATENCY_KEY, count))


def latency_p99_celery(lab: BrokerLab, count: int, rate: float) -> float:
    lab.client.delete(CELERY_LATENCY_KEY)
    task, payload = lab.trivial, raw_payload()
    paced(
        count,
        rate,
        lambda: task.apply_async(args=[payload, time.time()], queue=lab.raw),
    )
    lab.wait_drained(lab.raw)
    return p99(_samples(lab, CELERY_LATENCY_KEY, count))


def _samples(lab: BrokerLab, key: str, count: int, timeout_s: float = 60) -> list[Any]:
    # Every handled message adds its sample; a drained queue may still have the
    # last few in hand (a broker that counts only waiting messages).
    deadline = time.monotonic() + timeout_s
    while lab.client.llen(key) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: not every message was handled in {timeout_s}s")
        time.sleep(0.01)
    return lab.client.lrange(key, 0, -1)


def paced(count: int, rate: float, send: Callable[[], object]) -> None:
    start = time.monotonic()
    for n in range(count):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        send()


def p99(values: list[Any]) -> float:
    ordered = sorted(float(v) for v in values)
    return (
        ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        if ordered
        else 0.0
    )


# -- Dramatiq ---------------------------------------------------------------------------------


@contextmanager
def dramatiq_workers(processes: int, threads: int) -> Iterator[None]:
    worker = start_process(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.baselines",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--queues",
            "bench_dramatiq",
        ]
    )
    time.sleep(4)  # let every process connect
    try:
        yield
    finally:
        stop_process(worker)


def e2e_dramatiq(lab: Lab, count: int) -> float:
    from bench.baselines import dramatiq_trivial

    payload = raw_payload()
    started = time.perf_counter()
    for _ in range(count):
        dramatiq_trivial.send(payload)
    deadline = time.monotonic() + 300
    while lab.client.hlen("dramatiq:bench_dramatiq.msgs") or lab.client.llen(
        "dramatiq:bench_dramatiq"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("dramatiq did not drain")
        time.sleep(0.01)
    return count / (time.perf_counter() - started)


def best_dramatiq(lab: Lab, count: int, runs: int) -> tuple[list[float], str]:
    """Dramatiq's best configuration among a few, as a list of runs of the best."""
    best: tuple[float, list[float], str] = (0.0, [], "")
    for processes, threads in ((2, 8), (2, 1), (1, 8)):
        with dramatiq_workers(processes, threads):
            rates = [e2e_dramatiq(lab, count) for _ in range(runs)]
        if statistics.median(rates) > best[0]:
            best = (
                statistics.median(rates),
                rates,
                f"Dramatiq {processes}p x {threads}t",
            )
    return best[1], best[2]


# -- memory ----------------------------------------------------------------------------------


def bytes_per_queued(
    lab: Lab, queue: str, count: int, publish: Callable[[int], None]
) -> float:
    lab.client.delete(queue)
    publish(count)
    used = int(lab.client.memory_usage(queue, samples=0) or 0)
    lab.client.delete(queue)
    return used / count


def worker_rss(lab: Lab, events: int) -> tuple[float, float, float]:
    """RSS of our worker's pool processes (MiB, summed) after 10% of ``events`` and
    at the end, and the peak."""
    children = child_pids(lab.fleet.workers[0].process.pid)
    samples = []
    sent = 0
    chunk = 5000
    while sent < events:
        global_event_bus.publish_many(
            [Benchmarked(payload=PAYLOAD) for _ in range(chunk)]
        )
        sent += chunk
        lab.wait_drained(OUR_QUEUE)
        samples.append(sum(_rss_mib(pid) for pid in children))
    warm = samples[max(0, len(samples) // 10 - 1)]
    return warm, samples[-1], max(samples)


def child_pids(pid: int) -> list[int]:
    output = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(line) for line in output.split()]


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def redis_benchmark(port: int, pipeline: int) -> float:
    output = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-t",
            "lpush",
            "-n",
            "200000",
            "-q",
            "-P",
            str(pipeline),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    # Progress lines end in \r; the last line reads "LPUSH: 123456.79 requests per
    # second, p50=...".
    final = output.replace("\r", "\n").strip().splitlines()[-1]
    return float(final.split("LPUSH:")[1].split("requests")[0])


# -- the scenarios -----------------------------------------------------------------------------


def run(
    runs: int, *, quick: bool, rss_events: int | None
) -> tuple[list[Result], list[tuple[str, str]]]:
    small, large = (500, 5000) if quick else (2000, 20000)
    results = []
    with Lab() as lab:
        ours, theirs = alternate(
            runs, lambda: publish_ours(lab, small), lambda: publish_celery(lab, small)
        )
        results.append(publish_rate("publish, one event per call", ours, theirs))
        ours, theirs = alternate(
            runs,
            lambda: publish_many_ours(lab, large),
            lambda: publish_celery(lab, small),
        )
        results.append(
            Result(
                "publish_many (batches per category)",
                ours,
                theirs,
                "events/s",
                ">= 10x apply_async",
                "higher",
                10.0,
                "Celery apply_async",
            )
        )
        for event_type, handled in SINGLE_EVENT_KINDS:
            results += single_event_results(lab, runs, small, event_type, handled)
        ours = [e2e_batches_ours(lab, large) for _ in range(runs)]
        theirs, config = best_dramatiq(lab, small, runs)
        results.append(
            Result(
                "end to end with batches",
                ours,
                theirs,
                "events/s",
                ">= 3x Dramatiq's best",
                "higher",
                3.0,
                config,
            )
        )
        results += _memory(lab, runs, small)
        extra = _extras(lab, rss_events or (20000 if quick else 200000))
    return results, extra


#: The two ways a single-event message is handled, each measured on its own.
SINGLE_EVENT_KINDS: list[tuple[type[BenchmarkPayload], str]] = [
    (Benchmarked, "once per event"),
    (BenchmarkedIdempotent, "idempotent handler"),
]


def single_event_results(
    lab: BrokerLab,
    runs: int,
    count: int,
    event_type: type[BenchmarkPayload],
    handled: str,
    *,
    broker: str = "",
) -> list[Result]:
    """Throughput and latency, one event per message, against a raw Celery task;
    ``broker`` names a broker other than Redis in the rows."""
    named = f"{broker}: " if broker else ""
    throughput = alternate(
        runs,
        lambda: e2e_ours(lab, count, event_type),
        lambda: e2e_celery(lab, count),
    )
    latency = alternate(
        runs,
        lambda: latency_p99_ours(lab, count // 2, 200, event_type),
        lambda: latency_p99_celery(lab, count // 2, 200),
    )
    return [
        single_event_rate(
            f"{named}end to end, one event per message ({handled}), 2 processes",
            *throughput,
        ),
        latency_p99(
            f"{named}end-to-end latency p99 at 200 events/s ({handled})", *latency
        ),
    ]


def _memory(lab: Lab, runs: int, count: int) -> list[Result]:
    task, payload = lab.trivial, raw_payload()

    def ours_single(n: int) -> None:
        for _ in range(n):
            global_event_bus.publish(BenchmarkedIdle(payload=PAYLOAD))

    def ours_batched(n: int) -> None:
        global_event_bus.publish_many(
            [BenchmarkedIdle(payload=PAYLOAD) for _ in range(n)]
        )

    def celery(n: int) -> None:
        for _ in range(n):
            task.apply_async(args=[payload], queue=CELERY_IDLE)

    single, theirs = alternate(
        runs,
        lambda: bytes_per_queued(lab, OUR_IDLE, count, ours_single),
        lambda: bytes_per_queued(lab, CELERY_IDLE, count, celery),
    )
    batched = [
        bytes_per_queued(lab, OUR_IDLE, count, ours_batched) for _ in range(runs)
    ]
    return [
        Result(
            "Redis bytes per queued event",
            single,
            theirs,
            "B",
            "<= Celery's per task",
            "lower",
            1.0,
            "Celery task",
        ),
        Result(
            "Redis bytes per queued event, batched",
            batched,
            theirs,
            "B",
            "<= 1/3 of Celery's per task",
            "lower",
            1 / 3,
            "Celery task",
        ),
    ]


def _extras(lab: Lab, rss_events: int) -> list[tuple[str, str]]:
    warm, end, peak = worker_rss(lab, rss_events)
    growth = (end - warm) / warm * 100 if warm else 0.0
    return [
        (
            f"worker RSS over {rss_events:,} events (2 processes)",
            f"{warm:.1f} MiB at 10%, {end:.1f} MiB at the end, peak {peak:.1f} ({growth:+.1f}%)",
        ),
        (
            "redis-benchmark LPUSH, one by one",
            f"{redis_benchmark(lab.redis.port, 1):,.0f} /s",
        ),
        (
            "redis-benchmark LPUSH, pipelined 16",
            f"{redis_benchmark(lab.redis.port, 16):,.0f} /s",
        ),
    ]
