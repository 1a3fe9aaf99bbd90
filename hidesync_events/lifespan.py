"""``setup_event_handlers(app)``: tie a bus to a FastAPI (or Starlette) app's lifespan.

It wraps the app's lifespan (so ``lifespan=`` functions and FastAPI's ``on_event``
handlers keep running): at startup it builds the bus's transport, so bad settings fail
the start rather than the first request (a broker that is down does not: ``publish``
keeps events in the local spool until it is back); at shutdown it waits for
the async handlers the bus scheduled on the app's loop, then cancels those still
running after ``drain_timeout_s``. Tasks the bus did not create are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hidesync_events.bus import EventBus, global_event_bus

logger = logging.getLogger("hidesync.events.lifespan")


def setup_event_handlers(
    app: Any, bus: EventBus | None = None, *, drain_timeout_s: float = 10.0
) -> None:
    """Run ``bus`` (default: the global bus) for as long as ``app`` is serving."""
    bus = bus or global_event_bus
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        transport = bus.transport
        logger.info("event bus started in %s mode", bus.mode)

        async with inner(served) as state:
            yield state

        left = await bus.drain(drain_timeout_s)
        if left:
            cancelled = transport.cancel_pending()
            logger.warning(
                "cancelled %d event handler tasks still running after %.1fs",
                cancelled,
                drain_timeout_s,
            )

    app.router.lifespan_context = lifespan
