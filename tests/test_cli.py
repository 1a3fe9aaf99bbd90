"""The ``hidesync-events`` command line, driven through click's test runner."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner, Result
from redis import Redis

from hidesync_events import (
    CATALOGUE,
    ToolCreated,
    WorkflowStartedEvent,
    configure,
    global_event_bus,
)
from hidesync_events import settings as settings_module
from hidesync_events.cli import main
from hidesync_events.codec import encode
from hidesync_events.demo.fleet import MemoryFleet, RedisFleet
from hidesync_events.redis_server import ThrowawayRedis, free_port
from tests.support.fleet import ROOT


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _line(event: ToolCreated | WorkflowStartedEvent) -> str:
    return json.dumps(
        {"type": type(event).__name__, "payload": event.model_dump(mode="json")}
    )


class TestPublish:
    def test_bad_lines_are_reported_and_set_aside(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """Bad lines are named by number and written aside; good lines are published."""
        source = tmp_path / "day.jsonl"
        bad = ["{not json", '{"type": "NoSuchEvent", "payload": {}}',
               '{"type": "ToolCreated", "payload": {"tool_id": "seven"}}']  # fmt: skip
        envelope = encode(WorkflowStartedEvent(execution_id=5), max_bytes=2**20)
        source.write_text(
            "\n".join(
                [_line(ToolCreated(tool_id=1)), bad[0], bad[1], "", envelope, bad[2]]
            )
        )

        result = run("publish", str(source), "--broker", fresh_redis.url)

        assert result.exit_code == 1
        assert "line 2: malformed" in result.output
        assert "line 3: unknown_type" in result.output
        assert "line 6: invalid_payload" in result.output
        assert "tool_id" in result.output
        assert bad == (tmp_path / "day.rejects.jsonl").read_text().splitlines()
        redis = fresh_redis.client()
        assert (
            redis.llen("hidesync.events.tools"),
            redis.llen("hidesync.events.execution"),
        ) == (1, 1)

    def test_a_clean_file_leaves_no_rejects(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """All lines published: exit 0 and no rejects file."""
        source = tmp_path / "tools.jsonl"
        source.write_text("\n".join(_line(ToolCreated(tool_id=n)) for n in range(5)))

        result = run("publish", str(source), "--broker", fresh_redis.url)

        assert result.exit_code == 0
        assert "published 5 events" in result.output
        assert not (tmp_path / "tools.rejects.jsonl").exists()
        assert fresh_redis.client().llen("hidesync.events.tools") == 5

    def test_from_line_past_the_end_is_a_usage_error(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """--from-line beyond the last line publishes nothing, so it is refused."""
        source = tmp_path / "tools.jsonl"
        source.write_text("\n".join(_line(ToolCreated(tool_id=n)) for n in range(5)))

        result = CliRunner().invoke(
            main,
            ["publish", str(source), "--from-line", "99", "--broker", fresh_redis.url],
        )

        assert 2 == result.exit_code
        assert f"{source} has only 5 lines" in result.output
        assert 0 == fresh_redis.client().llen("hidesync.events.tools")

    def test_from_line_may_name_the_last_line(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """Resuming at the last line publishes that line."""
        source = tmp_path / "tools.jsonl"
        source.write_text("\n".join(_line(ToolCreated(tool_id=n)) for n in range(5)))

        result = run(
            "publish", str(source), "--from-line", "5", "--broker", fresh_redis.url
        )

        assert "published 1 event from" in result.output
        assert 1 == fresh_redis.client().llen("hidesync.events.tools")

    def test_an_unreachable_broker_exits_3_and_says_where_to_resume(
        self, tmp_path: Path
    ) -> None:
        """With no broker listening, publish stops with exit code 3 and a resume hint."""
        source = tmp_path / "tools.jsonl"
        source.write_text(_line(ToolCreated(tool_id=1)))

        result = run(
            "publish", str(source), "--broker", f"redis://127.0.0.1:{free_port()}/0"
        )

        assert result.exit_code == 3
        assert "resume with --from-line 1" in result.output

    def test_a_line_of_an_unknown_type_says_how_to_name_its_module(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """A type no imported module defines is rejected with what to do about it."""
        source = tmp_path / "bills.jsonl"
        source.write_text('{"type": "CliTestsNeverDefined", "payload": {}}')

        result = CliRunner().invoke(
            main, ["publish", str(source), "--broker", fresh_redis.url]
        )

        assert 1 == result.exit_code
        assert (
            "line 1: unknown_type: 'CliTestsNeverDefined' is not a known event type; "
            "name the module that defines it with --handlers or "
            "HIDESYNC_EVENTS_HANDLER_MODULES"
        ) in " ".join(result.output.split())  # as the terminal wraps it

    def test_handlers_imports_the_modules_of_application_events(
        self,
        fresh_redis: ThrowawayRedis,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Lines of an application event are published once --handlers imports the
        module that declares its class."""
        source = _application_events(
            tmp_path, monkeypatch, "cli_tests_issuing", "CliTestsInvoiceIssued"
        )

        result = run(
            "publish", str(source), "--broker", fresh_redis.url,
            "--handlers", "cli_tests_issuing",
        )  # fmt: skip

        assert 0 == result.exit_code, result.output
        assert 1 == fresh_redis.client().llen("hidesync.events.billing")

    def test_the_handler_modules_setting_is_honoured(
        self,
        fresh_redis: ThrowawayRedis,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Without --handlers, the modules of HIDESYNC_EVENTS_HANDLER_MODULES are
        imported for their event types."""
        source = _application_events(
            tmp_path, monkeypatch, "cli_tests_voiding", "CliTestsInvoiceVoided"
        )
        publish = ["publish", str(source), "--broker", fresh_redis.url]

        # Undone before the test's teardown reads the settings again.
        with monkeypatch.context() as patch:
            patch.setenv("HIDESYNC_EVENTS_HANDLER_MODULES", "cli_tests_voiding")
            patch.setattr(settings_module, "_current", None)
            result = CliRunner().invoke(main, publish)

        assert 0 == result.exit_code, result.output
        assert 1 == fresh_redis.client().llen("hidesync.events.billing")


class TestDeadLetters:
    @pytest.fixture
    def letters(self, fresh_redis: ThrowawayRedis) -> list[str]:
        configure(mode="celery", broker_url=fresh_redis.url)
        store = global_event_bus.dead_letters
        event = WorkflowStartedEvent(execution_id=11)
        failed = store.record(
            reason="handler_failed",
            raw=encode(event, max_bytes=2**20),
            error=ValueError("no leather"),
            attempts=5,
            event_type="WorkflowStartedEvent",
            event_id=event.event_id,
            handler="app.handlers:reserve",
        )
        malformed = store.record(reason="malformed", raw="{not json", error="not JSON")
        return [failed.id, malformed.id]

    def test_list_filters_and_prints_json(self, letters: list[str]) -> None:
        """list --json prints one letter per line; filters narrow it."""
        everything = run("dead-letters", "list", "--json", "--broker", _broker())
        failed = run("dead-letters", "list", "--json", "--reason", "handler_failed",
                     "--broker", _broker())  # fmt: skip

        assert letters == [
            json.loads(line)["id"] for line in everything.output.splitlines()
        ]
        [only] = failed.output.splitlines()
        assert "ValueError" in json.loads(only)["error_type"]

    def test_show_prints_the_letter_with_its_envelope(self, letters: list[str]) -> None:
        """show prints every field, the envelope as JSON."""
        result = run("dead-letters", "show", letters[0], "--broker", _broker())

        shown = json.loads(result.output)
        assert shown["envelope"]["type"] == "WorkflowStartedEvent"
        assert shown["error"] == "no leather"

    def test_show_of_an_unknown_id_fails(self, letters: list[str]) -> None:
        """An unknown id is an error, exit code 1."""
        result = CliRunner().invoke(
            main, ["dead-letters", "show", "nope", "--broker", _broker()]
        )

        assert result.exit_code == 1
        assert "no dead letter with id 'nope'" in result.output

    def test_replay_sends_to_the_failed_handler_and_removes_the_letter(
        self, letters: list[str], fresh_redis: ThrowawayRedis
    ) -> None:
        """replay --dry-run changes nothing; replay queues the event for one handler."""
        dry = run(
            "dead-letters", "replay", letters[0], "--dry-run", "--broker", _broker()
        )
        assert "would replay 1 of 1" in dry.output
        assert global_event_bus.dead_letters.count() == 2

        letter = global_event_bus.dead_letters.get(letters[0])
        assert letter is not None
        envelope = letter.envelope

        result = run("dead-letters", "replay", letters[0], "--broker", _broker())

        assert 0 == result.exit_code
        [message] = fresh_redis.client().lrange("hidesync.events.execution", 0, -1)
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(message)["body"]))
        assert {"handler": "app.handlers:reserve"} == kwargs
        assert envelope == args[0]
        assert [letters[1]] == [d.id for d in global_event_bus.dead_letters.list()]

    def test_replay_imports_the_modules_of_application_events(
        self,
        fresh_redis: ThrowawayRedis,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A letter of an application event decodes once --handlers imports the
        module that declares its class; without it the letter stays."""
        (tmp_path / "cli_tests_dyeing.py").write_text(
            "from hidesync_events import DomainEvent\n\n\n"
            "class CliTestsVatDrained(DomainEvent, category='dyeing'):\n"
            "    vat_id: int = 0\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        configure(mode="celery", broker_url=fresh_redis.url)
        event_id, at = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "2026-12-04T10:00:00Z"
        envelope = json.dumps({
            "envelope_version": 1, "type": "CliTestsVatDrained", "schema_version": 1,
            "category": "dyeing", "event_id": event_id, "timestamp": at,
            "correlation_id": event_id, "causation_id": None,
            "payload": {"event_id": event_id, "timestamp": at, "vat_id": 4},
        })  # fmt: skip
        letter = global_event_bus.dead_letters.record(
            reason="handler_failed", raw=envelope, error="vat jammed", handler="h"
        )
        replay = ["dead-letters", "replay", letter.id, "--broker", _broker()]

        without = CliRunner().invoke(main, replay)
        with_module = run(*replay, "--handlers", "cli_tests_dyeing")

        assert 1 == without.exit_code
        assert "replayed 1 of 1" in with_module.output
        assert 1 == fresh_redis.client().llen("hidesync.events.dyeing")

    def test_replay_of_an_undecodable_letter_fails(self, letters: list[str]) -> None:
        """A letter that still cannot be decoded stays, and the exit code is 1."""
        result = CliRunner().invoke(
            main, ["dead-letters", "replay", letters[1], "--broker", _broker()]
        )

        assert result.exit_code == 1
        assert global_event_bus.dead_letters.count() == 2

    def test_purge_needs_ids_or_filters(self, letters: list[str]) -> None:
        """purge with neither ids nor filters is a usage error, exit code 2."""
        result = CliRunner().invoke(
            main, ["dead-letters", "purge", "--broker", _broker()]
        )

        assert result.exit_code == 2

    def test_purge_removes_what_the_filters_select(self, letters: list[str]) -> None:
        """purge --reason removes those letters; --dry-run removes none."""
        run(
            "dead-letters",
            "purge",
            "--reason",
            "malformed",
            "--dry-run",
            "--broker",
            _broker(),
        )
        assert global_event_bus.dead_letters.count() == 2

        result = run("dead-letters", "purge", "--reason", "malformed", "--yes",
                     "--broker", _broker())  # fmt: skip

        assert "removed 1 dead letters" in result.output
        assert [letters[0]] == [d.id for d in global_event_bus.dead_letters.list()]

    @pytest.mark.parametrize(
        "command",
        [
            ["list"],
            ["show", "0123abcd"],
            ["replay", "--reason", "malformed"],
            ["purge", "--reason", "malformed", "--yes"],
        ],
    )
    def test_an_unreachable_state_store_is_named_and_exits_3(
        self, command: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """As stats: "cannot reach the state store at <URL>", the password masked,
        and exit code 3."""
        url = f"redis://:hush@127.0.0.1:{free_port()}/0"
        monkeypatch.setenv("HIDESYNC_EVENTS_STATE_URL", url)
        monkeypatch.setattr(settings_module, "_current", None)

        result = CliRunner().invoke(
            main, ["dead-letters", *command, "--broker", "memory://"]
        )

        assert 3 == result.exit_code
        [error] = result.output.splitlines()
        assert error.startswith(
            f"error: cannot reach the state store at {url.replace('hush', '**')}: "
        )


class TestEvents:
    def test_lists_the_catalogue_with_queues(self) -> None:
        """events --json lists every catalogued event with its category and queue."""
        rows = {row["event"]: row for row in json.loads(run("events", "--json").output)}

        for cls in CATALOGUE:
            category = cls.__event_meta__.category
            assert (category, f"hidesync.events.{category}") == (
                rows[cls.__name__]["category"],
                rows[cls.__name__]["queue"],
            )

    def test_prints_json_schemas(self) -> None:
        """events --json-schema prints a JSON Schema per event."""
        schemas = json.loads(run("events", "--json-schema").output)

        assert "tool_id" in schemas["ToolCheckedOut"]["properties"]


class TestConfigurationErrors:
    """A handler module that does not exist, or a setting that is invalid, is a usage
    error (exit 2) told in one line, not a traceback."""

    @pytest.mark.parametrize(
        "args",
        [
            ["events", "--handlers", "workshop.no_such_handlers"],
            ["worker", "--broker", "memory://", "-m", "workshop.no_such_handlers"],
        ],
    )
    def test_a_missing_handler_module(self, args: list[str]) -> None:
        result = CliRunner().invoke(main, args)

        assert 2 == result.exit_code
        assert "cannot import handler module 'workshop.no_such_handlers'" in (
            result.output
        )
        assert result.exception is None or isinstance(result.exception, SystemExit)

    @pytest.mark.parametrize("name", ["", ".relative", "..relative"])
    def test_a_name_that_cannot_be_a_module(self, name: str) -> None:
        result = CliRunner().invoke(main, ["events", "--handlers", name])

        assert 2 == result.exit_code
        assert f"named in full (package.module), got {name!r}" in result.output

    def test_a_missing_module_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = _events_with_environment(
            monkeypatch, HIDESYNC_EVENTS_HANDLER_MODULES="workshop.gone"
        )

        assert 2 == result.exit_code
        assert "cannot import handler module 'workshop.gone'" in result.output

    def test_an_error_inside_a_handler_module_keeps_its_traceback(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A module that exists but fails to import (its own missing dependency) is
        not a usage error: its traceback shows where."""
        (tmp_path / "shop_handlers.py").write_text("import workshop_missing_dep\n")
        monkeypatch.syspath_prepend(str(tmp_path))

        for command in (["events"], ["stats", "--broker", "memory://"]):
            result = CliRunner().invoke(main, [*command, "--handlers", "shop_handlers"])

            assert isinstance(result.exception, ModuleNotFoundError), command
            assert "workshop_missing_dep" == result.exception.name

    def test_an_invalid_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        result = _events_with_environment(monkeypatch, HIDESYNC_EVENTS_MODE="bogus")

        [error] = [line for line in result.output.splitlines() if "Error" in line]
        assert 2 == result.exit_code
        assert error.startswith("Error: invalid hidesync-events settings: mode ")
        assert "(HIDESYNC_EVENTS_MODE): Input should be 'eager' or 'celery'" in error
        assert "(got 'bogus')" in error

    @pytest.mark.parametrize(
        "command",
        [
            ["stats"],
            ["dead-letters", "list"],
            ["publish", "events.jsonl"],
            ["worker", "--pool", "solo"],
        ],
    )
    @pytest.mark.parametrize(
        ("broker_url", "state_url", "said"),
        [
            # A broker of no kombu transport: not kombu's KeyError.
            (
                "http://x",
                "redis://127.0.0.1:1/0",
                "(HIDESYNC_EVENTS_BROKER_URL): 'http' is not a broker",
            ),
            # A state store redis-py cannot open: not its ValueError (the worker's
            # a page of traceback).
            (
                "redis://127.0.0.1:1/0",
                "amqp://x",
                "(HIDESYNC_EVENTS_STATE_URL): the state store is Redis",
            ),
        ],
        ids=["broker", "state"],
    )
    def test_a_url_that_cannot_be_opened(
        self,
        command: list[str],
        broker_url: str,
        state_url: str,
        said: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A URL of the wrong kind is a usage error naming its variable."""
        monkeypatch.chdir(tmp_path)
        Path("events.jsonl").write_text(_line(ToolCreated(tool_id=1)) + "\n")

        result = _run_with_environment(
            monkeypatch,
            command,
            HIDESYNC_EVENTS_BROKER_URL=broker_url,
            HIDESYNC_EVENTS_STATE_URL=state_url,
        )

        assert 2 == result.exit_code, result.output
        assert said in result.output


def _events_with_environment(
    monkeypatch: pytest.MonkeyPatch, **variables: str
) -> Result:
    """``hidesync-events events`` with settings read afresh from these variables."""
    return _run_with_environment(monkeypatch, ["events"], **variables)


def _run_with_environment(
    monkeypatch: pytest.MonkeyPatch, args: list[str], **variables: str
) -> Result:
    """``hidesync-events ARGS`` with settings read afresh from these variables."""
    # Undone before the test's teardown reads the settings again.
    with monkeypatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        patch.setattr(settings_module, "_current", None)
        return CliRunner().invoke(main, args)


class TestWorker:
    def test_an_unknown_category_is_a_usage_error(self) -> None:
        """worker refuses a category the table does not know, listing the known ones."""
        result = CliRunner().invoke(main, ["worker", "tolls", "--broker", "memory://"])

        assert result.exit_code == 2
        assert "unknown categories tolls" in result.output
        assert "tools" in result.output

    def test_a_node_name_given_with_n_is_passed_to_celery(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """-n names the worker as Celery's own option does; without it the name holds
        this process's id, so that two workers on one host differ."""
        started: list[list[str]] = []
        monkeypatch.setattr(
            Celery, "worker_main", lambda app, argv: started.append(argv)
        )

        run("worker", "tools", "--broker", "memory://")
        run("worker", "tools", "-n", "shop@%h", "--broker", "memory://")

        [default, given] = [argv[argv.index("--hostname") + 1] for argv in started]
        assert f"hidesync-{os.getpid()}@%h" == default
        assert "shop@%h" == given

    def test_two_workers_on_one_host_are_both_consumers(
        self, fresh_redis: ThrowawayRedis, tmp_path: Path
    ) -> None:
        """Two workers started as the README shows each announce their queues; one
        that stops withdraws its own announcement and leaves the other's."""
        index = f"{global_event_bus.settings.key_prefix}:consumers"
        store = fresh_redis.client()
        tools = _start_worker(fresh_redis.url, tmp_path / "tools.log", "tools")
        execution = _start_worker(fresh_redis.url, tmp_path / "exec.log", "execution")
        try:
            names = _wait_for_consumers(store, index, count=2)
            figures = json.loads(
                run("stats", "--json", "--broker", fresh_redis.url).output
            )
            [tools_name] = figures["categories"]["tools"]["consumers"]
            [execution_name] = figures["categories"]["execution"]["consumers"]

            tools.send_signal(signal.SIGTERM)
            tools.wait(30)

            assert {tools_name, execution_name} == set(names)
            assert [execution_name] == store.zrange(index, 0, -1)
            assert not store.exists(f"{index}:{tools_name}")
        finally:
            for worker in (tools, execution):
                worker.terminate()
                worker.wait(30)


class TestDemo:
    def test_runs_on_the_in_memory_transport_without_redis(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no redis-server installed the demo runs in process and reports."""
        monkeypatch.setattr(
            "hidesync_events.demo.fleet.redis_server_binary", lambda: None
        )
        source = tmp_path / "small.jsonl"
        source.write_text("\n".join(_line(ToolCreated(tool_id=n)) for n in range(20)))

        result = run("demo", "--events", str(source), "--timeout", "60")

        assert result.exit_code == 0, result.output
        assert "in-memory transport" in result.output
        assert "events published" in result.output

    def test_help_says_the_broker_setting_is_not_used(self) -> None:
        """--broker's help says the demo runs its own fleet without it, whatever
        HIDESYNC_EVENTS_BROKER_URL says, and does not offer it as a default."""
        result = run("demo", "--help")

        help_text = " ".join(result.output.split())
        assert "default: HIDESYNC_EVENTS_BROKER_URL" not in help_text
        assert "the demo runs a fleet of its own, whatever " in help_text
        assert "HIDESYNC_EVENTS_BROKER_URL says" in help_text


class TestDemoWorkerLogs:
    """The demo's workers write their logs to a folder of their own (unit: the
    fleet's exit, without starting processes)."""

    def test_are_removed_when_the_demo_went_well(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        fleet = RedisFleet(workers=1)

        fleet.__exit__(None, None, None)

        assert [] == list(tmp_path.iterdir())

    @pytest.mark.parametrize("how", ["raised", "incomplete"])
    def test_are_kept_and_named_when_it_went_wrong(
        self,
        how: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An error, or a run that did not handle every event, once a worker had
        started: the logs stay, and the demo says where."""
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        fleet = RedisFleet(workers=1)
        fleet._processes = [subprocess.Popen(["true"])]  # a worker that started

        if how == "raised":
            fleet.__exit__(RuntimeError, RuntimeError("a worker died"), None)
        else:
            fleet.incomplete = True
            fleet.__exit__(None, None, None)

        [logs] = tmp_path.iterdir()
        assert f"the demo workers' logs are in {logs}" in capsys.readouterr().err

    @pytest.mark.parametrize("went", ["well", "wrong"])
    def test_an_in_process_worker_logs_to_its_folder(
        self,
        went: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With no redis-server, the worker runs in the demo's process: what it logs
        (a failing handler's traceback, say) goes to its log file rather than the
        terminal, and the file is kept, and named, only when the demo went wrong."""
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        fleet = MemoryFleet()

        with fleet:
            logging.getLogger("hidesync.events.delivery").error("handler x failed")
            fleet.incomplete = went == "wrong"

        assert not [r for r in caplog.records if r.name.startswith("hidesync")]
        if went == "well":
            assert [] == list(tmp_path.iterdir())
        else:
            [logs] = tmp_path.iterdir()
            assert "handler x failed" in (logs / "worker.log").read_text()
            assert f"the demo workers' logs are in {logs}" in capsys.readouterr().err

    def test_a_fleet_that_fails_to_start_stops_its_redis(
        self, monkeypatch: pytest.MonkeyPatch, redis_server: ThrowawayRedis
    ) -> None:
        """A failure while the fleet starts (here: no worker can start) stops the
        Redis it had started: no with-block would."""
        started: list[ThrowawayRedis] = []
        start = ThrowawayRedis.start

        def start_and_note(server: ThrowawayRedis, *args: Any) -> ThrowawayRedis:
            started.append(server)
            return start(server, *args)

        def no_worker(*args: Any) -> subprocess.Popen[bytes]:
            raise OSError("no worker today")

        monkeypatch.setattr(ThrowawayRedis, "start", start_and_note)
        fleet = RedisFleet(workers=1)
        monkeypatch.setattr(fleet, "_start_worker", no_worker)

        with pytest.raises(OSError, match="no worker today"):
            fleet.__enter__()

        assert [False] == [server.running for server in started]


def _application_events(
    folder: Path, monkeypatch: pytest.MonkeyPatch, module: str, event_type: str
) -> Path:
    """A JSON Lines file of one event of ``event_type``, an application class of
    category 'billing' that ``module`` declares (not imported yet)."""
    (folder / f"{module}.py").write_text(
        "from hidesync_events import DomainEvent\n\n\n"
        f"class {event_type}(DomainEvent, category='billing'):\n"
        "    invoice_id: int = 0\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    source = folder / "bills.jsonl"
    source.write_text(json.dumps({"type": event_type, "payload": {"invoice_id": 7}}))
    return source


def _broker() -> str:
    return global_event_bus.settings.broker_url


def _start_worker(
    broker_url: str, log: Path, *categories: str
) -> subprocess.Popen[str]:
    """``hidesync-events worker CATEGORY...`` in a process of its own."""
    command = [sys.executable, "-m", "hidesync_events", "worker", *categories,
               "--pool", "solo", "--broker", broker_url]  # fmt: skip
    with log.open("w") as output:
        return subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True
        )


def _wait_for_consumers(
    store: Redis, index: str, *, count: int, timeout_s: float = 60.0
) -> list[str]:
    """The names of the workers that announced their queues, once there are ``count``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = store.zrange(index, 0, -1)
        if len(names) >= count:
            return names
        time.sleep(0.2)
    raise TimeoutError(f"{count} workers did not announce themselves: {names}")
