"""Examples of hidesync-events in an application; see :mod:`examples.fastapi_app`."""
