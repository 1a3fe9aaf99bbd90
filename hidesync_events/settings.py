"""One settings object, read from keyword arguments or ``HIDESYNC_EVENTS_*`` variables.

``configure(...)`` replaces the process-wide settings (keyword arguments win over the
environment), ``get_settings()`` returns them, ``reset_settings()`` goes back to what the
environment says. ``celeryconfig.py`` and the worker read these settings; nothing else
keeps a copy of them.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from kombu.transport import TRANSPORT_ALIASES
from kombu.utils.url import maybe_sanitize_url
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hidesync_events.errors import ConfigurationError

logger = logging.getLogger("hidesync.events.settings")

Mode = Literal["eager", "celery"]

#: The prefix of every variable hidesync-events reads.
VARIABLE_PREFIX = "HIDESYNC_EVENTS_"
#: The log level of the command line (``--log-level``), read by it, not by Settings.
LOG_LEVEL_VARIABLE = f"{VARIABLE_PREFIX}LOG_LEVEL"

#: Where Celery mode sends events when no broker URL is configured.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Everything hidesync-events can be told; each field maps to ``HIDESYNC_EVENTS_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=VARIABLE_PREFIX, frozen=True, extra="forbid"
    )

    mode: Mode = "eager"
    broker_url: str = DEFAULT_BROKER_URL
    #: Where dead letters, completed handler runs, metrics and the reference handlers'
    #: state live in Celery mode. Defaults to the broker when it is Redis; must be a
    #: ``redis://`` URL otherwise. Eager mode always keeps them in memory.
    state_url: str | None = None
    key_prefix: str = "hidesync:events"
    queue_prefix: str = "hidesync.events"

    handler_modules: Annotated[tuple[str, ...], NoDecode] = ("workers.handlers",)

    retry_max_attempts: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    retry_max_backoff_s: float = Field(default=300.0, ge=0, allow_inf_nan=False)
    retry_jitter: bool = True

    slow_handler_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    max_envelope_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: How long a completed (event, handler) pair is remembered to skip a redelivery.
    completion_retention_s: int = Field(default=7 * 24 * 3600, ge=1)
    #: How long a message may stay unacknowledged on Redis before it is delivered again.
    visibility_timeout_s: int = Field(default=3600, ge=1)
    #: RabbitMQ's ``consumer_timeout`` (a server setting, 30 minutes by default): how
    #: long it lets a delivery stay unacknowledged before it closes the channel. Set it
    #: to the server's value.
    amqp_consumer_timeout_s: int = Field(default=1800, ge=1)
    #: The longest a handler may run before it is stopped and counted as failed.
    handler_time_limit_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    #: How many times a message may be delivered without finishing (worker crashes)
    #: before it is dead-lettered as worker-lost.
    max_deliveries: int = Field(default=5, ge=1)

    #: How long ``publish`` may try to reach the broker before spooling the event.
    publish_timeout_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    #: Keep events the broker could not take in a local file, sent on when it is back.
    spool_enabled: bool = True
    spool_dir: Path = Field(default_factory=lambda: _cache_dir() / "spool")
    spool_max_events: int = Field(default=100_000, ge=1)

    #: Where a worker serves Prometheus metrics; None (the default) serves none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: The address that server binds: loopback unless told otherwise (a container
    #: that Prometheus scrapes from outside sets 0.0.0.0).
    metrics_host: str = "127.0.0.1"
    #: OpenTelemetry spans for publish and handle (needs the ``otel`` extra).
    tracing: bool = False

    @field_validator("handler_modules", mode="before")
    @classmethod
    def _split_module_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())

        return value

    @field_validator("key_prefix", "queue_prefix")
    @classmethod
    def _usable_prefix(cls, prefix: str, info: ValidationInfo) -> str:
        # Empty, every key and queue would start with a bare separator (":metrics",
        # ".tools") and meet another application's; a space, often a stray one from
        # an env file, would give this process a fleet of its own, unseen.
        if prefix and not any(char.isspace() for char in prefix):
            return prefix

        assert info.field_name is not None
        raise PydanticCustomError(
            "prefix_unusable",
            "must be a name without spaces, such as '{example}'",
            {"example": cls.model_fields[info.field_name].default},
        )

    @field_validator("broker_url")
    @classmethod
    def _names_a_kombu_transport(cls, url: str) -> str:
        # Checked in eager mode too, as every setting's own value is: a URL no
        # transport can open is wrong wherever it is read.
        if "://" not in url:
            # kombu reads a URL without a scheme as the host name of an AMQP broker
            # (none: localhost), so "redis//host" would be looked up as a host.
            if any(char == "/" or char.isspace() for char in url):
                raise PydanticCustomError(
                    "broker_url_not_a_url",
                    "not a broker URL; write one such as redis://127.0.0.1:6379/0 "
                    "or amqp://guest:guest@127.0.0.1:5672//",
                )
            return url

        transport = _transport_of(url)
        if transport not in TRANSPORT_ALIASES:
            raise PydanticCustomError(
                "broker_url_unknown_transport",
                "'{transport}' is not a broker kombu knows; use a redis://, amqp:// "
                "or other kombu transport URL",
                {"transport": transport},
            )

        return url

    @field_validator("state_url")
    @classmethod
    def _opens_with_redis_py(cls, url: str | None) -> str | None:
        # Empty is unset, as a compose file's "${STATE_URL:-}" leaves it; memory://
        # is the in-process store of tests.
        if not url or opens_with_redis_py(url) or url.startswith("memory://"):
            return url

        raise PydanticCustomError(
            "state_url_not_redis",
            "the state store is Redis; use a redis://, rediss:// or unix:// URL",
        )

    @property
    def hard_time_limit_s(self) -> float:
        """When a delivery still running is stopped by replacing its worker process:
        the handler time limit plus a grace of as long again, at most 30 s."""
        return self.handler_time_limit_s + min(30.0, self.handler_time_limit_s)

    @property
    def broker_kind(self) -> Literal["redis", "amqp"] | None:
        """Which broker the URL names, as kombu reads it ("transport://...",
        "transport+driver://...", and without "://" its default, AMQP); None for
        another transport (memory://, for tests)."""
        transport = _transport_of(self.broker_url)
        if transport in _REDIS_TRANSPORTS:
            return "redis"
        if transport in _AMQP_TRANSPORTS:
            return "amqp"
        return None

    @property
    def unacknowledged_limit(self) -> UnacknowledgedLimit | None:
        """How long the broker lets a message stay unacknowledged; None for a broker
        without such a limit."""
        kind = self.broker_kind
        if kind == "redis":
            return UnacknowledgedLimit(
                "the Redis visibility timeout",
                "HIDESYNC_EVENTS_VISIBILITY_TIMEOUT_S",
                self.visibility_timeout_s,
            )
        if kind == "amqp":
            return UnacknowledgedLimit(
                "RabbitMQ's consumer timeout",
                "HIDESYNC_EVENTS_AMQP_CONSUMER_TIMEOUT_S",
                self.amqp_consumer_timeout_s,
            )
        return None

    @property
    def longest_retry_delay_s(self) -> float:
        """The longest a retry may wait. A worker holds a delayed retry unacknowledged
        for its whole delay, then runs it for up to the hard time limit, all within
        the broker's limit; and never longer than :data:`LONGEST_RETRY_S`."""
        limit = self.unacknowledged_limit
        if limit is None:
            return LONGEST_RETRY_S
        within_limit_s = max(0.0, limit.seconds - self.hard_time_limit_s)
        return min(within_limit_s, LONGEST_RETRY_S)

    @property
    def resolved_state_url(self) -> str:
        """The state store URL for Celery mode, derived from the broker when unset."""
        if self.state_url:
            return self.state_url

        if opens_with_redis_py(self.broker_url):
            return self.broker_url

        if self.broker_url.startswith("memory://"):
            return "memory://"

        raise ConfigurationError(
            f"state_url is not set and broker_url {maybe_sanitize_url(self.broker_url)!r} "
            "is not Redis; "
            "set HIDESYNC_EVENTS_STATE_URL to a redis:// URL for dead letters and metrics"
        )


def opens_with_redis_py(url: str) -> bool:
    """Whether redis-py connects to ``url`` as it is (a Sentinel URL is not one)."""
    return url.lower().startswith(("redis://", "rediss://", "unix://"))


def _transport_of(broker_url: str) -> str:
    # As kombu reads it: "transport://...", "transport+driver://...", and without
    # "://" its default, AMQP.
    scheme, found, _ = broker_url.partition("://")
    return scheme.lower().partition("+")[0] if found else "amqp"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hidesync-events"


class UnacknowledgedLimit(NamedTuple):
    """How long a broker lets a message stay unacknowledged, and where that is set."""

    what: str
    variable: str
    seconds: int


#: The settings whose value is a URL: a problem shows it with its password masked.
_URL_SETTINGS = frozenset({"broker_url", "state_url"})

#: kombu's transports for Redis, and redis-py's socket form, by URL scheme.
_REDIS_TRANSPORTS = frozenset({"redis", "rediss", "sentinel", "unix"})
_AMQP_TRANSPORTS = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})

