"""Nothing arrives silently changed: comparing an event with its decoded copy.

Every published event is encoded and decoded before any handler sees it; this module
decides whether the copy is the same event. For most classes that is cheap: when every
field is declared with a type that pydantic rebuilds exactly from JSON (str, int,
datetime, Decimal, an enum, a model whose own fields are such...), equal values are the
proof. A field that can hold anything (``Any``, ``object``, ``JsonValue``, a union of
several types), at any depth of nested models, or attributes assigned in a custom
``__init__`` need a stricter look: ``1 == True == 1.0`` and a str enum equals its
value, but a handler receiving the other type would see a changed event.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, JsonValue

from hidesync_events.errors import LossyEventError
from hidesync_events.event import DomainEvent

#: Field types that accept values of many types, which JSON may not tell apart.
_LOOSE = (Any, object, JsonValue)


def ensure_lossless(original: DomainEvent, decoded: DomainEvent) -> None:
    """Raise :class:`LossyEventError` unless ``decoded`` has the same types and values."""
    if not _needs_strict_look(type(original)):
        if original.__dict__ == decoded.__dict__:
            return
    elif _same(original.__dict__, decoded.__dict__) and _same(
        original.__pydantic_extra__ or {}, decoded.__pydantic_extra__ or {}
    ):
        return

    raise LossyEventError(_describe_changes(original, decoded))


def _describe_changes(original: DomainEvent, decoded: DomainEvent) -> str:
    name = type(original).__name__
    before = {**original.__dict__, **(original.__pydantic_extra__ or {})}
    after = {**decoded.__dict__, **(decoded.__pydantic_extra__ or {})}
    changed = [key for key, value in before.items() if not _same(value, after.get(key))]
    details = "; ".join(
        f"{name}.{key} holds {before[key]!r} ({type(before[key]).__name__}) but would "
        f"arrive as {after.get(key)!r} ({type(after.get(key)).__name__})"
        for key in changed
    )
    return (
        f"{details}. Declare the field with its exact type (e.g. `amount: Decimal`, "
        "`tags: set[str]`) or convert the value to a JSON type before publishing"
    )


@cache
def _needs_strict_look(event_cls: type[DomainEvent]) -> bool:
    return event_cls.__event_meta__.legacy or _loose_model(event_cls, frozenset())


def _loose_model(model: type[BaseModel], seen: frozenset[type]) -> bool:
    # Nested models count: a loose field anywhere inside changes the event too.
    if model in seen:
        return False

    if model.model_config.get("extra") == "allow":
        return True

    inside = seen | {model}
    return any(_loose(f.annotation, inside) for f in model.model_fields.values())


def _loose(annotation: Any, seen: frozenset[type]) -> bool:
    if annotation in _LOOSE or isinstance(annotation, typing.TypeVar):
        return True

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _loose_model(annotation, seen)

    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        # Two non-None members can trade places on the way back ("1" and 1).
        return len(arguments) > 1 or any(_loose(a, seen) for a in arguments)

    if origin is typing.Annotated:
        return _loose(arguments[0], seen)

    return any(_loose(a, seen) for a in arguments if not isinstance(a, int | str))


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())

    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(_same, a, b))

    if isinstance(a, BaseModel):
        return _same(a.__dict__, b.__dict__) and _same(
            a.__pydantic_extra__ or {}, b.__pydantic_extra__ or {}
        )

    return bool(a == b)
