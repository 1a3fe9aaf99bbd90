"""The wire codec: the envelope, how ``decode`` refuses bad messages, and values that
must arrive as the same types and values (DESIGN.md sections 2 and 3).

Test-local event classes carry the ``CodecTests`` prefix and ``category="codec_tests"``:
the registry of wire names is process-wide, so every name here must be unique.
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hidesync_events import (
    CATALOGUE,
    CodecError,
    DomainEvent,
    EnvelopeTooLargeError,
    EventBus,
    LossyEventError,
    MalformedEnvelopeError,
    PayloadValidationError,
    ToolCheckedOut,
    UnknownEventError,
    WorkflowStartedEvent,
)
from hidesync_events.codec import build_event, decode, encode, peek_header, seal
from hidesync_events.fidelity import ensure_lossless

MAX_BYTES = 1024 * 1024
EVENT_ID = "0b7e2f4c-2a61-4c1e-9d3a-5f0c8e7a1b22"
CORRELATION_ID = "9f3e1d2c-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
CAUSE_ID = "5d1c9a70-8e2b-4f6a-b3c4-9a8b7c6d5e4f"
PLUS_TWO = timezone(timedelta(hours=2))
HEADER_FIELDS = (
    "envelope_version",
    "type",
    "schema_version",
    "category",
    "event_id",
    "timestamp",
    "correlation_id",
    "causation_id",
    "payload",
)


#: (header field, a value of the wrong JSON type, the type the field must have)
MISTYPED_HEADERS: list[tuple[str, object, str]] = [
    ("envelope_version", "1", "int"),
    ("envelope_version", True, "int"),
    ("type", 3, "str"),
    ("schema_version", "1", "int"),
    ("schema_version", True, "int"),
    ("category", 1, "str"),
    ("event_id", 1, "str"),
    ("timestamp", 5, "str"),
    ("correlation_id", None, "str"),
    ("causation_id", 3, "str or null"),
    ("payload", [], "dict"),
]


class Finish(enum.Enum):
    NATURAL = "natural"
    BURNISHED = "burnished"


class Dye(enum.StrEnum):
    OXBLOOD = "oxblood"


class CodecTestsHideOrdered(DomainEvent, category="codec_tests"):
    """Declared fields of every type that JSON does not carry natively."""

    price: Decimal = Decimal("0")
    supplier_ref: UUID | None = None
    ordered_at: datetime | None = None
    delivery_day: date | None = None
    finish: Finish = Finish.NATURAL
    swatch: bytes = b""
    colours: set[str] = Field(default_factory=set)
    sizes: frozenset[str] = frozenset()
    dimensions_mm: tuple[int, ...] = ()
    thickness_mm: float = 0.0


class CodecTestsLooseNote(DomainEvent, category="codec_tests"):
    """Fields that accept anything, so JSON decides what comes back."""

    anything: Any = None
    thing: object = None


class CodecTestsLooseDetail(BaseModel):
    """A nested model with a field that accepts anything."""

    value: Any = None


class CodecTestsNestedNote(DomainEvent, category="codec_tests"):
    """Loose fields one and two levels down."""

    detail: CodecTestsLooseDetail = CodecTestsLooseDetail()
    details: list[CodecTestsLooseDetail] = Field(default_factory=list)


class CodecTestsHideShipped(DomainEvent, category="codec_tests"):
    """The older style: a custom ``__init__`` assigning attributes."""

    init_calls: ClassVar[int] = 0

    def __init__(self, carrier: str, detail: object = None) -> None:
        super().__init__()
        type(self).init_calls += 1
        self.carrier = carrier
        self.detail = detail


class CodecTestsDyeingEvent(DomainEvent, category="codec_tests", abstract=True):
    """An abstract base, never registered."""


class CodecTestsVersioned(DomainEvent, category="codec_tests", schema_version=2):
    """A declared-fields event at payload version 2."""

    vat_id: str = ""


class CodecTestsLegacyVersioned(DomainEvent, category="codec_tests", schema_version=2):
    """A legacy-style event at payload version 2."""

    def __init__(self, vat_id: str) -> None:
        super().__init__()
        self.vat_id = vat_id


class CodecTestsAliasedJson(DomainEvent, category="codec_tests"):
    """Writes its own JSON: by alias, without its unset optional fields."""

    model_config = ConfigDict(populate_by_name=True)

    tool: int = Field(0, alias="toolId")
    note: str | None = None

    def model_dump_json(self, **options: Any) -> str:
        options.setdefault("by_alias", True)
        options.setdefault("exclude_none", True)
        return super().model_dump_json(**options)

    @classmethod
    def model_validate_json(
        cls, json_data: str | bytes | bytearray, **options: Any
    ) -> CodecTestsAliasedJson:
        cls.validated_by_own_method += 1
        return super().model_validate_json(json_data, **options)

    validated_by_own_method: ClassVar[int] = 0


#: A value for every optional catalogue field: their defaults are all None.
OPTIONAL_SAMPLES: dict[str, object] = {
    "user_id": 456,
    "entity_id": {"tenant": 1, "ids": [123, "wf-123"]},
    "reason": "blade dull",
    "date": date(2024, 1, 15),
    "completion_date": datetime(2024, 1, 15, 9, 30, tzinfo=PLUS_TWO),
    "performed_by": "Ana",
    "next_date": date(2024, 7, 15),
    "project_id": 12,
    "due_date": datetime(2024, 1, 20, 17, 0, tzinfo=UTC),
    "condition_after": "scratched",
    "selected_outcome_id": 5,
    "outcome_id": 5,
    "total_duration": 240.5,
    "actual_duration": 15.5,
    "from_step_id": 10,
    "quantity": 2.5,
    "required_quantity": 5.0,
    "available_quantity": 2.0,
    "estimated_remaining": 120.0,
}


def _other_than(name: str, default: object) -> object:
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return 7
    if isinstance(default, float):
        return 41.7
    if isinstance(default, str):
        return f"{name} ü €"
    return {"name": "New Name", "steps": [1, 2], "active": True}


def _sample(cls: type[DomainEvent]) -> DomainEvent:
    """An instance of ``cls`` with every field set to something other than its default."""
    values: dict[str, object] = {}
    for name, field in cls.model_fields.items():
        if name in ("event_id", "timestamp"):
            continue

        default = field.get_default(call_default_factory=True)
        values[name] = (
            OPTIONAL_SAMPLES[name] if default is None else _other_than(name, default)
        )
    return cls(**values)


def _round_trip(event: DomainEvent) -> DomainEvent:
    return decode(encode(event, max_bytes=MAX_BYTES), max_bytes=MAX_BYTES).event


def _envelope(event: DomainEvent) -> dict[str, Any]:
    return json.loads(encode(event, max_bytes=MAX_BYTES))


#: Envelopes that decode, one per decoding path; tests break copies of them.
GOOD_ENVELOPES: dict[str, dict[str, Any]] = {
    "declared": _envelope(
        ToolCheckedOut(
            event_id=EVENT_ID,
            timestamp=datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
            checkout_id=1,
            tool_id=3,
            due_date="2024-01-20",
        )
    ),
    "legacy": _envelope(CodecTestsHideShipped("Leather Express")),
}


def _text(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope)


def _changed(kind: str, **changes: object) -> str:
    return _text({**GOOD_ENVELOPES[kind], **changes})


def _without(kind: str, field: str) -> str:
    return _text({k: v for k, v in GOOD_ENVELOPES[kind].items() if k != field})


def _refused(raw: Any, error: type[CodecError], reason: str, match: str) -> CodecError:
    """Decode ``raw``, expecting exactly ``error`` with ``reason``; return it."""
    with pytest.raises(error, match=match) as caught:
        decode(raw, max_bytes=MAX_BYTES)

    assert (error, reason) == (type(caught.value), caught.value.reason)
    return caught.value


class TestRoundTrip:
    @pytest.mark.parametrize("cls", CATALOGUE)
    def test_every_catalogued_event_round_trips(self, cls: type[DomainEvent]) -> None:
        """Encoding then decoding a catalogued event gives an equal, separate event."""
        event = _sample(cls)

        decoded = _round_trip(event)

        assert cls is type(decoded)
        assert event == decoded
        assert decoded is not event
        ensure_lossless(event, decoded)

    @pytest.mark.parametrize(
        "event",
        [
            _sample(WorkflowStartedEvent),
            CodecTestsHideShipped("Leather Express"),
            CodecTestsLegacyVersioned("DE123"),
        ],
        ids=["declared", "legacy", "legacy-versioned"],
    )
    def test_seal_gives_what_decoding_the_encoded_text_gives(
        self, event: DomainEvent
    ) -> None:
        """seal (what publish uses) builds the envelope decode(encode(...)) would,
        header values, trace and text included."""
        trace = {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        }
        ids = {"correlation_id": "c-1", "causation_id": "e-0", "trace": trace}

        sealed = seal(event, max_bytes=MAX_BYTES, **ids)
        decoded = decode(encode(event, max_bytes=MAX_BYTES, **ids), max_bytes=MAX_BYTES)

        assert decoded == sealed
        assert sealed.event is not event

    @pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
    def test_seal_names_an_invalid_payload(self) -> None:
        """An event whose JSON does not validate back (a value set past validation)
        is refused by seal with the field named."""
        event = _sample(WorkflowStartedEvent)
        object.__setattr__(event, "workflow_id", "not a number")

        with pytest.raises(PayloadValidationError, match="workflow_id"):
            seal(event, max_bytes=MAX_BYTES)

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    def test_bytes_decode_like_text(self, kind: str) -> None:
        """UTF-8 bytes decode to the same event as the text."""
        text = _text(GOOD_ENVELOPES[kind])

        from_bytes = decode(text.encode(), max_bytes=MAX_BYTES)

        assert decode(text, max_bytes=MAX_BYTES).event == from_bytes.event
        assert text == from_bytes.text


class TestEnvelope:
    def test_header_fields(self) -> None:
        """The header names the type, versions, category, id, UTC time and chain."""
        envelope = GOOD_ENVELOPES["declared"]

        assert {
            "envelope_version": 1,
            "type": "ToolCheckedOut",
            "schema_version": 1,
            "category": "tools",
            "event_id": EVENT_ID,
            "timestamp": "2024-01-15T09:30:00Z",
            "correlation_id": EVENT_ID,
            "causation_id": None,
        } == {key: value for key, value in envelope.items() if key != "payload"}

    def test_payload_is_the_events_own_json(self) -> None:
        """The payload is the event as JSON, its id and time included."""
        assert {
            "event_id": EVENT_ID,
            "timestamp": "2024-01-15T09:30:00Z",
            "user_id": None,
            "checkout_id": 1,
            "tool_id": 3,
            "checked_out_by": "",
            "project_id": None,
            "due_date": "2024-01-20",
        } == GOOD_ENVELOPES["declared"]["payload"]

    def test_a_class_that_writes_its_own_json_is_sent_and_read_its_way(self) -> None:
        """An event overriding ``model_dump_json`` travels as that method writes it,
        and its handlers' copy is read by its own ``model_validate_json``."""
        event = CodecTestsAliasedJson(tool=3, event_id=EVENT_ID)
        before = CodecTestsAliasedJson.validated_by_own_method

        envelope = seal(event, max_bytes=MAX_BYTES)

        payload = json.loads(envelope.text)["payload"]
        assert json.loads(event.model_dump_json()) == payload
        assert "toolId" in payload
        assert "note" not in payload
        assert before + 1 == CodecTestsAliasedJson.validated_by_own_method
        assert event == envelope.event
        assert event == decode(envelope.text, max_bytes=MAX_BYTES).event

    def test_given_correlation_and_causation_are_carried(self) -> None:
        """Given correlation and causation ids are written and read back."""
        event = ToolCheckedOut(tool_id=3)

        text = encode(
            event,
            correlation_id=CORRELATION_ID,
            causation_id=CAUSE_ID,
            max_bytes=MAX_BYTES,
        )
        envelope = decode(text, max_bytes=MAX_BYTES)

        assert (CORRELATION_ID, CAUSE_ID) == (
            envelope.correlation_id,
            envelope.causation_id,
        )

    def test_decoded_envelope_describes_the_event(self) -> None:
        """The decoded envelope exposes the type, versions, category and ids."""
        envelope = decode(_text(GOOD_ENVELOPES["declared"]), max_bytes=MAX_BYTES)

        assert ("ToolCheckedOut", 1, "tools", EVENT_ID, EVENT_ID, None) == (
            envelope.event_type,
            envelope.schema_version,
            envelope.category,
            envelope.event_id,
            envelope.correlation_id,
            envelope.causation_id,
        )

    def test_keys_in_any_order_decode(self) -> None:
        """An envelope written by another producer, its keys in another order (and
        spaced out), decodes to the same event."""
        envelope = dict(reversed(GOOD_ENVELOPES["declared"].items()))

        decoded = decode(json.dumps(envelope, indent=1), max_bytes=MAX_BYTES)

        assert decode(_text(GOOD_ENVELOPES["declared"]), max_bytes=MAX_BYTES) == (
            replace(decoded, text=_text(GOOD_ENVELOPES["declared"]))
        )

    @pytest.mark.parametrize("layout", ["as encoded", "spaced out"])
    def test_a_second_type_key_is_refused(self, layout: str) -> None:
        """A message whose first "type" names one class and a later one another is
        refused, not read as either."""
        text = encode(ToolCheckedOut(tool_id=7), max_bytes=MAX_BYTES)
        if layout == "spaced out":
            text = json.dumps(json.loads(text), indent=1)
        forged = text.rstrip()[:-1] + ',"type":"ToolReturned"}'

        with pytest.raises(CodecError):
            decode(forged, max_bytes=MAX_BYTES)

    def test_legacy_attributes_travel_in_the_payload(self) -> None:
        """A legacy-style event's assigned attributes are in its payload."""
        payload = GOOD_ENVELOPES["legacy"]["payload"]

        assert {"carrier": "Leather Express", "detail": None} == {
            key: payload[key] for key in ("carrier", "detail")
        }


