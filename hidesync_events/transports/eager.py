"""Eager mode: envelopes are delivered in the publishing process, at once.

This is the delivery path a worker runs, minus the broker: the envelope was encoded and
decoded by the bus, handlers are resolved, run, retried and dead-lettered by the same
:class:`~hidesync_events.delivery.Delivery`. Retries run immediately, one after the other
(as Celery's own eager mode does), so tests never sleep through a backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

from hidesync_events.codec import Envelope
from hidesync_events.delivery import Delivery, Outcome, Status
from hidesync_events.runtime import Runtime
from hidesync_events.subscriptions import HandlerRegistry, Subscription
from hidesync_events.transports.base import Receipt


class EagerTransport:
    """Delivers every envelope in this process, before ``publish`` returns.

    Sync handlers run in the publishing thread. Async handlers, when ``publish`` is
    called with no event loop running in the thread, run to completion on the
    process's handler loop; when a loop is running, they are scheduled as tasks on it
    (``await bus.drain()`` waits for them). ``publish_async`` awaits every handler.

    ``raise_errors=True`` is for tests (the ``hidesync_strict`` marker of
    :mod:`hidesync_events.testing`): a handler's first failure is raised, as the
    handler's own exception, from ``publish`` / ``publish_async`` (from ``drain`` for
    a handler scheduled as a task), so the test fails. The failure is still logged and
    counted as usual, and dead-lettered when the handler's policy allows no retry, but
    it is never retried, and the handlers after it for that event do not run.
    """

    def __init__(
        self, registry: HandlerRegistry, runtime: Runtime, *, raise_errors: bool = False
    ) -> None:
        self.delivery = Delivery(registry, runtime, retries_wait=False)
        self.raise_errors = raise_errors
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._task_errors: list[BaseException] = []

    @property
    def runtime(self) -> Runtime:
        return self.delivery.runtime

    def send(self, envelope: Envelope, *, only: str | None = None) -> Receipt:
        subscriptions = self.delivery.targets(envelope, only)
        loop = _running_loop()
        if loop is None:
            self._run_all(subscriptions, envelope)
        else:
            for subscription in subscriptions:
                if subscription.is_async:
                    self._track(
                        loop.create_task(self._run_async(subscription, envelope))
                    )
            self._run_all([s for s in subscriptions if not s.is_async], envelope)

        return Receipt(envelope.event_id, "delivered")

    def send_many(self, envelopes: list[Envelope]) -> list[Receipt]:
        return [self.send(envelope) for envelope in envelopes]

    async def send_async(self, envelope: Envelope) -> Receipt:
        subscriptions = self.delivery.targets(envelope)
        waits: list[Awaitable[object]] = [
            self._run_async(s, envelope) for s in subscriptions if s.is_async
        ]
        sync = [s for s in subscriptions if not s.is_async]
        if sync:
            # One hop off the loop for all sync handlers keeps their relative order.
            waits.append(asyncio.to_thread(self._run_all, sync, envelope))

        await asyncio.gather(*waits)
        return Receipt(envelope.event_id, "delivered")

    async def drain(self, timeout_s: float | None = None) -> int:
        left = await self._wait_for_tasks(timeout_s)
        self.raise_task_error()
        return left

    def raise_task_error(self) -> None:
        """With ``raise_errors``: raise the first handler error of a scheduled task
        that was not raised yet (``drain`` calls this; a test's teardown may too).
        """
        if self._task_errors:
            error, *self._task_errors = self._task_errors
            raise error

    async def _wait_for_tasks(self, timeout_s: float | None) -> int:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while pending := {
            t for t in self._tasks if t.get_loop() is loop and not t.done()
        }:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait(pending, timeout=remaining)
            if not done:
                return len(pending)

        return 0

    def cancel_pending(self) -> int:
        """Cancel this transport's tasks on the running loop; return how many."""
        loop = asyncio.get_running_loop()
        pending = [t for t in self._tasks if t.get_loop() is loop and not t.done()]
        for task in pending:
            task.cancel()
        return len(pending)

    def close(self) -> None:
        self._tasks.clear()
        self._task_errors.clear()

    def _run_all(
        self, subscriptions: Sequence[Subscription], envelope: Envelope
    ) -> None:
        if self.raise_errors:
            # One at a time: the first failure stops the handlers after it.
            for subscription in subscriptions:
                self._retry(subscription, envelope, attempt=1, first_failed_at=None)
            return

        # First attempts together (one claim and one settling step for all), then
        # each failed handler's retries, at once.
        items = [(envelope, subscription) for subscription in subscriptions]
        outcomes = self.delivery.run_message(items)
        for subscription, outcome in zip(subscriptions, outcomes, strict=True):
            if outcome.status is Status.RETRY:
                self._retry(
                    subscription, envelope, attempt=2, first_failed_at=datetime.now(UTC)
                )

    def _retry(
        self,
        subscription: Subscription,
        envelope: Envelope,
        *,
        attempt: int,
        first_failed_at: datetime | None,
    ) -> Outcome:
        while True:
            outcome = self.delivery.run(
                subscription, envelope, attempt, first_failed_at
            )
            self._raise_if_strict(outcome)
            if outcome.status is not Status.RETRY:
                return outcome
            attempt, first_failed_at = attempt + 1, first_failed_at or datetime.now(UTC)

    async def _run_async(
        self, subscription: Subscription, envelope: Envelope
    ) -> Outcome:
        attempt, first_failed_at = 1, None
        while True:
            outcome = await self.delivery.run_async(
                subscription, envelope, attempt, first_failed_at
            )
            self._raise_if_strict(outcome)
            if outcome.status is not Status.RETRY:
                return outcome
            attempt, first_failed_at = attempt + 1, first_failed_at or datetime.now(UTC)

    def _raise_if_strict(self, outcome: Outcome) -> None:
        if self.raise_errors and outcome.error is not None:
            raise outcome.error

    def _track(self, task: asyncio.Task[Outcome]) -> None:
        # The loop keeps only weak references to tasks: hold them until they finish.
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        # Only a strict transport's tasks raise; keep the error for drain() to raise.
        if self.raise_errors and not task.cancelled():
            error = task.exception()
            if error is not None:
                self._task_errors.append(error)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # asyncio's own lookup that answers None rather than raise: this runs on every
    # publish, and raising and catching costs ten times as much.
    return asyncio._get_running_loop()
