"""A Celery consumer that keeps poison messages as dead letters instead of dropping them.

Celery's own consumer acknowledges a message it cannot decode and rejects one naming an
unknown task: logged, then gone. This one records each as a dead letter first, with the
raw body as it arrived. A message whose content type is not JSON (a pickle, say) is
never deserialised: Celery refuses it before decoding (``accept_content``), and the
dead letter keeps its bytes. Either way the worker carries on with the next message.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed

from hidesync_events.errors import (
    CodecError,
    MalformedEnvelopeError,
    UnsupportedContentTypeError,
)

logger = logging.getLogger("hidesync.events.consumer")


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, with dead letters for messages no task could take."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _keep(message, _error_for(message, exc, "message body could not be decoded"))
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        _keep(message, MalformedEnvelopeError("message is not a Celery task message"))
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        name = (message.headers or {}).get("task", "?")
        _keep(message, MalformedEnvelopeError(f"no task named {name!r} on this worker"))
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        _keep(message, _error_for(message, exc, "invalid task message"))
        super().on_invalid_task(body, message, exc)


def _error_for(message: Any, exc: Exception, what: str) -> CodecError:
    # Celery reports a refused content type through either path, depending on when
    # it first looked at the body.
    if isinstance(exc, ContentDisallowed):
        return UnsupportedContentTypeError(
            f"message content type {message.content_type!r} is not accepted (JSON "
            "only); it was not deserialised"
        )
    return MalformedEnvelopeError(f"{what}: {exc}")


def _keep(message: Any, error: CodecError) -> None:
    # Imported here: Celery loads this module by name, before the bus is in use.
    from hidesync_events.bus import global_event_bus

    try:
        delivery_info = getattr(message, "delivery_info", None) or {}
        body = message.body
        raw = body if isinstance(body, bytes | str) else repr(body)
        letter = global_event_bus.dead_letters.record(
            reason=error.reason,
            raw=raw,
            error=error,
            queue=delivery_info.get("routing_key"),
            extra={
                "content_type": getattr(message, "content_type", None),
                "headers": {
                    k: repr(v)[:200] for k, v in (message.headers or {}).items()
                },
            },
        )
        global_event_bus.metrics.count("dead_letters", error.reason)
        logger.error("kept a poison message as dead letter %s: %s", letter.id, error)
    except Exception:
        logger.exception("could not keep a poison message as a dead letter")