class TestDecodeRefusals:
    @pytest.mark.parametrize(
        "raw", ["{nope", "", "ToolCheckedOut", '{"type": "ToolCheckedOut"']
    )
    def test_non_json_is_malformed(self, raw: str) -> None:
        """Text that is not JSON is a MalformedEnvelopeError carrying the text."""
        error = _refused(
            raw, MalformedEnvelopeError, "malformed", "message is not JSON"
        )

        assert raw == error.raw

    @pytest.mark.parametrize(
        "event",
        [ToolCheckedOut(tool_id=7), CodecTestsHideShipped("Leather Express")],
        ids=["declared", "legacy"],
    )
    @pytest.mark.parametrize("cut", ["truncated", "trailing garbage"])
    def test_an_encoded_envelope_broken_afterwards_is_malformed(
        self, event: DomainEvent, cut: str
    ) -> None:
        """An envelope whose start is as encode writes it (the type is read from
        there) but whose text is broken further on is refused as not JSON."""
        text = encode(event, max_bytes=MAX_BYTES)
        raw = text[:120] if cut == "truncated" else text + "}garbage"

        _refused(raw, MalformedEnvelopeError, "malformed", "not JSON")

    @pytest.mark.parametrize(
        "event",
        [ToolCheckedOut(tool_id=7), CodecTestsHideShipped("Leather Express")],
        ids=["declared", "legacy"],
    )
    def test_json_nested_too_deeply_is_malformed(self, event: DomainEvent) -> None:
        """Nesting that would overflow a recursive parser (well under the size cap)
        is refused, not a RecursionError."""
        text = encode(event, max_bytes=MAX_BYTES)
        deep = "[" * 100_000 + "]" * 100_000
        raw = text.replace('"envelope_version":1,', f'"envelope_version":1,"x":{deep},')

        with pytest.raises(CodecError):
            decode(raw, max_bytes=MAX_BYTES)

    def test_a_lone_surrogate_in_a_large_envelope_is_refused(self) -> None:
        """A str too long to size by its length alone, holding a lone surrogate (it
        cannot be written as UTF-8), is refused, not a UnicodeEncodeError."""
        text = encode(ToolCheckedOut(tool_id=7), max_bytes=MAX_BYTES)
        raw = text[:-1] + ',"note":"' + "x" * 300_000 + "\ud800" + '"}'

        with pytest.raises(CodecError):
            decode(raw, max_bytes=MAX_BYTES)

    def test_non_utf8_bytes_are_malformed(self) -> None:
        """Bytes that are not UTF-8 text are a MalformedEnvelopeError."""
        _refused(b"\xff\xfe\x00", MalformedEnvelopeError, "malformed", "not JSON")

    @pytest.mark.parametrize(
        ("raw", "kind"),
        [
            ("[1, 2]", "list"),
            ('"envelope"', "str"),
            ("42", "int"),
            ("null", "NoneType"),
        ],
    )
    def test_json_that_is_not_an_object_is_malformed(self, raw: str, kind: str) -> None:
        """A JSON value that is not an object is a MalformedEnvelopeError."""
        error = _refused(
            raw,
            MalformedEnvelopeError,
            "malformed",
            f"envelope must be a JSON object, got {kind}",
        )

        assert raw == error.raw

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    @pytest.mark.parametrize("field", HEADER_FIELDS)
    def test_missing_header_field_is_malformed(self, kind: str, field: str) -> None:
        """An envelope without one of its fields is a MalformedEnvelopeError."""
        raw = _without(kind, field)

        error = _refused(
            raw, MalformedEnvelopeError, "malformed", f"envelope has no '{field}' field"
        )

        assert raw == error.raw

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    @pytest.mark.parametrize(
        ("field", "value", "expected"),
        MISTYPED_HEADERS,
        ids=[f"{field}={value!r}" for field, value, _ in MISTYPED_HEADERS],
    )
    def test_mistyped_header_field_is_malformed(
        self, kind: str, field: str, value: object, expected: str
    ) -> None:
        """A header field of the wrong JSON type is a MalformedEnvelopeError."""
        raw = _changed(kind, **{field: value})

        error = _refused(
            raw,
            MalformedEnvelopeError,
            "malformed",
            rf"envelope field '{field}' should be {expected}, got ",
        )

        assert raw == error.raw

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    @pytest.mark.parametrize("version", [0, 2])
    def test_other_envelope_version_is_malformed(self, kind: str, version: int) -> None:
        """An envelope version this release does not read is a MalformedEnvelopeError."""
        _refused(
            _changed(kind, envelope_version=version),
            MalformedEnvelopeError,
            "malformed",
            rf"envelope version {version} is not supported "
            r"\(this release reads version 1\)",
        )

    def test_unknown_type_is_refused(self) -> None:
        """A type no imported module registers is an UnknownEventError."""
        raw = _changed("declared", type="ToolLost")

        error = _refused(
            raw,
            UnknownEventError,
            "unknown_type",
            "no event class is registered under the name 'ToolLost'",
        )

        assert raw == error.raw

    @pytest.mark.parametrize(
        "name",
        [
            "DomainEvent",
            "CatalogueEvent",
            "ToolEvent",
            "CodecTestsDyeingEvent",
            "Settings",
            "builtins.dict",
            "os.system",
        ],
    )
    def test_unregistered_classes_are_never_instantiated(self, name: str) -> None:
        """Abstract bases and arbitrary class names are unknown types, never built."""
        _refused(
            _changed("declared", type=name),
            UnknownEventError,
            "unknown_type",
            f"no event class is registered under the name '{name}'",
        )

    @pytest.mark.parametrize(
        ("changes", "match"),
        [
            ({"tool_id": "abc"}, r"tool_id: Input should be a valid integer"),
            ({"due_date": "next tuesday"}, r"due_date: Value error, expected an ISO"),
            ({"colour": "tan"}, r"colour: Extra inputs are not permitted"),
        ],
        ids=["wrong-type", "bad-date", "unknown-field"],
    )
    def test_invalid_payload_names_the_field(
        self, changes: dict[str, object], match: str
    ) -> None:
        """A payload that fails validation is a PayloadValidationError naming the field."""
        envelope = GOOD_ENVELOPES["declared"]
        raw = _changed("declared", payload={**envelope["payload"], **changes})

        error = _refused(
            raw,
            PayloadValidationError,
            "invalid_payload",
            rf"payload is not a valid ToolCheckedOut: {match}",
        )

        assert raw == error.raw

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    def test_invalid_timestamp_names_the_field(self, kind: str) -> None:
        """A payload timestamp that is not a date-time is a PayloadValidationError
        naming it."""
        payload = {**GOOD_ENVELOPES[kind]["payload"], "timestamp": "yesterday"}
        _refused(
            _changed(kind, payload=payload),
            PayloadValidationError,
            "invalid_payload",
            r"payload is not a valid \w+: timestamp: Input should be a valid datetime",
        )

    @pytest.mark.parametrize("kind", GOOD_ENVELOPES)
    @pytest.mark.parametrize("field", ["event_id", "timestamp"])
    def test_a_header_that_contradicts_its_payload_is_malformed(
        self, kind: str, field: str
    ) -> None:
        """The header's id and time must be the payload's: otherwise malformed."""
        other = {"event_id": CAUSE_ID, "timestamp": "2024-01-16T09:30:00Z"}[field]
        _refused(
            _changed(kind, **{field: other}),
            MalformedEnvelopeError,
            "malformed",
            "does not match its payload|differs from the payload",
        )

    @pytest.mark.parametrize(
        "raw",
        [42, None, {"type": "ToolCheckedOut"}, bytearray(b"{}")],
        ids=["int", "none", "dict", "bytearray"],
    )
    def test_non_text_argument_is_malformed(self, raw: object) -> None:
        """Anything but str or bytes is a MalformedEnvelopeError, not a crash."""
        error = _refused(
            raw,
            MalformedEnvelopeError,
            "malformed",
            rf"envelope must be JSON text, got a {type(raw).__name__}",
        )

        assert repr(raw) == error.raw


