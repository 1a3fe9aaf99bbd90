"""Loaded by ``bench waits``' workers beside their handlers: times each claim and
settle round trip inside the worker process.

It wraps :class:`~hidesync_events.completions.CompletionLog`'s two methods (a
measurement harness, never loaded by a real worker) and, when the process shuts down,
writes what it timed to ``$BENCH_ROUNDS_DIR/<pid>.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import signals

from hidesync_events.completions import CompletionLog

timed: dict[str, list[float]] = {"claim": [], "settle": []}


def _timing(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    samples = timed[kind]

    def measured(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - started)

    return measured


def _write(**_: Any) -> None:
    if timed["claim"]:
        path = Path(os.environ["BENCH_ROUNDS_DIR"]) / f"{os.getpid()}.json"
        path.write_text(json.dumps(timed))


CompletionLog.claim_many = _timing("claim", CompletionLog.claim_many)  # type: ignore[method-assign]
CompletionLog.settle = _timing("settle", CompletionLog.settle)  # type: ignore[method-assign]
signals.worker_process_shutdown.connect(_write, weak=False)
