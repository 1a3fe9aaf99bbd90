"""Transports: how a published envelope reaches the delivery path.

:class:`EagerTransport` delivers in the publishing process; :class:`CeleryTransport`
sends the envelope to its category's Celery queue for a worker to deliver.
"""

from hidesync_events.transports.base import Receipt, Transport
from hidesync_events.transports.celery import CeleryTransport
from hidesync_events.transports.eager import EagerTransport

__all__ = ["CeleryTransport", "EagerTransport", "Receipt", "Transport"]