class TestSizeCap:
    def test_envelope_over_the_cap_is_refused(self) -> None:
        """An envelope longer than max_bytes is an EnvelopeTooLargeError."""
        raw = _text(GOOD_ENVELOPES["declared"])

        with pytest.raises(
            EnvelopeTooLargeError,
            match=rf"envelope is {len(raw)} bytes, over the 256-byte cap",
        ) as caught:
            decode(raw, max_bytes=256)

        assert "too_large" == caught.value.reason

    def test_cap_counts_utf8_bytes_not_characters(self) -> None:
        """600 three-byte characters (1800 bytes) exceed a 1024-byte cap."""
        with pytest.raises(EnvelopeTooLargeError, match=r"envelope is 1800 bytes"):
            decode("€" * 600, max_bytes=1024)

    def test_envelope_at_the_cap_is_decoded(self) -> None:
        """An envelope exactly max_bytes long is accepted."""
        raw = _text(GOOD_ENVELOPES["declared"])

        assert EVENT_ID == decode(raw, max_bytes=len(raw)).event_id

    def test_encode_refuses_an_event_over_the_cap(self) -> None:
        """encode() refuses an event whose envelope exceeds max_bytes."""
        with pytest.raises(EnvelopeTooLargeError, match=r"over the 1024-byte cap"):
            encode(CodecTestsHideOrdered(swatch=b"x" * 2000), max_bytes=1024)


