"""Where the default single-event path waits: the claim and the settle round trips,
timed inside the worker processes while events flow end to end.

``python -m bench waits [--events N]`` starts its own redis-server and a worker of two
prefork processes, publishes N events of one event per message (handlers recorded
once per event), and prints, per worker process, how many messages it ran and how
long its claims and settles took, with the end-to-end rate; then the CPU each process
spent per message, and how busy that kept the machine's CPUs. Waits much longer than
the CPU behind them, on CPUs not all busy, mean the path is bounded by latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.queues import Lab, child_pids, e2e_ours

#: Clock ticks per second, the unit of a process's CPU times in /proc.
_TICKS = os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench waits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events",
        type=int,
        default=6000,
        help="events to publish, one per message (default: %(default)s)",
    )
    events = parser.parse_args(argv).events

    rounds = Path(tempfile.mkdtemp(prefix="bench-rounds-"))
    lab = Lab(
        handler_modules=("bench.perf_handlers", "bench.timed_rounds"),
        worker_env={"BENCH_ROUNDS_DIR": str(rounds)},
        baseline=False,
    )
    with lab:
        redis_pid = lab.redis.pid
        main_pid = lab.fleet.workers[0].process.pid
        assert redis_pid is not None
        groups = {
            "publishing process": [os.getpid()],
            "Redis": [redis_pid],
            "worker main process": [main_pid],
            "worker pool processes": child_pids(main_pid),
        }
        before = _cpu_s(groups)
        rate = e2e_ours(lab, events)
        spent = {name: _cpu_s(groups)[name] - s for name, s in before.items()}

    console = Console()
    # Read once the lab is closed: a warm shutdown makes each process write its own.
    console.print(_table(rounds, events, rate))
    console.print(_cpu_table(spent, events, rate))
    return 0


def _cpu_s(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user and system) each group of processes has used so far."""
    return {name: sum(map(_process_cpu_s, pids)) for name, pids in groups.items()}


def _process_cpu_s(pid: int) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat (all the process's threads), counted after
    # the command name; this process reads its own the same way.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _cpu_table(spent: dict[str, float], events: int, rate: float) -> Table:
    wall_s = events / rate
    cpus = os.cpu_count() or 1
    table = Table(
        title=f"CPU per message, and how busy the {cpus} CPUs were",
        title_justify="left",
    )
    for column in ("processes", "CPU per message (us)", "share of the CPUs"):
        table.add_column(column, justify="right")

    for name, cpu_s in [*spent.items(), ("all", sum(spent.values()))]:
        table.add_row(
            name, f"{cpu_s / events * 1e6:.0f}", f"{cpu_s / wall_s / cpus:.0%}"
        )
    return table


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
