"""The package's exceptions: every one a user may catch is exported by the package."""

from __future__ import annotations

import inspect

import pytest

import hidesync_events
from hidesync_events import errors

ERRORS = [
    name
    for name, value in vars(errors).items()
    if inspect.isclass(value)
    and issubclass(value, Exception)
    and value.__module__ == errors.__name__
    and not name.startswith("_")
]


def test_the_module_defines_errors() -> None:
    """The list below is read from the module: it must not come out empty."""
    assert {"BrokerUnavailableError", "SpoolFullError", "CodecError"} <= set(ERRORS)


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_exported(name: str) -> None:
    """``from hidesync_events import <Error>`` works for each error the docs name."""
    assert name in hidesync_events.__all__
    assert getattr(hidesync_events, name) is getattr(errors, name)
