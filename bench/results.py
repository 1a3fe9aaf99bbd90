"""What a benchmark scenario measured, and the table that shows it."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table


@dataclass
class Result:
    """One scenario: hidesync-events against its baseline, several runs each."""

    scenario: str
    ours: list[float]
    theirs: list[float]
    unit: str
    target: str
    #: ``"higher"`` when more is better (a rate), ``"lower"`` for costs.
    better: str
    #: The ratio ours/theirs must reach (higher) or stay under (lower).
    bar: float
    baseline: str

    @property
    def ratio(self) -> float:
        ours, theirs = statistics.median(self.ours), statistics.median(self.theirs)
        return ours / theirs if theirs else float("inf")

    @property
    def has_target(self) -> bool:
        """False for rows shown for reading only (a bar of infinity)."""
        return math.isfinite(self.bar)

    @property
    def met(self) -> bool:
        """Whether the ratio reaches the target; a row without one always does."""
        if not self.has_target:
            return True

        return (
            self.ratio >= self.bar
            if self.better == "higher"
            else self.ratio <= self.bar
        )


def publish_rate(scenario: str, ours: list[float], theirs: list[float]) -> Result:
    """Events published per second against Celery's ``apply_async``: at least 0.9x."""
    return Result(
        scenario, ours, theirs, "/s", ">= 0.9x apply_async", "higher", 0.9,
        "Celery apply_async",
    )  # fmt: skip


def single_event_rate(scenario: str, ours: list[float], theirs: list[float]) -> Result:
    """Events handled per second, one per message, against a trivial Celery task."""
    return Result(
        scenario, ours, theirs, "events/s", ">= 0.9x Celery", "higher", 0.9,
        "Celery task",
    )  # fmt: skip


def latency_p99(scenario: str, ours: list[float], theirs: list[float]) -> Result:
    """End-to-end latency p99 against a trivial Celery task's: at most 1.2x."""
    return Result(
        scenario, ours, theirs, "ms", "<= 1.2x Celery", "lower", 1.2, "Celery task"
    )


def alternate(
    runs: int, ours: Callable[[], float], theirs: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Run both sides ``runs`` times, alternating, so drift hits both alike."""
    mine: list[float] = []
    other: list[float] = []
    for _ in range(runs):
        mine.append(ours())
        other.append(theirs())
    return mine, other


def render(results: list[Result], extra: list[tuple[str, str]]) -> Table:
    table = Table(
        title="hidesync-events performance (medians; min-max)", title_justify="left"
    )
    for column in ("scenario", "hidesync-events", "baseline", "ratio", "target", ""):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(
            r.scenario,
            _spread(r.ours, r.unit),
            f"{r.baseline}: {_spread(r.theirs, r.unit)}",
            f"{r.ratio:.2f}x",
            r.target,
            _verdict(r),
        )
    for name, value in extra:
        table.add_row(name, value, "", "", "", "")
    return table


def _verdict(result: Result) -> str:
    if not result.has_target:
        return ""

    return "met" if result.met else "NOT MET"


def _spread(values: list[float], unit: str) -> str:
    median = statistics.median(values)
    return f"{_fmt(median)} {unit} ({_fmt(min(values))}-{_fmt(max(values))})"


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if "model name" in line
            )
    except (OSError, StopIteration):
        pass
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    return (
        f"{os.cpu_count()} cpu ({cpu}), Python {platform.python_version()}, "
        f"Linux {platform.release()}, redis-server {redis_version}"
    )
