"""What every transport offers the bus."""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

from hidesync_events.codec import Envelope
from hidesync_events.runtime import Runtime

#: ``delivered``: handlers ran in this process (eager mode); ``sent``: the broker has
#: the message; ``spooled``: kept on local disk until the broker is reachable again.
ReceiptStatus = Literal["delivered", "sent", "spooled"]


class Receipt(NamedTuple):
    """What ``publish`` did with one event (a named tuple: one is made per event)."""

    event_id: str
    status: ReceiptStatus
    queue: str | None = None


class Transport(Protocol):
    """Carries envelopes from ``EventBus.publish`` to the delivery path."""

    @property
    def runtime(self) -> Runtime: ...

    def send(self, envelope: Envelope, *, only: str | None = None) -> Receipt:
        """Hand over one envelope; return once it is delivered or the broker has it.

        ``only`` names the one handler to run (a dead letter's replay).
        """
        ...

    def send_many(self, envelopes: list[Envelope]) -> list[Receipt]:
        """Hand over several envelopes, batched where the transport can; one receipt
        per envelope, in order."""
        ...

    async def send_async(self, envelope: Envelope) -> Receipt:
        """As :meth:`send`, without blocking the running event loop."""
        ...

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for work this transport started on the running loop; return what is left."""
        ...

    def cancel_pending(self) -> int:
        """Cancel the work :meth:`drain` waits for; return how much was cancelled."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...
