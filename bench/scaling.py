"""From measured figures to a fleet: how many workers and Redis instances a rate needs.

    python -m bench scaling [--per-process-single 688] [--per-process-idempotent 836]
                            [--per-process-batched 33098]

The model: events arrive with the recorded workshop day's category mix; a worker
process handles a measured number of events per second (one event per message, with
handlers recorded once per event or declared idempotent, or batches; the defaults are
``python -m bench performance`` and ``growth`` figures on a 2-core machine that also
ran the publisher and Redis, so they are low); every message costs the broker a fixed
number of Redis commands, and every (event, handler) pair of a handler that is not
idempotent a share of the claim script and the settle transaction.

The Redis side is measured here, on a throwaway ``redis-server``: the commands per
second ``redis-benchmark`` reaches, and the (event, handler) pairs per second the
claim-and-settle steps of batches of 500 events reach with the reference handlers.
It prints, for 10,000 and 100,000 events per second, the worker processes per
category, the Redis load, and which limit is reached first.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.table import Table

from bench.queues import redis_benchmark
from hidesync_events import global_event_bus
from hidesync_events.completions import CompletionLog, Settlement
from hidesync_events.event import event_type_named, new_event_id
from hidesync_events.keyvalue.in_redis import RedisKeyValue
from hidesync_events.recorded import recorded_workshop_day
from hidesync_events.redis_server import ThrowawayRedis
from hidesync_events.settings import Settings
from hidesync_events.worker import import_handler_modules

#: Redis commands one message costs the broker: LPUSH, BRPOP, the unacked bookkeeping
#: at delivery and at the ack (kombu's Redis transport).
COMMANDS_PER_MESSAGE = 6
BATCH = 500


@dataclass(frozen=True)
class Workload:
    """The recorded day's category mix and reference handlers per event."""

    mix: dict[str, float]
    handlers_per_event: float
    handler_names: dict[str, list[str]]


#: How events travel: one per message or in batches; recorded once per event and
#: handler, or handled by handlers declared idempotent (no claims, no records).
SHAPES = {
    "single": "one per message",
    "idempotent": "one per message, idempotent handlers",
    "batched": "batches of 500",
}


@dataclass(frozen=True)
class Capacity:
    per_process: dict[str, float]
    redis_commands: float
    redis_pairs: float


def recorded_workload() -> Workload:
    import_handler_modules(Settings())
    registry = global_event_bus.registry

    types = [
        event_type_named(json.loads(line)["type"])
        for line in recorded_workshop_day().read_text().splitlines()
    ]
    categories = Counter(event_type.__event_meta__.category for event_type in types)
    names = {
        event_type.__event_meta__.name: [
            subscription.name for subscription in registry.handlers_for(event_type)
        ]
        for event_type in set(types)
    }
    pairs = sum(len(names[event_type.__event_meta__.name]) for event_type in types)
    return Workload(
        mix={category: n / len(types) for category, n in categories.most_common()},
        handlers_per_event=pairs / len(types),
        handler_names=names,
    )


def measure_pairs_per_second(url: str, workload: Workload, seconds: float) -> float:
    """Pairs per second of Redis CPU, claiming and settling batches of 500 events.

    Divided by the server's own CPU time (``INFO cpu``), not by wall time: one client
    leaves Redis idle between its round trips, and a fleet would not.
    """
    client = redis.Redis.from_url(url, decode_responses=True)
    log = CompletionLog(RedisKeyValue(client), key_prefix="bench", retention_s=600)
    handler_lists = list(workload.handler_names.values())

    pairs_done = 0
    cpu_before = _redis_cpu_s(client)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pairs = [
            (new_event_id(), name)
            for i in range(BATCH)
            for name in handler_lists[i % len(handler_lists)]
        ]
        log.claim_many(pairs, owner="bench", ttl_s=60)
        log.settle(Settlement(completed=[(pair, None) for pair in pairs]))
        pairs_done += len(pairs)
    return pairs_done / (_redis_cpu_s(client) - cpu_before)


def _redis_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def plan(
    rate: float, shape: str, workload: Workload, capacity: Capacity
) -> tuple[Table, str]:
    per_process = capacity.per_process[shape]
    table = Table(title=f"{rate:,.0f} events/s, {SHAPES[shape]}", title_justify="left")
    for column in ("category", "events/s", "worker processes"):
        table.add_column(column, justify="right")

    processes = 0
    for category, share in workload.mix.items():
        needed = max(1, math.ceil(rate * share / per_process))
        processes += needed
        table.add_row(category, f"{rate * share:,.0f}", str(needed))
    table.add_row("total", f"{rate:,.0f}", str(processes))

    # One claim script call and one settle transaction per message, however many
    # events it carries, are part of the pair cost measured on batches; single
    # messages pay two more commands each, unless no handler keeps records.
    batched = shape == "batched"
    recorded = shape != "idempotent"
    messages = rate / (BATCH if batched else 1)
    extra = 2 if recorded and not batched else 0
    commands = messages * (COMMANDS_PER_MESSAGE + extra)
    pairs = rate * workload.handlers_per_event if recorded else 0.0
    redis_load = commands / capacity.redis_commands + pairs / capacity.redis_pairs
    instances = math.ceil(redis_load)
    first = "Redis" if instances > 1 else "worker CPU"
    verdict = (
        f"{processes} worker processes; Redis at {redis_load:.0%} of one instance "
        f"({commands:,.0f} commands/s, {pairs:,.0f} claimed and settled pairs/s) -> "
        f"{instances} Redis instance(s); first limit: {first}"
    )
    return table, verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--per-process-single",
        type=float,
        default=688.0,
        help="events/s one worker process handles, one event per message, recorded "
        "once per event (default: %(default)s)",
    )
    parser.add_argument(
        "--per-process-idempotent",
        type=float,
        default=836.0,
        help="the same with handlers declared idempotent (default: %(default)s)",
    )
    parser.add_argument(
        "--per-process-batched",
        type=float,
        default=33098.0,
        help="events/s one worker process handles in batches of 500 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="how long to measure Redis's claim-and-settle rate (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    console = Console(width=100)
    workload = recorded_workload()
    with ThrowawayRedis() as server:
        commands = redis_benchmark(server.port, pipeline=1)
        pairs = measure_pairs_per_second(server.url, workload, args.seconds)
    per_process = {
        "single": args.per_process_single,
        "idempotent": args.per_process_idempotent,
        "batched": args.per_process_batched,
    }
    capacity = Capacity(per_process, commands, pairs)
    console.print(
        f"measured: {workload.handlers_per_event:.2f} reference handlers per event; "
        f"one Redis: {commands:,.0f} LPUSH/s (redis-benchmark, no pipelining), "
        f"{pairs:,.0f} (event, handler) pairs claimed and settled per Redis CPU "
        f"second, in batches of {BATCH}\n"
    )

    for rate in (10_000, 100_000):
        for shape in SHAPES:
            table, verdict = plan(rate, shape, workload, capacity)
            console.print(table)
            console.print(verdict + "\n")
    return 0
