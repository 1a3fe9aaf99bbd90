"""``DomainEvent``, the base of every event, and the registry of event types by wire name.

An event class is declared once and known by three facts, given as class keywords::

    class InvoiceIssued(DomainEvent, category="billing", event_name="InvoiceIssued"):
        invoice_id: int = 0

* ``event_name``: the stable wire name (default: the class name);
* ``category``: which queue carries it (default: the parent's, ``"default"`` at the root);
* ``schema_version``: the version of its payload shape (default 1).

``abstract=True`` declares a base that is subscribed to but never published itself.

Two styles of subclass are supported. Declared fields are validated by pydantic and an
unknown keyword is an error. The older style, a custom ``__init__`` that calls
``super().__init__()`` and then assigns ``self.x = x``, keeps its assigned attributes as
pydantic extras; such classes are rebuilt on the worker without calling that ``__init__``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, NamedTuple, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from hidesync_events.errors import (
    EventDefinitionError,
    NotAnEventTypeError,
    UnknownEventTypeError,
)

#: The category of application events that do not declare one.
DEFAULT_CATEGORY = "default"

_CATEGORY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")


class EventMeta(NamedTuple):
    """What the wire needs to know about an event class."""

    name: str
    category: str
    schema_version: int
    abstract: bool
    legacy: bool


def new_event_id() -> str:
    """Return a random (version 4) UUID as text."""
    # Formatting 16 random bytes ourselves skips uuid.UUID's validation, which costs
    # more than the randomness on the publish path.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # One documented rule: a naive datetime is taken to be UTC already.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)

    return value.astimezone(UTC)


EventId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class DomainEvent(BaseModel):
    """Base of every event: an id, a UTC timestamp, validation on construction.

    ``event_id`` is UUID text generated when not given. ``timestamp`` is timezone-aware
    UTC; a naive datetime given by the caller is read as UTC, an aware one is converted.
    """

    model_config = ConfigDict(
        extra="forbid",
        # A value assigned after construction is validated as one given to it.
        validate_assignment=True,
        allow_inf_nan=False,
        # bytes travel as base64 text, so any bytes value comes back as it was.
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    __event_meta__: ClassVar[EventMeta] = EventMeta(
        "DomainEvent", DEFAULT_CATEGORY, 1, abstract=True, legacy=False
    )

    event_id: EventId = Field(default_factory=new_event_id)
    timestamp: UtcDatetime = Field(default_factory=utc_now)

    def __init_subclass__(
        cls,
        *,
        event_name: str | None = None,
        category: str | None = None,
        schema_version: int = 1,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        # The event keywords are read again in __pydantic_init_subclass__, once pydantic
        # has built the class; here they only must not reach object.__init_subclass__.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        event_name: str | None = None,
        category: str | None = None,
        schema_version: int = 1,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)

        legacy = bool(cls.__pydantic_custom_init__)
        if legacy and cls.model_config.get("extra") != "allow":
            # Attributes assigned in a custom __init__ are kept as pydantic extras.
            cls.model_config["extra"] = "allow"
            cls.model_rebuild(force=True)

        parent = cls.__event_meta__
        if category is not None and not _CATEGORY_PATTERN.fullmatch(category):
            raise EventDefinitionError(
                f"category {category!r} of {_qualified(cls)} is not a valid queue suffix; "
                "use lower-case letters, digits and underscores, e.g. category='billing'"
            )

        cls.__event_meta__ = EventMeta(
            name=event_name or cls.__name__,
            category=category or parent.category,
            schema_version=schema_version,
            abstract=abstract,
            legacy=legacy,
        )
        if not abstract:
            _register(cls)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain JSON values plus an ``event_type`` key."""
        data = self.model_dump(mode="json")
        data["event_type"] = self.__event_meta__.name
        return data

    def to_json(self) -> str:
        """Return the event's envelope, the JSON it travels as; :meth:`from_json`
        reads it back as the same event.
        """
        from hidesync_events.codec import encode  # codec imports this module

        return encode(self, max_bytes=sys.maxsize)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Rebuild an event from :meth:`to_json` text (an envelope).

        On ``DomainEvent`` (or any base) the envelope's type picks the class; on a
        concrete class the envelope must hold that class or a subclass of it.
        """
        from hidesync_events.codec import decode

        event = decode(text, max_bytes=sys.maxsize).event
        if not isinstance(event, cls):
            raise TypeError(
                f"the envelope holds a {type(event).__name__}, not a {cls.__name__}; "
                "call DomainEvent.from_json() to accept any event type"
            )
        return event


# -- the registry of event types by wire name ------------------------------------------------

_types_lock = threading.Lock()
_types_by_name: dict[str, type[DomainEvent]] = {}


def _register(cls: type[DomainEvent]) -> None:
    name = cls.__event_meta__.name
    with _types_lock:
        existing = _types_by_name.get(name)
        if existing is not None and not _is_redefinition(existing, cls):
            raise EventDefinitionError(
                f"event name {name!r} is already used by {_qualified(existing)}; "
                f"{_qualified(cls)} cannot use it too. Import the one class from one "
                f"module, or give this one its own wire name: "
                f"class {cls.__name__}(..., event_name='...')"
            )

        _types_by_name[name] = cls


def _is_redefinition(existing: type, new: type) -> bool:
    # The same class defined again by the same module (a reload, a re-run cell).
    return (existing.__module__, existing.__qualname__) == (
        new.__module__,
        new.__qualname__,
    )


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def event_type_named(name: str) -> type[DomainEvent]:
    """Return the event class registered under wire name ``name``."""
    try:
        return _types_by_name[name]
    except KeyError:
        raise UnknownEventTypeError(
            f"no event class is registered under the name {name!r}; pass an event "
            f"class, or import the module that defines {name!r} first"
        ) from None


def registered_event_types() -> Mapping[str, type[DomainEvent]]:
    """Return a read-only view of every registered event class by wire name."""
    return MappingProxyType(_types_by_name)


def wire_name(event: DomainEvent | type[DomainEvent]) -> str:
    """Return the wire name of an event or event class."""
    return event.__event_meta__.name


def category_of(event: DomainEvent | type[DomainEvent]) -> str:
    """Return the category (and so the queue) of an event or event class."""
    return event.__event_meta__.category


def as_event_type(value: object) -> type[DomainEvent]:
    """Accept an event class or a registered wire name; refuse anything else clearly."""
    if isinstance(value, str):
        return event_type_named(value)

    if isinstance(value, type) and issubclass(value, DomainEvent):
        return value

    raise NotAnEventTypeError(
        f"expected a DomainEvent subclass or a registered event name, got {value!r}; "
        f"pass the event class, e.g. subscribe(WorkflowStartedEvent, handler)"
    )
