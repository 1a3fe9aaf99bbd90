"""The errors hidesync-events raises.

Every error derives from :class:`HideSyncEventsError`. The tree is shallow: one branch
for defining events and subscriptions, one for the wire codec, one for publishing.
Control-flow signals that a handler raises on purpose (:class:`~hidesync_events.RetryLater`)
live in :mod:`hidesync_events.retry` and are not errors.
"""

from __future__ import annotations

from typing import Any

#: How much of a raw message an error keeps, so a huge payload never floods a log.
RAW_PREVIEW_CHARS = 512


def truncate(raw: str | bytes, limit: int = RAW_PREVIEW_CHARS) -> str:
    """Return ``raw`` as text, cut to ``limit`` characters with a marker saying so."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) <= limit:
        return text

    return f"{text[:limit]}... [{len(text) - limit} more characters]"


class HideSyncEventsError(Exception):
    """Root of every error raised by hidesync-events."""


class ConfigurationError(HideSyncEventsError):
    """Raised when settings are missing, contradictory or name something that is absent."""


# -- defining events and subscriptions -------------------------------------------------


class EventDefinitionError(HideSyncEventsError, TypeError):
    """Raised when an event class cannot be registered, e.g. its wire name is taken."""


class NotAnEventTypeError(HideSyncEventsError, TypeError):
    """Raised when something other than a DomainEvent subclass is given as an event type."""


class UnknownEventTypeError(HideSyncEventsError, LookupError):
    """Raised when a wire name is not registered by any imported event class."""


class SubscriptionError(HideSyncEventsError, TypeError):
    """Raised when a handler cannot be subscribed as asked (bad hint, name clash)."""


# -- the wire codec ---------------------------------------------------------------------


class CodecError(HideSyncEventsError):
    """Raised when an event cannot be turned into an envelope or back.

    ``reason`` is a stable code (the same one a dead letter records) and ``raw`` the
    offending input, truncated to :data:`RAW_PREVIEW_CHARS` characters.
    """

    reason = "codec_error"

    def __init__(self, message: str, *, raw: str | bytes | None = None) -> None:
        super().__init__(message)
        self.raw = truncate(raw) if raw is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (multiprocessing, Celery's own error reporting).
        return (_rebuild_codec_error, (type(self), str(self), self.raw))


def _rebuild_codec_error(
    cls: type[CodecError], message: str, raw: str | None
) -> CodecError:
    return cls(message, raw=raw)


class MalformedEnvelopeError(CodecError):
    """Raised when a message is not JSON or lacks an envelope field it must have."""

    reason = "malformed"


class UnknownEventError(CodecError):
    """Raised when an envelope names an event type no imported module registers."""

    reason = "unknown_type"


class PayloadValidationError(CodecError):
    """Raised when an envelope's payload does not validate as its event type."""

    reason = "invalid_payload"


class EnvelopeTooLargeError(CodecError):
    """Raised when an envelope is larger than the configured size cap."""

    reason = "too_large"


class UnsupportedContentTypeError(CodecError):
    """Raised when a message is not JSON (a pickle, say); it is never deserialised."""

    reason = "content_type"


class LossyEventError(CodecError):
    """Raised at publish when a value would arrive changed (a Decimal in an ``Any`` field)."""

    reason = "lossy"


# -- publishing ---------------------------------------------------------------------------


class PublishError(HideSyncEventsError):
    """Raised when an event could not be handed to its transport."""


class BrokerUnavailableError(PublishError):
    """Raised when the broker did not accept an event within the publish time budget."""


class SpoolFullError(PublishError):
    """Raised when the broker is unreachable and the publish spool is full or disabled."""
