"""The dead-letter store: events that could not be handled, kept with why.

A dead letter records the reason code, the handler that failed (if any), the error's
type and text (never a pickled or re-imported object), how many attempts were made,
the first and last failure times, and the original envelope (or, past the size cap, its
SHA-256 and size). Letters live in a :class:`~hidesync_events.keyvalue.KeyValue`: Redis
in Celery mode, memory in eager mode.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from hidesync_events.event import new_event_id
from hidesync_events.keyvalue import KeyValue

logger = logging.getLogger("hidesync.events.dead_letters")


class Reason(StrEnum):
    """Why an event became a dead letter."""

    HANDLER_FAILED = "handler_failed"
    UNKNOWN_HANDLER = "unknown_handler"
    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_PAYLOAD = "invalid_payload"
    TOO_LARGE = "too_large"
    CONTENT_TYPE = "content_type"
    WORKER_LOST = "worker_lost"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event (or raw message) that was given up on."""

    id: str
    reason: str
    error_type: str
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    envelope_sha256: str
    envelope_bytes: int
    envelope: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    handler: str | None = None
    queue: str | None = None
    traceback: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def kept_envelope(self) -> str:
        """The envelope as it arrived; ``ValueError`` when only its hash was kept."""
        if self.envelope is None:
            raise ValueError(
                f"dead letter {self.id} kept only the hash of its {self.envelope_bytes}-byte "
                "envelope (it was over the size cap); there is nothing to replay"
            )
        return self.envelope

    def to_json(self) -> str:
        data = asdict(self)
        data["first_failed_at"] = self.first_failed_at.isoformat()
        data["last_failed_at"] = self.last_failed_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeadLetter:
        data = json.loads(text)
        data["first_failed_at"] = datetime.fromisoformat(data["first_failed_at"])
        data["last_failed_at"] = datetime.fromisoformat(data["last_failed_at"])
        return cls(**data)


class DeadLetterStore:
    """Dead letters kept under ``<key_prefix>:dead_letters``, oldest first."""

    def __init__(
        self, kv: KeyValue, *, key_prefix: str, max_envelope_bytes: int
    ) -> None:
        self._kv = kv
        self._letters = f"{key_prefix}:dead_letters"
        self._index = f"{key_prefix}:dead_letters:index"
        self._max_envelope_bytes = max_envelope_bytes

    def record(
        self,
        *,
        reason: str,
        raw: str | bytes,
        error: BaseException | str,
        attempts: int = 1,
        first_failed_at: datetime | None = None,
        event_type: str | None = None,
        event_id: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
        traceback: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> DeadLetter:
        """Keep a dead letter for ``raw`` (the message as it arrived) and return it."""
        now = datetime.now(UTC)
        data = _as_bytes(raw)
        keep = len(data) <= self._max_envelope_bytes
        letter = DeadLetter(
            id=new_event_id(),
            reason=str(reason),
            error_type=_error_type(error),
            error=str(error),
            attempts=attempts,
            first_failed_at=first_failed_at or now,
            last_failed_at=now,
            envelope_sha256=hashlib.sha256(data).hexdigest(),
            envelope_bytes=len(data),
            envelope=data.decode("utf-8", "replace") if keep else None,
            event_type=event_type,
            event_id=event_id,
            handler=handler,
            queue=queue,
            traceback=traceback,
            extra=extra or {},
        )
        self.add(letter)
        return letter

    def add(self, letter: DeadLetter) -> None:
        """Store ``letter`` (replacing one with the same id)."""
        batch = self._kv.batch()
        batch.hset(self._letters, {letter.id: letter.to_json()})
        batch.zadd(self._index, {letter.id: letter.last_failed_at.timestamp()})
        batch.execute()

    def get(self, letter_id: str) -> DeadLetter | None:
        """Return the letter with id ``letter_id``, or ``None``."""
        text = self._kv.hget(self._letters, letter_id)
        return DeadLetter.from_json(text) if text else None

    def list(
        self,
        *,
        event_type: str | None = None,
        handler: str | None = None,
        reason: str | None = None,
        older_than: timedelta | None = None,
        newer_than: timedelta | None = None,
        limit: int | None = None,
    ) -> builtins.list[DeadLetter]:
        """Return the letters that match every filter given, oldest first."""
        now = datetime.now(UTC)
        found: builtins.list[DeadLetter] = []
        for letter in self._all():
            age = now - letter.last_failed_at
            if (
                (event_type is None or letter.event_type == event_type)
                and (handler is None or letter.handler == handler)
                and (reason is None or letter.reason == reason)
                and (older_than is None or age >= older_than)
                and (newer_than is None or age <= newer_than)
            ):
                found.append(letter)
                if limit is not None and len(found) >= limit:
                    break

        return found

    def delete(self, *letter_ids: str) -> int:
        """Remove letters by id; return how many existed."""
        if not letter_ids:
            return 0

        removed = self._kv.hdel(self._letters, *letter_ids)
        self._kv.zrem(self._index, *letter_ids)
        return removed

    def count(self) -> int:
        """Return how many letters are kept."""
        return self._kv.hlen(self._letters)

    def _all(self) -> builtins.list[DeadLetter]:
        ids = self._kv.zrange(self._index, 0, -1)
        texts = self._kv.hmget(self._letters, ids)
        return [DeadLetter.from_json(text) for text in texts if text]


def _error_type(error: BaseException | str) -> str:
    if isinstance(error, str):
        return "str"

    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


def _as_bytes(raw: str | bytes) -> bytes:
    """The message's bytes: text that held undecodable bytes gets them back, and a
    lone surrogate (which UTF-8 cannot carry) is kept as its three bytes."""
    if isinstance(raw, bytes):
        return raw

    try:
        return raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return raw.encode("utf-8", "surrogatepass")
