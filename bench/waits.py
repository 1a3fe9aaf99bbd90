"""Where the default single-event path waits: the claim and the settle round trips,
timed inside the worker processes while events flow end to end.

``python -m bench waits [--events N]`` starts its own redis-server and a worker of two
prefork processes, publishes N events of one event per message (handlers recorded
once per event), and prints, per worker process, how many messages it ran and how
long its claims and settles took, with the end-to-end rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.queues import Lab, e2e_ours


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench waits")
    parser.add_argument("--events", type=int, default=6000)
    events = parser.parse_args(argv).events

    rounds = Path(tempfile.mkdtemp(prefix="bench-rounds-"))
    lab = Lab(
        handler_modules=("bench.perf_handlers", "bench.timed_rounds"),
        worker_env={"BENCH_ROUNDS_DIR": str(rounds)},
        baseline=False,
    )
    with lab:
        rate = e2e_ours(lab, events)
    # Read once the lab is closed: a warm shutdown makes each process write its own.
    Console().print(_table(rounds, events, rate))
    return 0


def _table(rounds: Path, events: int, rate: float) -> Table:
    table = Table(
        title=f"Round trips inside the workers: {events:,} events, {rate:,.0f} events/s "
        "end to end (medians and means, in us)",
        title_justify="left",
    )
    for column in ("process", "messages", "claim p50", "claim mean", "settle p50",
                   "settle mean"):  # fmt: skip
        table.add_column(column, justify="right")

    for path in sorted(rounds.glob("*.json")):
        timed = json.loads(path.read_text())
        claims, settles = timed["claim"], timed["settle"]
        table.add_row(
            path.stem,
            f"{len(claims):,}",
            f"{statistics.median(claims) * 1e6:.0f}",
            f"{statistics.fmean(claims) * 1e6:.0f}",
            f"{statistics.median(settles) * 1e6:.0f}",
            f"{statistics.fmean(settles) * 1e6:.0f}",
        )
    return table
