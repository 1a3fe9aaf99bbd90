"""Performance against raw Celery, Dramatiq, blinker, pyee and a dict bus, in one run.

    python -m bench performance               # every scenario, 3 repetitions
    python -m bench performance --quick       # smaller sizes, 2 repetitions
    python -m bench performance --rss-events 1000000
    python -m bench performance --amqp-url amqp://guest:guest@127.0.0.1:5672//

Starts its own ``redis-server`` on loopback and its own worker processes, runs each
scenario for hidesync-events and its baseline alternately, and prints one table of
medians with the min-max spread and the ratio against the target. The single-event
scenarios run on RabbitMQ too, at ``--amqp-url`` (loopback by default), when one
answers there (see :mod:`bench.amqp`).

Exits 0 when every target is met and 1 otherwise, so a script can tell; some targets
are out of reach by design (docs/performance.md says which and why).
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console

from bench import amqp, inprocess, queues
from bench.results import machine, render
from tests.support.rabbitmq import RABBITMQ_URL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench performance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 2 runs")
    parser.add_argument("--runs", type=int, help="repetitions per side")
    parser.add_argument(
        "--rss-events",
        type=int,
        help="events for the worker memory test (default 200k)",
    )
    parser.add_argument(
        "--amqp-url",
        default=RABBITMQ_URL,
        help="the RabbitMQ for the single-event scenarios on AMQP (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 3)

    console = Console(width=130)
    console.print(f"machine: {machine()}")
    started = time.monotonic()
    results = inprocess.run(runs, quick=args.quick)
    broker_results, extra = queues.run(
        runs, quick=args.quick, rss_events=args.rss_events
    )
    results += broker_results
    problem = amqp.unavailable(args.amqp_url)
    if problem is None:
        results += amqp.run(runs, quick=args.quick, url=args.amqp_url)
    console.print(render(results, extra))
    if problem is not None:
        console.print(f"RabbitMQ scenarios left out: {problem}")
    console.print(f"{len(results)} scenarios in {time.monotonic() - started:.0f} s")
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