#: The longest a retry waits, whatever the broker: a worker holds it in memory
#: meanwhile, and a longer wait belongs to a scheduler.
LONGEST_RETRY_S = 7 * 24 * 3600.0

_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """Return the process-wide settings, reading the environment on first use."""
    global _current
    current = _current
    if current is not None:
        return current

    with _lock:
        if _current is None:
            _current = _load()
        return _current


def configure(**overrides: Any) -> Settings:
    """Replace the process-wide settings; keyword arguments win over the environment.

    The global event bus follows the new settings from its next publish on.
    """
    global _current
    settings = _load(**overrides)
    with _lock:
        _current = settings
    return settings


def reset_settings() -> Settings:
    """Forget every ``configure()`` call and read the environment again."""
    return configure()


def _load(**overrides: Any) -> Settings:
    _warn_of_unknown_variables()
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(
            f"invalid hidesync-events settings: {_problems(error)}"
        ) from error


#: Unknown variables already named: once per process is enough.
_named_unknown: set[str] = set()


def _warn_of_unknown_variables() -> None:
    # A misspelt variable would be ignored without a word, and its setting left at
    # its default: name it, and the setting it may have meant.
    known = {name.upper() for name in Settings.model_fields}
    known.add(LOG_LEVEL_VARIABLE.removeprefix(VARIABLE_PREFIX))
    for variable in sorted(os.environ):
        name = variable.upper()
        if not name.startswith(VARIABLE_PREFIX) or name in _named_unknown:
            continue
        setting = name.removeprefix(VARIABLE_PREFIX)
        if setting in known:
            continue

        _named_unknown.add(name)
        close = difflib.get_close_matches(setting, known, n=1, cutoff=0.75)
        logger.warning(
            "%s is not a hidesync-events setting and is ignored%s",
            variable,
            f" (did you mean {VARIABLE_PREFIX}{close[0]}?)" if close else "",
        )


def _problems(error: ValidationError) -> str:
    # One line: each setting by name and variable, what is wrong, what was given.
    problems = []
    for problem in error.errors():
        name = "_".join(map(str, problem["loc"]))
        given = problem["input"]
        if name in _URL_SETTINGS and isinstance(given, str) and "@" in given:
            given = maybe_sanitize_url(given)
        problems.append(
            f"{name} ({VARIABLE_PREFIX}{name.upper()}): {problem['msg']} (got {given!r})"
        )
    return "; ".join(problems)
