"""Fixtures shared by the suite.

* Every test starts from the environment's settings and a global bus with no
  subscriptions beyond those it makes (restored afterwards).
* ``redis_server`` is a throwaway ``redis-server`` on a free loopback port, one per
  session; tests needing a broker skip without the binary, and fail when ``CI`` is set.
* ``worker_fleet`` starts real ``celery worker`` subprocesses against it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hidesync_events import EventBus
from hidesync_events.redis_server import ThrowawayRedis, redis_server_binary
from hidesync_events.testing import isolated_global_bus
from tests.support.fleet import WorkerFleet
from tests.support.rabbitmq import RabbitMQ, rabbitmq_reachable


@pytest.fixture(autouse=True)
def _private_spool(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test spools (if at all) into a directory of its own."""
    spool_dir = tmp_path_factory.mktemp("spool")
    monkeypatch.setenv("HIDESYNC_EVENTS_SPOOL_DIR", str(spool_dir))


@pytest.fixture(autouse=True)
def _fresh_settings_and_global_bus(_private_spool: None) -> Iterator[None]:
    """Undo what a test did to the settings and to the global bus's subscriptions.

    Subscriptions made by modules the test imported for the first time stay: those
    modules will not run again to make them.
    """
    with isolated_global_bus():
        yield


@pytest.fixture
def bus() -> Iterator[EventBus]:
    """A fresh eager bus with its own in-memory stores."""
    fresh = EventBus(mode="eager")
    yield fresh
    fresh.close()


def _require_redis_server() -> None:
    if redis_server_binary() is not None:
        return

    message = "redis-server is not installed; broker tests need it"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayRedis]:
    """A throwaway redis-server for the whole session (stop/kill/restart allowed)."""
    _require_redis_server()
    with ThrowawayRedis() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    """The machine's RabbitMQ, with queues of this session's own prefix (deleted after)."""
    problem = rabbitmq_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI is set, so this is a failure)")
        pytest.skip(problem)

    broker = RabbitMQ()
    yield broker
    broker.delete_queues()


@pytest.fixture
def fresh_redis(redis_server: ThrowawayRedis) -> ThrowawayRedis:
    """The session's redis-server, running and emptied."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    return redis_server


@pytest.fixture
def worker_fleet(fresh_redis: ThrowawayRedis) -> Iterator[WorkerFleet]:
    """Starts ``celery worker`` subprocesses on demand; stops them after the test."""
    fleet = WorkerFleet(fresh_redis.url)
    yield fleet
    fleet.stop()
    print(fleet.logs())  # shown by pytest when the test failed