class TestRawPreview:
    def test_long_raw_input_is_truncated_with_a_marker(self) -> None:
        """An error keeps the first 512 characters and says how many it dropped."""
        raw = "{" + "x" * 1999

        error = _refused(raw, MalformedEnvelopeError, "malformed", "not JSON")

        assert raw[:512] + "... [1488 more characters]" == error.raw

    def test_too_large_input_is_truncated_too(self) -> None:
        """The raw input of a too-large envelope is truncated the same way."""
        with pytest.raises(EnvelopeTooLargeError) as caught:
            decode("y" * 5000, max_bytes=1024)

        assert "y" * 512 + "... [4488 more characters]" == caught.value.raw


class TestSchemaVersion:
    @pytest.mark.parametrize(
        "envelope",
        [
            _envelope(CodecTestsVersioned(vat_id="DE123")),
            _envelope(CodecTestsLegacyVersioned("DE123")),
        ],
        ids=["declared", "legacy"],
    )
    def test_newer_schema_version_is_refused(self, envelope: dict[str, Any]) -> None:
        """A payload newer than the class knows is a PayloadValidationError."""
        _refused(
            _text({**envelope, "schema_version": 3}),
            PayloadValidationError,
            "invalid_payload",
            r"schema version 3 is newer than this process knows \(2\); "
            r"deploy the new event definition, then replay",
        )

    @pytest.mark.parametrize("version", [1, 2])
    def test_known_or_older_schema_version_is_read(self, version: int) -> None:
        """A payload at the class's version or older decodes."""
        envelope = _envelope(CodecTestsVersioned(vat_id="DE123"))

        decoded = decode(
            _text({**envelope, "schema_version": version}), max_bytes=MAX_BYTES
        )

        assert (version, "DE123") == (decoded.schema_version, decoded.event.vat_id)


