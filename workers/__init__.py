"""HideSync's worker fleet and reference handlers.

    celery -A workers worker -Q hidesync.events.tools,hidesync.events.steps

``celery -A workers`` finds the app in :mod:`workers.celery`, which puts the worker
process in Celery mode (keeping every other ``HIDESYNC_EVENTS_*`` setting). Workers
import the handler modules of ``HIDESYNC_EVENTS_HANDLER_MODULES`` when they start;
the default is HideSync's reference handlers, :mod:`workers.handlers`. Importing this
package itself changes nothing.
"""
