"""What the reference handlers share: the bus they serve and where their state lives."""

from __future__ import annotations

from hidesync_events import EventBus
from hidesync_events.keyvalue import KeyValue


class ReferenceHandlers:
    """A group of handlers keeping state under ``<key_prefix>:workshop:<area>``."""

    area = "reference"

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    @property
    def kv(self) -> KeyValue:
        # Read at call time: the bus's mode (and so its store) can change.
        return self.bus.runtime.kv

    def key(self, name: str) -> str:
        return f"{self.bus.settings.key_prefix}:workshop:{self.area}:{name}"

    def register(self) -> None:
        raise NotImplementedError