class TestTypeFidelity:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("price", Decimal("149.90")),
            ("supplier_ref", UUID("12345678-1234-5678-1234-567812345678")),
            ("ordered_at", datetime(2026, 3, 12, 9, 30, tzinfo=PLUS_TWO)),
            ("delivery_day", date(2026, 3, 20)),
            ("finish", Finish.BURNISHED),
            ("swatch", b"\x00\xffhide\xfe"),
            ("colours", {"tan", "oxblood"}),
            ("sizes", frozenset({"A4", "A5"})),
            ("dimensions_mm", (300, 210, 2)),
        ],
        ids=lambda value: type(value).__name__ if not isinstance(value, str) else None,
    )
    def test_value_comes_back_as_the_same_type_and_value(
        self, field: str, value: object
    ) -> None:
        """A declared field's value decodes to an equal value of the same type."""
        decoded = getattr(_round_trip(CodecTestsHideOrdered(**{field: value})), field)

        assert (type(value), value) == (type(decoded), decoded)

    def test_decimal_keeps_its_digits(self) -> None:
        """A Decimal keeps its exponent: 149.90 does not come back as 149.9."""
        decoded = _round_trip(CodecTestsHideOrdered(price=Decimal("149.90")))

        assert "149.90" == str(decoded.price)

    def test_datetime_keeps_its_offset(self) -> None:
        """A datetime with a +02:00 offset comes back with that offset."""
        ordered_at = datetime(2026, 3, 12, 9, 30, tzinfo=PLUS_TWO)

        decoded = _round_trip(CodecTestsHideOrdered(ordered_at=ordered_at))

        assert timedelta(hours=2) == decoded.ordered_at.utcoffset()

    def test_enum_member_is_the_member(self) -> None:
        """An Enum field decodes to the very member, not its value."""
        decoded = _round_trip(CodecTestsHideOrdered(finish=Finish.BURNISHED))

        assert decoded.finish is Finish.BURNISHED

    def test_bytes_travel_as_base64_text(self) -> None:
        """Bytes, even not UTF-8, are carried as base64 text in the payload."""
        swatch = b"\x00\xff\xfe\xfa hide"

        carried = _envelope(CodecTestsHideOrdered(swatch=swatch))["payload"]["swatch"]

        assert swatch == base64.urlsafe_b64decode(carried)

    def test_declared_values_pass_ensure_lossless(self) -> None:
        """An event with every non-JSON type declared passes ensure_lossless."""
        event = CodecTestsHideOrdered(
            price=Decimal("149.90"),
            supplier_ref=UUID("12345678-1234-5678-1234-567812345678"),
            ordered_at=datetime(2026, 3, 12, 9, 30, tzinfo=PLUS_TWO),
            delivery_day=date(2026, 3, 20),
            finish=Finish.BURNISHED,
            swatch=b"\x00\xff",
            colours={"tan"},
            sizes=frozenset({"A4"}),
            dimensions_mm=(300, 210),
        )

        ensure_lossless(event, _round_trip(event))

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_floats_are_refused_at_construction(self, value: float) -> None:
        """NaN and infinities, which JSON cannot carry, are refused when built."""
        with pytest.raises(
            ValidationError, match=r"\nthickness_mm\n  Input should be a finite number"
        ):
            CodecTestsHideOrdered(thickness_mm=value)


