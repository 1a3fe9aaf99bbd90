"""Where the demo's events go: an embedded fleet, or an external one.

* :class:`RedisFleet`: a throwaway ``redis-server`` and worker subprocesses
  (``celery -A workers worker``), one per group of categories; used when
  ``redis-server`` is installed.
* :class:`MemoryFleet`: Celery's in-memory transport with a worker thread in this
  process; needs nothing installed.
* :class:`ExternalFleet`: a broker URL of yours, with your workers consuming it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from hidesync_events.bus import global_event_bus
from hidesync_events.categories import known_categories, queue_name
from hidesync_events.metrics import Metrics, MetricsSnapshot
from hidesync_events.redis_server import ThrowawayRedis, redis_server_binary
from hidesync_events.settings import configure, get_settings

DEMO_HANDLER_MODULES = ("workers.handlers", "hidesync_events.demo.supplier")


class Fleet(AbstractContextManager["Fleet"]):
    """Configures this process to publish to the fleet, and reports what it handled."""

    description = ""
    #: Set when the fleet did not handle everything: what it leaves behind is kept.
    incomplete = False

    def totals(self) -> MetricsSnapshot:
        """The fleet's counters as they stand."""
        runtime = global_event_bus.runtime
        return Metrics.load(runtime.kv, runtime.settings.key_prefix)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class WorkerLogs:
    """A folder for the demo workers' logs, kept only when the demo went wrong."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hidesync-demo-"))

    def finish(self, *, keep: bool) -> None:
        """Remove the folder, or keep it and say where it is."""
        if keep:
            print(f"the demo workers' logs are in {self.folder}", file=sys.stderr)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


#: The loggers of a worker running in the demo's own process.
_WORKER_LOGGERS = ("hidesync.events", "celery", "kombu")


@contextmanager
def _logging_to(path: Path, names: tuple[str, ...]) -> Iterator[None]:
    """Send the records of the loggers ``names`` to ``path``, not to the terminal."""
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    loggers = [logging.getLogger(name) for name in names]
    propagated = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, propagated, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()


def _use(broker_url: str, **overrides: Any) -> None:
    configure(
        **{
            **get_settings().model_dump(),
            "mode": "celery",
            "broker_url": broker_url,
            **overrides,
        }
    )


class ExternalFleet(Fleet):
    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.description = f"your broker at {broker_url}, handled by your workers"

    def __enter__(self) -> Fleet:
        _use(self.broker_url)
        return self


class MemoryFleet(Fleet):
    description = "Celery's in-memory transport with a worker thread in this process"

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._logs = WorkerLogs()

    def __enter__(self) -> Fleet:
        try:
            self._start()
        except BaseException as error:
            # Not started, so no with-block will undo what did start.
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _start(self) -> None:
        from celery.contrib.testing.worker import start_worker

        # The worker runs in this process: its logs (the demo's failing handler
        # logs every failure with its traceback) go to a file, as a worker
        # process's would, and the terminal keeps the demo's report.
        log = self._logs.folder / "worker.log"
        self._stack.enter_context(_logging_to(log, _WORKER_LOGGERS))
        _use("memory://", handler_modules=DEMO_HANDLER_MODULES)

        app = global_event_bus.transport.app  # type: ignore[attr-defined]
        # The memory transport polls; a short interval keeps messages moving.
        app.conf.broker_transport_options = {"polling_interval": 0.001}
        app.loader.import_default_modules()
        self._stack.enter_context(
            start_worker(
                app,
                pool="solo",
                perform_ping_check=False,
                loglevel="WARNING",
                shutdown_timeout=10,
            )
        )

    def totals(self) -> MetricsSnapshot:
        # The worker runs in this process: its counters are ours.
        return global_event_bus.metrics.snapshot()

    def __exit__(self, error_type: type[BaseException] | None, *exc: Any) -> None:
        self._stack.close()
        self._logs.finish(keep=error_type is not None or self.incomplete)


class RedisFleet(Fleet):
    def __init__(self, workers: int, concurrency: int = 2) -> None:
        self.workers = workers
        self.concurrency = concurrency
        self.description = (
            f"a throwaway redis-server and {workers} worker processes "
            f"(celery -A workers worker, prefork x{concurrency})"
        )
        self._redis: ThrowawayRedis | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs = WorkerLogs()

    def __enter__(self) -> Fleet:
        try:
            self._redis = ThrowawayRedis().start()
            _use(self._redis.url, handler_modules=DEMO_HANDLER_MODULES)
            for index, categories in enumerate(self._category_groups()):
                self._processes.append(self._start_worker(index, categories))
            self._wait_until_ready()
        except BaseException as error:
            # Not started, so no with-block will stop what did start.
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: Any) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._redis is not None:
            self._redis.close()

        # The workers' logs are worth keeping only when the demo went wrong, and
        # some worker started.
        went_well = error_type is None and not self.incomplete
        self._logs.finish(keep=not went_well and bool(self._processes))

    def worker_log(self, index: int) -> str:
        return (self._logs.folder / f"worker{index}.log").read_text(errors="replace")

    def _category_groups(self) -> list[list[str]]:
        groups: list[list[str]] = [[] for _ in range(self.workers)]
        for index, category in enumerate(known_categories()):
            groups[index % self.workers].append(category)
        return groups

    def _start_worker(
        self, index: int, categories: list[str]
    ) -> subprocess.Popen[bytes]:
        assert self._redis is not None
        env = {
            **os.environ,
            "HIDESYNC_EVENTS_MODE": "celery",
            "HIDESYNC_EVENTS_BROKER_URL": self._redis.url,
            "HIDESYNC_EVENTS_HANDLER_MODULES": ",".join(DEMO_HANDLER_MODULES),
            "HIDESYNC_EVENTS_KEY_PREFIX": get_settings().key_prefix,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "workers", "worker",
            "-Q", ",".join(queue_name(c) for c in categories),
            "-n", f"demo{index}@%h",
            "--concurrency", str(self.concurrency),
            "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = (self._logs.folder / f"worker{index}.log").open("wb")
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _wait_until_ready(self, timeout_s: float = 60.0) -> None:
        app = global_event_bus.transport.app  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index, process in enumerate(self._processes):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"demo worker {index} exited at start:\n{self.worker_log(index)}"
                    )
            replies = app.control.ping(timeout=0.5) or []
            if len(replies) >= len(self._processes):
                return
        raise TimeoutError(f"demo workers did not start within {timeout_s}s")


def embedded_fleet(workers: int) -> Fleet:
    """The embedded default: Redis and worker processes if ``redis-server`` exists."""
    if redis_server_binary() is not None:
        return RedisFleet(workers)

    return MemoryFleet()
