"""Connection errors that say which server could not be reached, and at which URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url


@contextmanager
def reaching(what: str, url: str) -> Iterator[None]:
    """Raise a failure to reach ``url`` inside the block, a timeout included, again as
    ``cannot reach the <what> at <url>: <error>``, the URL's password masked.

    Redis failures become ``redis.ConnectionError`` and kombu's stay
    ``OperationalError``: one error type per failure, whichever server it was.
    """
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise redis.ConnectionError(
            f"cannot reach the {what} at {maybe_sanitize_url(url)}: {error}"
        ) from error
    except OperationalError as error:
        raise OperationalError(
            f"cannot reach the {what} at {maybe_sanitize_url(url)}: {error}"
        ) from error