LOSSY_VALUES = [
    pytest.param(Decimal("149.90"), "Decimal", "str", id="decimal"),
    pytest.param((300, 210), "tuple", "list", id="tuple"),
    pytest.param({"tan"}, "set", "list", id="set"),
    pytest.param(Dye.OXBLOOD, "Dye", "str", id="str-enum"),
]


class TestLossyValues:
    @pytest.mark.parametrize("field", ["anything", "thing"])
    @pytest.mark.parametrize(("value", "before", "after"), LOSSY_VALUES)
    def test_ensure_lossless_refuses_a_changed_value(
        self, field: str, value: object, before: str, after: str
    ) -> None:
        """A value that JSON turns into another type is refused, naming both types."""
        event = CodecTestsLooseNote(**{field: value})

        with pytest.raises(
            LossyEventError,
            match=rf"CodecTestsLooseNote\.{field} holds .* \({before}\) but would "
            rf"arrive as .* \({after}\)\. Declare the field with its exact type",
        ):
            ensure_lossless(event, _round_trip(event))

    @pytest.mark.parametrize("field", ["anything", "thing"])
    @pytest.mark.parametrize(("value", "before", "after"), LOSSY_VALUES)
    def test_publish_refuses_a_changed_value(
        self, bus: EventBus, field: str, value: object, before: str, after: str
    ) -> None:
        """An eager publish refuses the event and runs no handler."""
        seen: list[DomainEvent] = []

        def on_note(event: CodecTestsLooseNote) -> None:
            seen.append(event)

        bus.subscribe(CodecTestsLooseNote, on_note)

        with pytest.raises(
            LossyEventError, match=rf"\.{field} holds .* \({before}\) .* \({after}\)"
        ):
            bus.publish(CodecTestsLooseNote(**{field: value}))

        assert [] == seen

    @pytest.mark.parametrize("place", ["nested model", "list of nested models"])
    @pytest.mark.parametrize(("value", "before", "after"), LOSSY_VALUES)
    def test_changed_values_in_nested_models_are_refused(
        self, place: str, value: object, before: str, after: str
    ) -> None:
        """A loose field inside a nested model is looked at as strictly as one at
        the top: a value that would change type is refused."""
        detail = CodecTestsLooseDetail(value=value)
        if place == "nested model":
            event = CodecTestsNestedNote(detail=detail)
        else:
            event = CodecTestsNestedNote(details=[CodecTestsLooseDetail(), detail])

        with pytest.raises(LossyEventError, match="CodecTestsNestedNote"):
            ensure_lossless(event, _round_trip(event))

    @pytest.mark.parametrize(
        "value", [7, 2.5, "tan", True, None, [1, "a"], {"size": "A4", "ids": [1, 2]}]
    )
    def test_json_values_in_loose_fields_are_accepted(
        self, bus: EventBus, value: object
    ) -> None:
        """Plain JSON values in an ``Any`` field publish and arrive unchanged."""
        seen: list[CodecTestsLooseNote] = []

        def on_note(event: CodecTestsLooseNote) -> None:
            seen.append(event)

        bus.subscribe(CodecTestsLooseNote, on_note)

        bus.publish(CodecTestsLooseNote(anything=value))

        [received] = seen
        assert (type(value), value) == (type(received.anything), received.anything)

    @pytest.mark.parametrize(
        ("detail", "before"),
        [
            (datetime(2024, 1, 15, 9, 30), "datetime"),
            (Finish.NATURAL, "Finish"),
            (Decimal("2.50"), "Decimal"),
        ],
        ids=["datetime", "enum-member", "decimal"],
    )
    def test_legacy_attribute_that_is_not_json_is_refused_at_publish(
        self, bus: EventBus, detail: object, before: str
    ) -> None:
        """A legacy-style event holding a non-JSON attribute fails publish."""
        with pytest.raises(
            LossyEventError,
            match=rf"CodecTestsHideShipped\.detail holds .* \({before}\) but would "
            r"arrive as .* \(str\)",
        ):
            bus.publish(CodecTestsHideShipped("Leather Express", detail))


