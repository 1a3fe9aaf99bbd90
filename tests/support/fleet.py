"""Real ``celery worker`` subprocesses for integration tests, started and killed at will."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import Celery

from hidesync_events.categories import known_categories, queue_name

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class WorkerFleet:
    """Worker subprocesses consuming a broker; every one is stopped at the end."""

    broker_url: str
    workers: list[Worker] = field(default_factory=list)
    stopped: list[Worker] = field(default_factory=list)
    _logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fleet-")))

    def start(
        self,
        name: str,
        *,
        categories: tuple[str, ...] | None = None,
        handler_modules: tuple[str, ...] = ("tests.support.conformance",),
        concurrency: int = 1,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
        timeout_s: float = 60.0,
        loglevel: str = "INFO",
    ) -> Worker:
        """Start a worker and wait until it answers a ping.

        Tests read the INFO log (a task received, retried, succeeded); benchmarks
        pass WARNING, as their baselines run, since logging each task costs time.
        """
        prefix = (env or {}).get("HIDESYNC_EVENTS_QUEUE_PREFIX")
        queues = ",".join(
            queue_name(c, prefix) for c in categories or known_categories()
        )
        log = self._logs / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "workers", "worker",
            "-Q", queues, "-n", f"{name}@%h",
            "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", loglevel,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
            "HIDESYNC_EVENTS_MODE": "celery",
            "HIDESYNC_EVENTS_BROKER_URL": self.broker_url,
            "HIDESYNC_EVENTS_HANDLER_MODULES": ",".join(handler_modules),
            **(env or {}),
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(name, process, log)
        self.workers.append(worker)
        self._wait_until_ready(worker, timeout_s)
        return worker

    def stop(self) -> None:
        """Warm-shut every worker down (SIGTERM), killing those that do not stop.

        Their logs stay readable through :meth:`logs`.
        """
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(10)
        self.stopped += self.workers
        self.workers = []

    def logs(self) -> str:
        everyone = self.stopped + self.workers
        return "\n".join(f"--- {w.name} ---\n{w.output()}" for w in everyone)

    def _wait_until_ready(self, worker: Worker, timeout_s: float) -> None:
        app = Celery(broker=self.broker_url, set_as_current=False)
        app.conf.broker_connection_retry_on_startup = True
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"worker {worker.name} exited:\n{worker.output()}"
                    )
                try:
                    replies = app.control.ping(
                        [f"{worker.name}@{socket.gethostname()}"], timeout=0.5
                    )
                except (OSError, redis.RedisError):  # a pooled connection a test cut
                    replies = []
                if replies:
                    return
            raise TimeoutError(f"worker {worker.name} not ready:\n{worker.output()}")
        finally:
            app.close()
