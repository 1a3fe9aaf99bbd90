"""The publish spool: a durable local queue for messages the broker could not take.

When the broker does not accept a message within the publish time budget, the message
is appended here (SQLite, synchronous writes, in ``spool_dir``) and a relay sends
spooled messages on, oldest first, once the broker answers again. Several processes may
share one spool directory: a lock file lets one relay send at a time, so the order
holds across them, and appending never waits for a relay's network calls.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hidesync_events.errors import SpoolFullError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    envelope TEXT NOT NULL,
    options TEXT NOT NULL,
    spooled_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One message waiting in the spool."""

    id: int
    queue: str
    envelope: str
    options: dict[str, Any]


class Spool:
    """Messages kept on disk until the broker takes them, in the order they came."""

    def __init__(self, directory: Path, *, max_events: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "spool.sqlite3"
        self.max_events = max_events
        self._lock = threading.Lock()
        # autocommit mode: every statement is its own durable transaction unless a
        # BEGIN says otherwise.
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def append(self, queue: str, envelope: str, options: dict[str, Any]) -> int:
        """Keep one message; raise :class:`SpoolFullError` when the spool is full."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self._db.execute("SELECT count(*) FROM spooled").fetchone()
                if count >= self.max_events:
                    raise SpoolFullError(
                        f"the publish spool at {self.path} holds {count} events, its "
                        "limit (HIDESYNC_EVENTS_SPOOL_MAX_EVENTS); the broker has been "
                        "unreachable for too long"
                    )
                cursor = self._db.execute(
                    "INSERT INTO spooled (queue, envelope, options, spooled_at) "
                    "VALUES (?, ?, ?, ?)",
                    (queue, envelope, json.dumps(options), time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

        return cursor.lastrowid or 0

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM spooled").fetchone()
        return int(count)

    def oldest(self, limit: int = 100) -> list[Spooled]:
        """The ``limit`` messages that have waited longest, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, queue, envelope, options FROM spooled ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [Spooled(row_id, q, e, json.loads(o)) for row_id, q, e, o in rows]

    def remove(self, message_id: int) -> None:
        """Forget a message the broker has taken."""
        with self._lock:
            self._db.execute("DELETE FROM spooled WHERE id = ?", (message_id,))

    @contextmanager
    def relaying(self) -> Iterator[bool]:
        """Hold the right to send the spool on; yields False when another process has it.

        Only one relay may send at a time, or two processes sharing the spool would
        send its messages twice and out of order. The right is an exclusive lock on a
        file beside the database, released when the holder exits or dies.
        """
        with open(self.path.with_suffix(".relay.lock"), "a") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            self._db.close()
