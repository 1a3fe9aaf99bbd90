"""The wire format: a versioned JSON envelope around an event's payload.

An envelope is one JSON object::

    {"envelope_version": 1, "type": "ToolCheckedOut", "schema_version": 1,
     "category": "tools", "event_id": "...", "timestamp": "2026-12-04T09:30:00Z",
     "correlation_id": "...", "causation_id": null,
     "payload": {"event_id": "...", "timestamp": "...", "tool_id": 7, ...}}

The payload is the event's own JSON; the header repeats its id and time so that tools
(dead letters, the command line) can read them without decoding the payload, and a
decoded envelope whose header and payload disagree is refused. With tracing on, the
header also carries the publisher's trace context, ``"trace": {"traceparent": ...}``:
telemetry, so a ``trace`` that is not an object of strings is dropped, never the event.

``encode`` refuses an event whose values would not come back as the same types and
values (a ``Decimal`` in an ``Any`` field, a tuple where JSON has only lists), so nothing
arrives silently changed. ``decode`` instantiates registered event classes only and
raises one distinct error per way a message can be wrong, each with a reason code and
the raw input, truncated.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticSerializationError, SchemaValidator

from hidesync_events.errors import (
    CodecError,
    EnvelopeTooLargeError,
    LossyEventError,
    MalformedEnvelopeError,
    PayloadValidationError,
    UnknownEventError,
    UnknownEventTypeError,
    truncate,
)
from hidesync_events.event import DomainEvent, event_type_named

logger = logging.getLogger("hidesync.events.codec")

ENVELOPE_VERSION = 1

_HEADER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "envelope_version": int,
    "type": str,
    "schema_version": int,
    "category": str,
    "event_id": str,
    "timestamp": str,
    "correlation_id": str,
    "causation_id": (str, type(None)),
    "payload": dict,
}


@dataclass(slots=True)
class Envelope:
    """A decoded envelope: the event rebuilt, plus what travelled around it.

    Read-only by convention (a frozen dataclass costs a microsecond more to build,
    on every event).
    """

    event: DomainEvent
    event_type: str
    schema_version: int
    category: str
    correlation_id: str
    causation_id: str | None
    text: str
    #: The W3C trace context of the publish, when tracing was on (see tracing.py).
    trace: dict[str, str] | None = None

    @property
    def event_id(self) -> str:
        return self.event.event_id


def encode(
    event: DomainEvent,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    trace: dict[str, str] | None = None,
    max_bytes: int,
) -> str:
    """Return the envelope of ``event`` as JSON text.

    ``correlation_id`` defaults to the event's own id (it starts a new chain);
    ``trace`` is a trace context to carry (W3C ``traceparent``, ``tracestate``).
    Raises :class:`LossyEventError` when a value cannot be written as JSON, and
    :class:`EnvelopeTooLargeError` when the envelope exceeds ``max_bytes``.
    """
    payload = _payload_of(event)
    return _wrap(event, payload, correlation_id, causation_id, trace, max_bytes)


def seal(
    event: DomainEvent,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    trace: dict[str, str] | None = None,
    max_bytes: int,
) -> Envelope:
    """Encode ``event`` (as :func:`encode`) and rebuild the copy its handlers receive.

    The copy is validated from the payload's JSON text, as a worker validates it; the
    header around it was written here a moment ago from known values, so it is not
    read back. ``decode(encode(event))`` gives the same envelope at twice the cost.
    """
    payload = _payload_of(event)
    text = _wrap(event, payload, correlation_id, causation_id, trace, max_bytes)

    event_cls = type(event)
    meta = event_cls.__event_meta__
    try:
        if meta.legacy:
            copy = build_event(event_cls, json.loads(payload))
        elif _reads_or_writes_own_json(event_cls):
            copy = event_cls.model_validate_json(payload)
        else:
            copy = event_cls.__pydantic_validator__.validate_json(payload)
    except ValidationError as error:
        raise _invalid(meta.name, error, text, nested=False) from None

    # Positional: keywords cost a third more, on every publish.
    correlation = correlation_id or event.event_id
    return Envelope(
        copy, meta.name, meta.schema_version, meta.category, correlation,
        causation_id, text, trace or None,
    )  # fmt: skip


def _payload_of(event: DomainEvent) -> str:
    if event.__event_meta__.abstract:
        raise TypeError(
            f"{type(event).__name__} is an abstract event base; publish one of its "
            "concrete subclasses"
        )

    try:
        if _reads_or_writes_own_json(type(event)):
            return event.model_dump_json()
        # pydantic-core's serializer itself: the model's method wraps it in Python
        # that costs a third of the call (and likewise for validators).
        return event.__pydantic_serializer__.to_json(event).decode()
    except PydanticSerializationError as error:
        raise LossyEventError(
            f"{type(event).__name__} cannot be written as JSON: {error}"
        ) from error


def _wrap(
    event: DomainEvent,
    payload: str,
    correlation_id: str | None,
    causation_id: str | None,
    trace: dict[str, str] | None,
    max_bytes: int,
) -> str:
    # The event id was validated as UUID text when the event was built; ids that came
    # from elsewhere (a handled envelope's correlation id) are escaped.
    correlation = (
        json.dumps(correlation_id) if correlation_id else f'"{event.event_id}"'
    )
    causation = json.dumps(causation_id) if causation_id else "null"
    carried = f'"trace":{json.dumps(trace, separators=(",", ":"))},' if trace else ""
    text = (
        f'{_header_prefix(type(event))}"event_id":"{event.event_id}",'
        f'"timestamp":"{_timestamp_in(payload, event)}","correlation_id":{correlation},'
        f'"causation_id":{causation},{carried}"payload":{payload}}}'
    )
    _check_size(text, max_bytes)
    return text


def decode(raw: str | bytes, *, max_bytes: int) -> Envelope:
    """Rebuild the envelope and its event from JSON text.

    The payload is validated as JSON (pydantic's JSON mode), the exact inverse of
    :func:`encode`. Raises :class:`EnvelopeTooLargeError`,
    :class:`MalformedEnvelopeError`, :class:`UnknownEventError` or
    :class:`PayloadValidationError`.
    """
    if not isinstance(raw, str | bytes):
        raise MalformedEnvelopeError(
            f"envelope must be JSON text, got a {type(raw).__name__}", raw=repr(raw)
        )

    _check_size(raw, max_bytes)

    event_cls = _class_named_in(raw)
    if event_cls.__event_meta__.legacy:
        return _decode_legacy(event_cls, raw)

    try:
        envelope = _envelope_model(event_cls).__pydantic_validator__.validate_json(raw)
    except ValidationError as error:
        raise _invalid(event_cls.__event_meta__.name, error, raw) from None

    _check_identity(envelope, event_cls, raw)
    return Envelope(
        event=envelope.payload,
        event_type=envelope.type,
        schema_version=envelope.schema_version,
        category=envelope.category,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        text=raw if isinstance(raw, str) else raw.decode(),
        trace=_trace_of(envelope.trace),
    )


def _class_named_in(raw: str | bytes) -> type[DomainEvent]:
    name = _type_written_first(raw)
    if name is not None:
        with suppress(UnknownEventTypeError):
            return event_type_named(name)

    # Not laid out as encode writes it: parse the whole message for its type.
    try:
        name = _TypeOnly.model_validate_json(raw).type
    except ValidationError:
        raise _malformed(raw) from None

    try:
        return event_type_named(name)
    except UnknownEventTypeError as error:
        raise UnknownEventError(str(error), raw=raw) from None


_LAYOUT = f'{{"envelope_version":{ENVELOPE_VERSION},"type":"'


def _type_written_first(raw: str | bytes) -> str | None:
    """The type name, read without parsing, from an envelope laid out as
    :func:`encode` writes it; None otherwise.

    Whatever is read here is checked when the envelope is validated (its ``type``
    must name the class chosen), so a message that only looks this way is refused,
    never misread.
    """
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if not text.startswith(_LAYOUT):
        return None

    end = text.find('"', len(_LAYOUT))
    name = text[len(_LAYOUT) : end]
    return name if end > 0 and "\\" not in name else None


def _check_identity(
    envelope: Any, event_cls: type[DomainEvent], raw: str | bytes
) -> None:
    meta = event_cls.__event_meta__
    if envelope.envelope_version != ENVELOPE_VERSION:
        raise _malformed(raw)

    if envelope.type != meta.name:
        raise MalformedEnvelopeError(
            f"envelope holds a {envelope.type!r}, not a {meta.name!r}", raw=raw
        )

    if not _header_matches(envelope.event_id, envelope.timestamp, envelope.payload):
        raise MalformedEnvelopeError(
            "envelope header does not match its payload (event_id or timestamp)",
            raw=raw,
        )

    _check_schema_version(event_cls, envelope.schema_version, raw)


def peek_header(raw: str | bytes) -> dict[str, Any]:
    """Return whatever header fields can be read from a message that failed to decode."""
    try:
        data = _parsed(raw)
    except MalformedEnvelopeError:
        return {}

    if not isinstance(data, dict):
        return {}

    return {
        key: data[key] for key in _HEADER_FIELDS if key in data and key != "payload"
    }


def build_event(event_cls: type[DomainEvent], payload: dict[str, Any]) -> DomainEvent:
    """Validate a payload read from JSON as ``event_cls``, never calling a custom
    ``__init__``; values are read as JSON values (bytes as base64 text, for one).
    """
    if event_cls.__event_meta__.legacy:
        fields, extras, fields_set = _fields_validator(event_cls).validate_python(
            payload
        )
        return event_cls.model_construct(fields_set, **fields, **(extras or {}))

    return event_cls.model_validate_json(json.dumps(payload))


class _TypeOnly(BaseModel):
    """Just enough of an envelope to choose the event class that validates the rest."""

    model_config = ConfigDict(extra="ignore")

    type: str


class _EnvelopeFields(BaseModel):
    """The envelope around a payload; subclassed per event class with ``payload: cls``.

    No validator of ours runs here: pydantic validates the whole envelope from JSON in
    one pass, which is what makes decoding cheap.
    """

    # Unknown header keys are ignored (a later minor release may add some); known
    # ones must have their JSON type exactly: "1" is not a schema version.
    model_config = ConfigDict(extra="ignore")

    envelope_version: StrictInt
    type: StrictStr
    schema_version: StrictInt
    category: StrictStr
    event_id: StrictStr
    timestamp: StrictStr
    correlation_id: StrictStr
    causation_id: StrictStr | None
    trace: Any = None  # read by _trace_of: a broken one is dropped, not refused


@cache
def _envelope_model(event_cls: type[DomainEvent]) -> type[Any]:
    return create_model(
        f"{event_cls.__name__}Envelope",
        __base__=_EnvelopeFields,
        payload=(event_cls, ...),
    )


def _decode_legacy(event_cls: type[DomainEvent], raw: str | bytes) -> Envelope:
    # Classes with a custom __init__ are rebuilt field by field (see build_event).
    data = _parsed(raw)
    _check_header(data, raw)
    try:
        event = build_event(event_cls, data["payload"])
    except ValidationError as error:
        raise _invalid(data["type"], error, raw, nested=False) from None

    name_ok = data["type"] == event_cls.__event_meta__.name
    if not name_ok or not _header_matches(data["event_id"], data["timestamp"], event):
        raise MalformedEnvelopeError(
            "envelope header does not match its payload (type, event_id or timestamp)",
            raw=raw,
        )

    _check_schema_version(event_cls, data["schema_version"], raw)
    return Envelope(
        event=event,
        event_type=data["type"],
        schema_version=data["schema_version"],
        category=data["category"],
        correlation_id=data["correlation_id"],
        causation_id=data["causation_id"],
        text=raw if isinstance(raw, str) else raw.decode(),
        trace=_trace_of(data.get("trace")),
    )


def _trace_of(trace: Any) -> dict[str, str] | None:
    if isinstance(trace, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in trace.items()
    ):
        return trace

    if trace is not None:
        logger.debug("ignored an envelope trace context that is not strings: %r", trace)
    return None


def _header_matches(event_id: str, timestamp: str, event: DomainEvent) -> bool:
    if event_id != event.event_id:
        return False

    try:
        return datetime.fromisoformat(timestamp) == event.timestamp
    except ValueError:
        return False


def _malformed(raw: str | bytes) -> MalformedEnvelopeError:
    # The fast path failed: say precisely what is wrong.
    try:
        _check_header(_parsed(raw), raw)
    except MalformedEnvelopeError as error:
        return error
    return MalformedEnvelopeError("envelope has no valid 'type' field", raw=raw)


def _parsed(raw: str | bytes) -> Any:
    """The message as Python values, or :class:`MalformedEnvelopeError`."""
    try:
        return json.loads(raw)
    except RecursionError:
        # Pydantic refused it already; the json module would overflow the stack.
        raise MalformedEnvelopeError(
            "message is nested too deeply to be read as JSON", raw=raw
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedEnvelopeError(f"message is not JSON: {error}", raw=raw) from None


def _invalid(
    name: str, error: ValidationError, raw: str | bytes, *, nested: bool = True
) -> CodecError:
    # A broken header is the envelope's fault, whatever else pydantic found.
    if nested and _header_broken(raw):
        return _malformed(raw)

    skip = 1 if nested else 0  # drop the leading "payload" from each location
    details = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'][skip:]) or '(payload)'}: "
        f"{problem['msg']} (got {truncate(repr(problem['input']), 80)})"
        for problem in error.errors(include_url=False)
    )
    return PayloadValidationError(f"payload is not a valid {name}: {details}", raw=raw)


def _header_broken(raw: str | bytes) -> bool:
    try:
        _check_header(_parsed(raw), raw)
    except MalformedEnvelopeError:
        return True
    return False


def _check_schema_version(
    event_cls: type[DomainEvent], version: int, raw: str | bytes
) -> None:
    known = event_cls.__event_meta__.schema_version
    if version > known:
        raise PayloadValidationError(
            f"{event_cls.__event_meta__.name} schema version {version} is newer than this "
            f"process knows ({known}); deploy the new event definition, then replay",
            raw=raw,
        )


@cache
def _reads_or_writes_own_json(event_cls: type[DomainEvent]) -> bool:
    """Whether the class overrides ``model_dump_json`` or ``model_validate_json``: its
    payload is then what those methods make of it, not pydantic-core's default."""
    own = event_cls.__mro__[: event_cls.__mro__.index(BaseModel)]
    return any(
        "model_dump_json" in vars(cls) or "model_validate_json" in vars(cls)
        for cls in own
    )


@cache
def _header_prefix(event_cls: type[DomainEvent]) -> str:
    meta = event_cls.__event_meta__
    return (
        f'{{"envelope_version":{ENVELOPE_VERSION},"type":{json.dumps(meta.name)},'
        f'"schema_version":{meta.schema_version},"category":{json.dumps(meta.category)},'
    )


def _timestamp_in(payload: str, event: DomainEvent) -> str:
    # The payload already holds the timestamp as pydantic wrote it: reuse that text
    # rather than format the datetime again.
    start = payload.find('"timestamp":"') + 13
    end = payload.find('"', start)
    if start >= 13 and end > start:
        return payload[start:end]
    return event.timestamp.isoformat().replace("+00:00", "Z")


def _check_size(raw: str | bytes, max_bytes: int) -> None:
    # A str of n characters takes between n and 4n bytes in UTF-8: encode only when
    # the cheap bounds cannot decide.
    size = len(raw)
    if isinstance(raw, str) and size <= max_bytes < size * 4:
        # A lone surrogate cannot travel, but is counted here: validation refuses it.
        size = len(raw.encode("utf-8", "surrogatepass"))

    if size > max_bytes:
        raise EnvelopeTooLargeError(
            f"envelope is {size} bytes, over the {max_bytes}-byte cap "
            "(HIDESYNC_EVENTS_MAX_ENVELOPE_BYTES); keep large data out of events and "
            "send a reference to it instead",
            raw=raw,
        )


def _check_header(data: Any, raw: str | bytes) -> None:
    if not isinstance(data, dict):
        raise MalformedEnvelopeError(
            f"envelope must be a JSON object, got {type(data).__name__}", raw=raw
        )

    for key, expected in _HEADER_FIELDS.items():
        if key not in data:
            raise MalformedEnvelopeError(f"envelope has no {key!r} field", raw=raw)

        if not isinstance(data[key], expected) or isinstance(data[key], bool):
            raise MalformedEnvelopeError(
                f"envelope field {key!r} should be {_type_names(expected)}, "
                f"got {data[key]!r}",
                raw=raw,
            )

    if data["envelope_version"] != ENVELOPE_VERSION:
        raise MalformedEnvelopeError(
            f"envelope version {data['envelope_version']} is not supported "
            f"(this release reads version {ENVELOPE_VERSION})",
            raw=raw,
        )


def _type_names(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


@cache
def _fields_validator(event_cls: type[DomainEvent]) -> SchemaValidator:
    # A validator for the class's fields alone: the model validator of a class with a
    # custom __init__ would call that __init__ with the payload as keyword arguments.
    schema = event_cls.__pydantic_core_schema__
    if schema["type"] == "definitions":
        inner = {**schema, "schema": schema["schema"]["schema"]}
    else:
        inner = schema["schema"]

    return SchemaValidator(inner, schema.get("config"))
