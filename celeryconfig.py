"""Celery settings of HideSync's event workers, read from ``HIDESYNC_EVENTS_*``.

Nothing here is decided in this file: queue names come from the category table and
every value from :class:`hidesync_events.settings.Settings`, through the same function
the ``workers`` app is configured with. Use it from your own Celery app with
``app.config_from_object("celeryconfig")``.
"""

from hidesync_events.celery_app import celery_config
from hidesync_events.settings import get_settings

globals().update(celery_config(get_settings()))
