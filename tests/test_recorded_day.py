"""The recorded workshop day shipped with the package: valid, consistent, reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from hidesync_events import CATALOGUE
from hidesync_events.recorded import Recorded, read_lines, recorded_workshop_day

ROOT = Path(__file__).resolve().parents[1]
ENDINGS = {"WorkflowCompletedEvent", "WorkflowCancelledEvent"}


@cache
def _lines() -> tuple[dict[str, Any], ...]:
    text = recorded_workshop_day().read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines())


def _of(*types: str) -> list[dict[str, Any]]:
    return [line["payload"] for line in _lines() if line["type"] in types]


class TestContent:
    def test_a_full_day_of_every_catalogued_type(self) -> None:
        """At least 5,000 events, all 29 catalogued types, in time order."""
        types = Counter(line["type"] for line in _lines())
        stamps = [line["payload"]["timestamp"] for line in _lines()]

        assert len(_lines()) >= 5000
        assert {cls.__name__ for cls in CATALOGUE} == set(types)
        assert sorted(stamps, key=_instant) == stamps

    def test_every_line_is_a_valid_event(self) -> None:
        """Each line reads as its event class, with its recorded id."""
        read = list(
            read_lines(
                recorded_workshop_day().read_text().splitlines(), max_bytes=2**20
            )
        )

        assert all(isinstance(item, Recorded) for item in read)
        ids = [item.envelope.event_id for item in read if isinstance(item, Recorded)]
        assert len(ids) == len(set(ids)) == len(_lines())


class TestConsistency:
    def test_every_execution_ends_once_and_nothing_follows(self) -> None:
        """Each started execution is completed or cancelled exactly once, last."""
        last_seen: dict[int, str] = {}
        endings: Counter[int] = Counter()
        for line in _lines():
            execution = line["payload"].get("execution_id")
            if execution:
                assert not endings[execution], f"{line['type']} after execution ended"
                last_seen[execution] = line["type"]
                endings[execution] += line["type"] in ENDINGS

        started = {p["execution_id"] for p in _of("WorkflowStartedEvent")}
        assert started == set(last_seen)
        assert all(endings[e] == 1 for e in started)

    def test_paused_executions_resume(self) -> None:
        """Every pause is followed by a resume of the same execution."""
        assert Counter(
            p["execution_id"] for p in _of("WorkflowPausedEvent")
        ) == Counter(p["execution_id"] for p in _of("WorkflowResumedEvent"))

    def test_steps_belong_to_their_executions(self) -> None:
        """Each step starts and completes once, within an execution that started."""
        started = {
            p["execution_id"]: p["workflow_id"] for p in _of("WorkflowStartedEvent")
        }
        steps = Counter(
            (p["execution_id"], p["step_id"], p["workflow_id"])
            for p in _of("WorkflowStepStartedEvent")
        )
        done = Counter(
            (p["execution_id"], p["step_id"], p["workflow_id"])
            for p in _of("WorkflowStepCompletedEvent")
        )

        assert all(started.get(e) == w for e, _, w in steps)
        assert set(done) <= set(steps)
        assert all(count == 1 for count in steps.values())

    def test_reservations_are_released(self) -> None:
        """Every reserved quantity is released by the same execution."""
        net: dict[tuple[int, str, int], float] = defaultdict(float)
        for payload in _of("WorkflowResourceReservedEvent"):
            net[_resource(payload)] += payload["quantity"] or 1.0
        for payload in _of("WorkflowResourceReleasedEvent"):
            net[_resource(payload)] -= payload["quantity"] or 1.0

        assert {key: 0.0 for key in net} == {key: round(v, 9) for key, v in net.items()}

    def test_tools_come_back(self) -> None:
        """Every check-out is returned, and maintenance scheduled is completed."""
        out = {(p["checkout_id"], p["tool_id"]) for p in _of("ToolCheckedOut")}
        back = {(p["checkout_id"], p["tool_id"]) for p in _of("ToolReturned")}
        scheduled = {p["maintenance_id"] for p in _of("ToolMaintenanceScheduled")}
        completed = {p["maintenance_id"] for p in _of("ToolMaintenanceCompleted")}

        assert out == back
        assert scheduled == completed


class TestReproducible:
    def test_the_script_writes_the_same_bytes(self, tmp_path: Path) -> None:
        """scripts/record_workshop_day.py with its default seed reproduces the file."""
        output = tmp_path / "day.jsonl"

        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "record_workshop_day.py"),
             "--output", str(output)],
            check=True, capture_output=True,
        )  # fmt: skip

        assert recorded_workshop_day().read_bytes() == output.read_bytes()


def _instant(stamp: str) -> str:
    # Normalise "...:22Z" and "...:22.120000Z" so text order is time order.
    head, _, _ = stamp.rstrip("Z").partition(".")
    return f"{head}.{stamp.rstrip('Z').partition('.')[2]:0<6}"


def _resource(payload: dict[str, Any]) -> tuple[int, str, int]:
    return payload["execution_id"], payload["resource_type"], payload["resource_id"]
