"""One long-lived event loop per process, in a daemon thread, for async handlers.

Code with no running loop (a Celery task, a sync ``publish`` from a plain function)
hands coroutines to this loop and waits for them. Creating a loop per message
(``asyncio.run``) would close every client an async handler keeps between events;
this loop lives as long as the process. After a fork (Celery's prefork pool) the child
starts its own loop on first use: a loop never crosses a fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger("hidesync.events.loop")

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread, started on first use."""

    def __init__(self, name: str = "hidesync-events-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(
        self,
        coroutine: Coroutine[Any, Any, T],
        *,
        context: contextvars.Context | None = None,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its error).

        ``context`` carries the caller's context variables into the task. Must not be
        called from the loop's own thread.
        """
        loop = self._ensure_started()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            task = loop.create_task(coroutine, context=context)
            task.add_done_callback(lambda done: _copy_outcome(done, result))

        loop.call_soon_threadsafe(start)
        try:
            return result.result(timeout_s)
        except concurrent.futures.TimeoutError:
            loop.call_soon_threadsafe(_cancel_tasks_of, loop, coroutine)
            raise TimeoutError(
                f"async handler did not finish within {timeout_s}s"
            ) from None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started if needed)."""
        return self._ensure_started()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop after cancelling its tasks; a later ``run`` starts a new one."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None

        if loop is None or thread is None or self._pid != os.getpid():
            return

        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop

        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                _shutdown(loop)

        thread = threading.Thread(target=serve, name=self._name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()
        logger.debug("started the async handler loop in process %d", self._pid)


def _copy_outcome(task: asyncio.Task[T], result: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        result.cancel()
    elif task.exception() is not None:
        result.set_exception(task.exception())
    else:
        result.set_result(task.result())


def _cancel_tasks_of(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]
) -> None:
    for task in asyncio.all_tasks(loop):
        if task.get_coro() is coroutine:
            task.cancel()


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
