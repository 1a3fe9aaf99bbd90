"""Recorded events as JSON Lines, for ``hidesync-events publish`` and the demo.

Each line is either ``{"type": "<wire name>", "payload": {...}}`` (the payload may carry
``event_id`` and ``timestamp`` to replay them) or a full envelope as the codec writes
it. A line that is neither, or that does not validate, is a :class:`Rejected` naming
its line number and why; reading goes on with the next line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from hidesync_events.codec import Envelope, build_event, decode, seal
from hidesync_events.errors import (
    CodecError,
    UnknownEventError,
    UnknownEventTypeError,
)
from hidesync_events.event import event_type_named


@dataclass(frozen=True, slots=True)
class Recorded:
    """A line that holds a valid event, as the envelope to send."""

    line: int
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that could not be read as an event."""

    line: int
    raw: str
    reason: str
    error: str


def recorded_workshop_day() -> Path:
    """The path of the recorded workshop day shipped with the package."""
    return Path(str(resources.files("hidesync_events") / "data" / "workshop_day.jsonl"))


def read_lines(
    lines: Iterable[str], *, max_bytes: int
) -> Iterator[Recorded | Rejected]:
    """Read recorded events, one per non-blank line, numbering lines from 1."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if text:
            yield read_line(number, text, max_bytes=max_bytes)


def read_line(number: int, text: str, *, max_bytes: int) -> Recorded | Rejected:
    """Read one line; never raises for bad content."""
    try:
        data = json.loads(text)
    except ValueError as error:
        return Rejected(number, text, "malformed", f"not JSON: {error}")

    if not isinstance(data, dict):
        return Rejected(number, text, "malformed", "expected a JSON object")

    try:
        if "envelope_version" in data:
            return Recorded(number, decode(text, max_bytes=max_bytes))
        return Recorded(number, _envelope_of(data, max_bytes))
    except (UnknownEventError, UnknownEventTypeError):
        return Rejected(number, text, "unknown_type", _unknown_type(data.get("type")))
    except CodecError as error:
        return Rejected(number, text, error.reason, str(error))
    except ValidationError as error:
        return Rejected(number, text, "invalid_payload", str(error))
    except ValueError as error:
        return Rejected(number, text, "malformed", str(error))


def _envelope_of(data: dict[str, object], max_bytes: int) -> Envelope:
    name, payload = data.get("type"), data.get("payload", {})
    if not isinstance(name, str) or not isinstance(payload, dict):
        raise ValueError(
            'expected {"type": "<event name>", "payload": {...}} or a full envelope'
        )

    event = build_event(event_type_named(name), payload)
    return seal(event, max_bytes=max_bytes)


def _unknown_type(name: object) -> str:
    # Said to the person running a command, who can only name the module to import.
    return (
        f"{name!r} is not a known event type; name the module that defines it with "
        "--handlers or HIDESYNC_EVENTS_HANDLER_MODULES"
    )
