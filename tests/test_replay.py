"""Replaying dead letters from Python: EventBus.replay."""

from __future__ import annotations

import pytest

from hidesync_events import (
    EventBus,
    MalformedEnvelopeError,
    RetryPolicy,
    ToolReturned,
)
from hidesync_events.dead_letters import DeadLetter

ONCE = RetryPolicy(max_attempts=1)


class TestReplay:
    def test_replay_runs_only_the_handler_that_failed(self, bus: EventBus) -> None:
        """A replayed letter goes to its failed handler alone, and is then removed."""
        calls: list[str] = []
        broken = {"on": True}

        def inspect_tool(event: ToolReturned) -> None:
            calls.append("inspect")
            if broken["on"]:
                raise RuntimeError("inspection bench is down")

        def log_return(event: ToolReturned) -> None:
            calls.append("log")

        bus.subscribe(ToolReturned, inspect_tool, retry=ONCE)
        bus.subscribe(ToolReturned, log_return)
        bus.publish(ToolReturned(checkout_id=1, tool_id=3))
        [letter] = bus.dead_letters.list()

        broken["on"] = False
        bus.replay(letter)

        assert ["inspect", "log", "inspect"] == calls
        assert [] == bus.dead_letters.list()

    def test_a_letter_that_still_cannot_be_decoded_stays(self, bus: EventBus) -> None:
        """Replaying an undecodable message raises the codec error; the letter stays."""
        letter = bus.dead_letters.record(
            reason="malformed", raw="{not json", error="bad"
        )

        with pytest.raises(MalformedEnvelopeError, match="not JSON"):
            bus.replay(letter)

        assert [letter.id] == [d.id for d in bus.dead_letters.list()]

    def test_a_letter_kept_by_hash_cannot_be_replayed(self, bus: EventBus) -> None:
        """A letter whose envelope was over the cap says there is nothing to replay."""
        store = bus.dead_letters
        letter: DeadLetter = store.record(
            reason="too_large", raw="x" * (2 << 20), error="big"
        )

        with pytest.raises(ValueError, match="kept only the hash"):
            bus.replay(letter)
