"""Record a simulated day in a leather-and-wood workshop as HideSync events.

Produces ``hidesync_events/data/workshop_day.jsonl``: one working day (07:30 to 18:30
UTC on 12 March 2026) of tool check-outs and maintenance, template and record keeping,
and some 250 workflow executions running side by side, covering all 29 catalogued event
types. Each line is one event, in timestamp order::

    {"type": "ToolCheckedOut", "payload": {"event_id": "...", "timestamp": "...", ...}}

where ``type`` is the wire name and ``payload`` is ``event.model_dump(mode="json")``.
Everything, event ids included, is drawn from one ``random.Random(seed)``, so a seed
always gives the same bytes. The simulation lives in the ``workshop_day`` package next
to this script; this file is its command line.

Run from the project root::

    python scripts/record_workshop_day.py [--seed N] [--output PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from workshop_day.day import record_day, write_lines

from hidesync_events import wire_name

DEFAULT_SEED = 20260312
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent
    / "hidesync_events"
    / "data"
    / "workshop_day.jsonl"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Record a simulated workshop day as HideSync events."
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the day's randomness"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON Lines file to write"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    events = record_day(args.seed)
    write_lines(events, args.output)

    type_count = len({wire_name(event) for event in events})
    print(f"wrote {len(events)} events of {type_count} types to {args.output}")


if __name__ == "__main__":
    main()