class TestPeekHeader:
    @pytest.mark.parametrize(
        "raw", ["{nope", "", "[1, 2]", '"text"', b"\xff\xfe"], ids=repr
    )
    def test_unreadable_input_gives_no_fields(self, raw: str | bytes) -> None:
        """Input that is not a JSON object yields an empty header."""
        assert {} == peek_header(raw)

    def test_readable_fields_of_a_broken_envelope(self) -> None:
        """The header fields present are returned, without payload or unknown keys."""
        raw = json.dumps(
            {"type": "ToolLost", "event_id": EVENT_ID, "payload": [], "junk": 1}
        )

        assert {"type": "ToolLost", "event_id": EVENT_ID} == peek_header(raw)

    def test_full_header_of_an_invalid_payload(self) -> None:
        """An envelope whose payload is invalid still shows its whole header."""
        envelope = GOOD_ENVELOPES["declared"]
        raw = _text({**envelope, "payload": {"tool_id": "abc"}})

        expected = {key: value for key, value in envelope.items() if key != "payload"}
        assert expected == peek_header(raw)


class TestBuildEvent:
    def test_payload_is_read_as_json(self) -> None:
        """JSON values become the declared types: text to Decimal, base64 to bytes."""
        event = build_event(
            CodecTestsHideOrdered,
            {
                "price": "149.90",
                "ordered_at": "2026-03-12T09:30:00+02:00",
                "finish": "burnished",
                "swatch": base64.b64encode(b"\x00\xff").decode(),
                "colours": ["tan"],
                "dimensions_mm": [300, 210],
            },
        )

        assert (
            Decimal("149.90"),
            datetime(2026, 3, 12, 9, 30, tzinfo=PLUS_TWO),
            Finish.BURNISHED,
            b"\x00\xff",
            {"tan"},
            (300, 210),
        ) == (
            event.price,
            event.ordered_at,
            event.finish,
            event.swatch,
            event.colours,
            event.dimensions_mm,
        )

    def test_bytes_must_be_base64_text(self) -> None:
        """Text that is not base64 is refused for a bytes field."""
        with pytest.raises(
            ValidationError, match=r"\nswatch\n  Data should be valid base64"
        ):
            build_event(CodecTestsHideOrdered, {"swatch": "not base64!"})

    def test_invalid_payload_names_the_field(self) -> None:
        """A payload value of the wrong type is a ValidationError naming the field."""
        with pytest.raises(ValidationError, match=r"\nprice\n"):
            build_event(CodecTestsHideOrdered, {"price": "a lot"})

    def test_legacy_class_is_built_from_its_attributes(self) -> None:
        """A legacy-style class is built from the payload without its __init__."""
        calls_before = CodecTestsHideShipped.init_calls

        event = build_event(
            CodecTestsHideShipped, {"carrier": "Leather Express", "detail": [1]}
        )

        assert calls_before == CodecTestsHideShipped.init_calls
        assert CodecTestsHideShipped is type(event)
        assert ("Leather Express", [1]) == (event.carrier, event.detail)
