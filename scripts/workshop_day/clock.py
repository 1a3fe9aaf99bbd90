"""The workshop day's clock: its date and hours, and how moments are drawn.

Holds the working day's bounds (when it opens and closes, the last execution start and
the last tool check-out), the stamp every event carries (a fresh event id, a moment and
the user who acted) and the helpers that draw random moments and spans, in whole
milliseconds, from the day's random generator.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TypedDict

WORKSHOP_DATE = date(2026, 3, 12)


def at(hour: int, minute: int) -> datetime:
    """Return the moment ``hour:minute`` UTC on the workshop day."""
    return datetime.combine(WORKSHOP_DATE, time(hour, minute), tzinfo=UTC)


DAY_START = at(7, 30)
DAY_END = at(18, 30)
FIRST_EXECUTION_START = at(7, 35)
# The longest job, with its longest pause, still ends before DAY_END.
LAST_EXECUTION_START = at(16, 0)
# The longest loan, or a maintenance, still ends before DAY_END.
LAST_CHECKOUT = at(16, 15)


# -- stamps and clocks -----------------------------------------------------------------


class Stamp(TypedDict):
    """The fields every recorded event shares: its id, its moment and who acted."""

    event_id: str
    timestamp: datetime
    user_id: int


def stamp(rng: random.Random, moment: datetime, user_id: int) -> Stamp:
    """Return a stamp with a fresh event id drawn from ``rng``."""
    event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    return Stamp(event_id=str(event_id), timestamp=moment, user_id=user_id)


def random_minutes(rng: random.Random, low: float, high: float) -> timedelta:
    """Return a span of ``low`` to ``high`` minutes, in whole milliseconds."""
    return timedelta(
        milliseconds=rng.randint(round(low * 60_000), round(high * 60_000))
    )


def random_time(rng: random.Random, earliest: datetime, latest: datetime) -> datetime:
    """Return a moment between ``earliest`` and ``latest``, in whole milliseconds."""
    span = (latest - earliest) // timedelta(milliseconds=1)
    return earliest + timedelta(milliseconds=rng.randint(0, span))


def shortly_after(rng: random.Random, moment: datetime) -> datetime:
    """Return a moment a second or two after ``moment``."""
    return moment + timedelta(milliseconds=rng.randint(150, 2_500))


def stamps_between(
    rng: random.Random, user_id: int, count: int, earliest: datetime, latest: datetime
) -> Iterator[Stamp]:
    """Yield ``count`` stamps for ``user_id`` at random, increasing moments."""
    for moment in sorted(random_time(rng, earliest, latest) for _ in range(count)):
        yield stamp(rng, moment, user_id)
