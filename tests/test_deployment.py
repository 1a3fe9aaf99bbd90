"""The deployment files agree with the code: celeryconfig.py and docker-compose.yml."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from fastapi import FastAPI
from uvicorn.importer import import_from_string
from uvicorn.main import main as uvicorn_main

from hidesync_events import (
    CATALOGUE_CATEGORIES,
    configure,
    known_categories,
    queue_name,
)
from hidesync_events.celery_app import celery_config
from hidesync_events.cli import main
from hidesync_events.cli.worker import worker as worker_command
from hidesync_events.event import DEFAULT_CATEGORY

ROOT = Path(__file__).resolve().parents[1]

#: The programs a service of our image may run; each has a test of its command below.
CHECKED_PROGRAMS = ("hidesync-events", "uvicorn")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _our_services() -> dict[str, list[str]]:
    services = _compose()["services"]
    return {
        name: service["command"]
        for name, service in services.items()
        if service.get("image", "").startswith("hidesync-events")
    }


def _services_running(program: str) -> dict[str, list[str]]:
    return {
        name: command
        for name, command in _our_services().items()
        if command[0] == program
    }


def _categories_of(command: list[str]) -> list[str]:
    # `hidesync-events worker [options] CATEGORY...`, parsed as the command parses it.
    context = worker_command.make_context("worker", list(command[2:]))
    return list(context.params["categories"])


class TestCeleryConfig:
    def test_celeryconfig_only_reads_the_settings(self) -> None:
        """celeryconfig.py holds exactly what celery_config() derives from the settings."""
        configure(broker_url="redis://127.0.0.1:6390/3", visibility_timeout_s=7200)
        module = importlib.reload(importlib.import_module("celeryconfig"))

        expected = celery_config(configure(broker_url="redis://127.0.0.1:6390/3",
                                           visibility_timeout_s=7200))  # fmt: skip
        for key, value in expected.items():
            if key == "task_queues":
                assert [q.name for q in value] == [q.name for q in module.task_queues]
            else:
                assert value == getattr(module, key), key

    def test_the_worker_contract_settings(self) -> None:
        """JSON only, late acks, requeue on worker loss, prefetch 1, visibility timeout."""
        config = celery_config(configure(visibility_timeout_s=5400))

        assert config["accept_content"] == ["json"]
        assert config["task_serializer"] == "json"
        assert config["task_acks_late"] is True
        assert config["task_reject_on_worker_lost"] is True
        assert config["worker_prefetch_multiplier"] == 1
        assert config["broker_transport_options"]["visibility_timeout"] == 5400

    def test_queues_come_from_the_category_table(self) -> None:
        """One queue per known category, named hidesync.events.<category>."""
        queues = [q.name for q in celery_config(configure())["task_queues"]]

        assert [f"hidesync.events.{c}" for c in known_categories()] == queues

    @pytest.mark.parametrize(
        "broker_url",
        [
            "amqp://guest:guest@127.0.0.1:5672//",
            "AMQP://guest:guest@127.0.0.1:5672//",
            "pyamqp://guest:guest@127.0.0.1:5672//",
        ],
    )
    def test_rabbitmq_publishes_with_confirms(self, broker_url: str) -> None:
        """With an AMQP broker, publish returns only once the broker confirmed."""
        config = celery_config(configure(broker_url=broker_url))

        assert config["broker_transport_options"]["confirm_publish"] is True

    def test_a_redis_broker_in_capitals_is_the_state_store_too(self) -> None:
        settings = configure(broker_url="REDIS://127.0.0.1:6390/3")

        assert "REDIS://127.0.0.1:6390/3" == settings.resolved_state_url
        assert (
            "confirm_publish"
            not in (celery_config(settings)["broker_transport_options"])
        )


class TestCompose:
    def test_every_service_runs_a_checked_program(self) -> None:
        """Every service running our image runs a program whose command is checked."""
        unchecked = {
            name: command[0]
            for name, command in _our_services().items()
            if command[0] not in CHECKED_PROGRAMS
        }

        assert {} == unchecked

    @pytest.mark.parametrize("service", sorted(_services_running("hidesync-events")))
    def test_service_commands_exist(self, service: str) -> None:
        """Every hidesync-events service runs a real hidesync-events command."""
        program, subcommand, *args = _services_running("hidesync-events")[service]

        context = main.make_context(program, [subcommand, *args])
        command = main.get_command(context, subcommand)
        assert isinstance(command, click.Command)
        command.make_context(subcommand, list(args), parent=context)

    @pytest.mark.parametrize("service", sorted(_services_running("uvicorn")))
    def test_uvicorn_services_serve_an_asgi_app(self, service: str) -> None:
        """A uvicorn service's options are uvicorn's, and its MODULE:ATTR is a FastAPI
        app, the port it listens on published on loopback only."""
        _, *args = _services_running("uvicorn")[service]
        options = uvicorn_main.make_context("uvicorn", list(args)).params

        app = import_from_string(options["app"])

        assert isinstance(app, FastAPI)
        ports = _compose()["services"][service]["ports"]
        assert [f"127.0.0.1:{options['port']}:{options['port']}"] == ports

    def test_our_services_share_one_environment(self) -> None:
        """The API publishes with the mode and broker the workers consume with."""
        services = _compose()["services"]
        environments = [
            services[name]["environment"] for name in sorted(_our_services())
        ]

        assert [environments[0]] * len(environments) == environments

    def test_worker_categories_are_known_and_all_consumed(self) -> None:
        """Workers name categories from the table, and every category has a worker."""
        named = [
            category
            for command in _services_running("hidesync-events").values()
            if command[1] == "worker"
            for category in _categories_of(command)
        ]

        assert set(named) <= set(known_categories())
        assert {*CATALOGUE_CATEGORIES, DEFAULT_CATEGORY} == set(named)
        assert len(named) == len(set(named)), "a category is consumed by two groups"

    def test_no_queue_name_is_written_by_hand(self) -> None:
        """Queue names are derived, never spelled out in the compose file."""
        text = (ROOT / "docker-compose.yml").read_text()

        assert not [c for c in known_categories() if queue_name(c) in text]

    def test_redis_keeps_messages(self) -> None:
        """Redis runs with persistence and refuses writes rather than evicting."""
        command = _compose()["services"]["redis"]["command"]

        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


class TestCeleryEntryPoint:
    def test_a_handler_module_that_fails_to_import_is_named(
        self, tmp_path: Path
    ) -> None:
        """``celery -A workers`` takes any ImportError raised while importing the app
        module for "no app here" and hides it; the app module says which handler
        module failed instead, with the original error chained."""
        (tmp_path / "shop_handlers.py").write_text("import workshop_missing_dep\n")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
            "HIDESYNC_EVENTS_MODE": "celery",
            "HIDESYNC_EVENTS_BROKER_URL": "memory://",
            "HIDESYNC_EVENTS_HANDLER_MODULES": "shop_handlers",
        }

        result = subprocess.run(
            [sys.executable, "-c", "import workers.celery"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

        assert 0 != result.returncode
        assert (
            "ConfigurationError: a handler module of HIDESYNC_EVENTS_HANDLER_MODULES "
            "failed to import: ModuleNotFoundError: No module named "
            "'workshop_missing_dep'"
        ) in result.stderr
