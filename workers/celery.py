"""The Celery app of the worker fleet, found by ``celery -A workers``.

Importing this module switches the process to Celery mode (the handlers the worker
runs publish their own events through the broker too), imports the handler modules,
and refuses settings under which Redis would deliver a message twice.
"""

from hidesync_events import (
    ConfigurationError,
    configure,
    get_settings,
    global_event_bus,
)
from hidesync_events.transports import CeleryTransport
from hidesync_events.worker import check_fleet_settings, import_handler_modules

if get_settings().mode != "celery":
    configure(**{**get_settings().model_dump(), "mode": "celery"})

try:
    import_handler_modules(get_settings())
except ImportError as error:
    # `celery -A workers` reads any ImportError raised while importing this module
    # as "no app here" and hides it: say which handler module failed, and keep its
    # traceback (chained below).
    raise ConfigurationError(
        f"a handler module of HIDESYNC_EVENTS_HANDLER_MODULES failed to import: "
        f"{type(error).__name__}: {error}"
    ) from error
_transport = global_event_bus.transport
assert isinstance(_transport, CeleryTransport)
check_fleet_settings(_transport.runtime.settings, global_event_bus.registry)

#: The fleet's Celery app, configured from the settings and the category table.
app = _transport.app

__all__ = ["app"]
