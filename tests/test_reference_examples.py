"""Every Python example of the events reference runs against hidesync_events.

``tests/reference/events-system.md`` is the documentation HideSync's developers follow,
copied verbatim. The contract says each of its examples runs with ``hidesync_events`` in
place of the application's module ``app.core.events``. Each ```python block is one test;
further tests call what the blocks define and check they do what the text says.

Blocks are fragments. They run in a namespace holding what the document's module
provides (taken from hidesync_events) and recording stand-ins for the application's own
functions and objects. The blocks' code is never edited: only their imports of
``app.core.events`` are pointed at ``hidesync_events``.
"""

import ast
import asyncio
import hashlib
import inspect
import itertools
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, NamedTuple

import celery._state
import pytest
from pydantic import BaseModel

import hidesync_events
from hidesync_events import (
    DomainEvent,
    WorkflowCompletedEvent,
    WorkflowCreatedEvent,
    WorkflowMilestoneReachedEvent,
    WorkflowPausedEvent,
    WorkflowProgressUpdateEvent,
    WorkflowResourceReservedEvent,
    WorkflowResourceUnavailableEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    global_event_bus,
    wire_name,
)

REFERENCE = Path(__file__).parent / "reference" / "events-system.md"
#: SHA-256 of the document as the company publishes it.
REFERENCE_SHA256 = "6ee578b5071546cef8cd1f28998d4886292c2fbbe72e3902546481dc78608809"
APP_MODULE = "app.core.events"
#: The module name the blocks' functions and classes get (never imported).
EXAMPLES_MODULE = "events_system_md"
#: Besides its events, what the document imports from its events module.
DOCUMENTED_API = ("DomainEvent", "EventBus", "global_event_bus", "setup_event_handlers")
LEVELS = ("info", "warning", "error")
IMPORT_LINE = re.compile(r"\s*(from|import)\s")
TABLE_EVENT = re.compile(r"^\| \*\*[^|]+\*\* \| `(\w+)` \|", re.MULTILINE)


# -- the document -----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One ```python block of the document and the heading it sits under."""

    index: int
    heading: str
    source: str

    @property
    def test_id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-{self.index}"


def python_blocks(markdown: str) -> list[Block]:
    """Return the ```python blocks of ``markdown`` in order, with their headings."""
    blocks: list[Block] = []
    heading, body = "", None
    for line in markdown.splitlines():
        if body is not None and line.strip() == "```":
            blocks.append(Block(len(blocks), heading, "\n".join(body) + "\n"))
            body = None
        elif body is not None:
            body.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").replace("**", "").strip()
        elif line.strip() == "```python":
            body = []
    return blocks


REFERENCE_TEXT = REFERENCE.read_text(encoding="utf-8")
BLOCKS = python_blocks(REFERENCE_TEXT)
TABLE_EVENTS = TABLE_EVENT.findall(REFERENCE_TEXT)


def block(heading: str) -> Block:
    """Return the one block under ``heading``."""
    [found] = [b for b in BLOCKS if b.heading == heading]
    return found


def for_product(source: str) -> str:
    """Point the block's imports of the application's events module at hidesync_events."""
    return "\n".join(
        line.replace(APP_MODULE, "hidesync_events") if IMPORT_LINE.match(line) else line
        for line in source.splitlines()
    )


def run_block(example: Block, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run ``example`` in ``namespace`` (in an event loop if it awaits); return it."""
    code = compile(
        for_product(example.source),
        f"<events-system.md: {example.heading}>",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(_evaluate(code, namespace))
    else:
        exec(code, namespace)
    return namespace


async def _evaluate(code: Any, namespace: dict[str, Any]) -> None:
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


# -- stand-ins for the application ------------------------------------------------------


class Call(NamedTuple):
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def call(*args: Any, **kwargs: Any) -> Call:
    return Call(args, kwargs)


class Recorder:
    """Stands in for an application function: records each call, returns ``returns``."""

    def __init__(
        self, name: str, *, returns: Any = None, raises: Exception | None = None
    ) -> None:
        # The bus names a handler module:qualname, so each recorder carries its own.
        self.__name__ = self.__qualname__ = name
        self.returns = returns
        self.raises = raises
        self.calls: list[Call] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Lists are copied: callers may clear them afterwards (the batchers do).
        args = tuple(list(a) if isinstance(a, list) else a for a in args)
        self.calls.append(Call(args, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.returns


class AsyncRecorder(Recorder):
    """A :class:`Recorder` for an application coroutine function."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


class SteppingClock:
    """Stands in for ``time``: each ``time()`` reads ``step`` seconds after the last."""

    def __init__(self, step: float) -> None:
        self._readings = itertools.count(0.0, step)

    def time(self) -> float:
        return next(self._readings)


class Session:
    """Stands in for the application's database session."""


class Workflow:
    """Stands in for the application's workflow model."""


class WorkflowExecution:
    """Stands in for the application's execution model."""


class WorkflowCreate(BaseModel):
    """Stands in for the application's request body for a new workflow."""

    name: str


WORKFLOW = SimpleNamespace(id=7, name="Leather Wallet", is_template=True)
EXECUTION = SimpleNamespace(id=100, workflow=WORKFLOW)
DB_SESSION = Session()
PLANNED_WORKFLOW = SimpleNamespace(
    steps=[
        SimpleNamespace(
            estimated_duration=30.0,
            resources=[
                SimpleNamespace(
                    resource_type="material", dynamic_material_id=50, quantity=2.5
                ),
                SimpleNamespace(resource_type="tool", tool_id=25),
            ],
        )
    ]
)

#: Application functions the blocks call for their effect.
CALLED = (
    "reserve_workflow_resources",
    "send_workflow_notification",
    "increment_workflow_counter",
    "notify_template_created",
    "reserve_material",
    "schedule_tool_usage",
    "release_all_resources",
    "update_progress_tracking",
    "calculate_next_steps",
    "risky_operation_without_error_handling",
    "reserve_resources",
    "complex_calculation_that_takes_minutes",
    "slow_database_operations",
    "external_api_calls_with_retries",
    "update_inventory_systems",
    "send_supplier_notifications",
    "update_cost_tracking",
    "handler",
    # The "bad design" examples' loose event classes, which the application defines.
    "GenericWorkflowEvent",
    "ResourceEvent",
)
#: Application coroutine functions the blocks await.
AWAITED = (
    "reserve_resources_async",
    "send_notification_async",
    "send_user_notification",
    "send_urgent_notification",
    "update_analytics_async",
    "send_completion_notification_async",
    "cleanup_resources_async",
    "batch_update_progress",
    "do_async_work",
)


def stand_ins() -> dict[str, Any]:
    """Return fresh stand-ins for every application name the blocks use."""
    names: dict[str, Any] = {name: Recorder(name) for name in CALLED}
    names |= {name: AsyncRecorder(name) for name in AWAITED}
    return names | {
        "create_workflow_in_db": Recorder("create_workflow_in_db", returns=WORKFLOW),
        "create_workflow_in_db_async": AsyncRecorder(
            "create_workflow_in_db_async", returns=WORKFLOW
        ),
        "get_workflow": Recorder("get_workflow", returns=PLANNED_WORKFLOW),
        "get_db_session": Recorder("get_db_session", returns=DB_SESSION),
        "logger": SimpleNamespace(**{lvl: Recorder(f"logger.{lvl}") for lvl in LEVELS}),
        "background_tasks": SimpleNamespace(add_task=Recorder("add_task")),
        "workflow_service": SimpleNamespace(
            create_workflow=AsyncRecorder("create_workflow", returns={"id": 7})
        ),
        "event": WorkflowStartedEvent(
            workflow_id=1, execution_id=100, workflow_name="Leather Wallet", user_id=456
        ),
        "Session": Session,
        "Workflow": Workflow,
        "WorkflowExecution": WorkflowExecution,
        "WorkflowCreate": WorkflowCreate,
        # The blocks annotate with typing's Dict and List: the builtins subscript alike.
        "Dict": dict,
        "List": list,
        "Any": Any,
        "time": time,
        "defaultdict": defaultdict,
        "asyncio": asyncio,
    }


def documented_api() -> dict[str, Any]:
    """Return what the document's events module provides, taken from hidesync_events."""
    names = [*DOCUMENTED_API, *TABLE_EVENTS]
    return {name: getattr(hidesync_events, name) for name in names}


@pytest.fixture
def namespace() -> dict[str, Any]:
    """The globals a block runs in: the documented API and the application stand-ins."""
    return {"__name__": EXAMPLES_MODULE} | documented_api() | stand_ins()


@pytest.fixture(autouse=True)
def _undo_example_side_effects(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo the process state the examples change besides the bus's subscriptions.

    The Event Logging example sets the level of the ``hidesync.events`` logger;
    ``Celery('hidesync')`` becomes the current app, and ``@celery_app.task`` (a shared
    task) would be added to every Celery app finalised later in the process.
    """
    monkeypatch.setattr(
        celery._state, "_on_app_finalizers", set(celery._state._on_app_finalizers)
    )
    monkeypatch.setattr(
        celery._state._tls, "current_app", celery._state._tls.current_app
    )
    event_logger = logging.getLogger("hidesync.events")
    level = event_logger.level
    yield
    event_logger.setLevel(level)


def recorder_for(event_type: type[DomainEvent]) -> Recorder:
    """Subscribe a fresh recorder to ``event_type`` on the global bus and return it."""
    received = Recorder(f"received_{event_type.__name__}")
    global_event_bus.subscribe(event_type, received)
    return received


def events_of(recorder: Recorder) -> list[Any]:
    """Return the first argument of each call: the events a handler received."""
    return [c.args[0] for c in recorder.calls]


def fields_of(event: DomainEvent, *names: str) -> dict[str, Any]:
    return {name: getattr(event, name) for name in names}


# -- every block runs -------------------------------------------------------------------

# FastAPI deprecates on_event, which the FastAPI example's startup hook uses.
ON_EVENT_DEPRECATED = pytest.mark.filterwarnings(
    "ignore:\\s+on_event is deprecated:DeprecationWarning"
)


def example_params() -> list[Any]:
    return [
        pytest.param(
            b,
            id=b.test_id,
            marks=[ON_EVENT_DEPRECATED] if "on_event(" in b.source else [],
        )
        for b in BLOCKS
    ]


@pytest.mark.parametrize("example", example_params())
def test_example_runs(example: Block, namespace: dict[str, Any]) -> None:
    """The block runs to its end against hidesync_events."""
    run_block(example, namespace)


def test_reference_copy_is_verbatim() -> None:
    """The copy is byte for byte the company's document (no formatter touched it)."""
    assert REFERENCE_SHA256 == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()


def test_reference_table_events_are_exported_under_their_names() -> None:
    """Every event of the reference table is a hidesync_events class of that wire name."""
    exported = {
        name: wire_name(getattr(hidesync_events, name)) for name in TABLE_EVENTS
    }

    assert 29 == len(exported)
    assert list(exported) == list(exported.values())


# -- usage examples ---------------------------------------------------------------------


def test_create_workflow_publishes_workflow_created(namespace: dict[str, Any]) -> None:
    """create_workflow publishes a WorkflowCreatedEvent for the stored workflow."""
    ns = run_block(block("Basic Event Publishing"), namespace)
    received = recorder_for(WorkflowCreatedEvent)

    assert WORKFLOW is ns["create_workflow"]({"name": "Leather Wallet"}, 456)

    [event] = events_of(received)
    expected = {
        "workflow_id": 7,
        "workflow_name": "Leather Wallet",
        "is_template": True,
        "user_id": 456,
    }
    assert fields_of(event, *expected) == expected


def test_create_workflow_async_publishes_workflow_created(
    namespace: dict[str, Any],
) -> None:
    """create_workflow_async awaits publish_async, which delivers a WorkflowCreatedEvent."""
    ns = run_block(block("Basic Event Publishing"), namespace)
    received = recorder_for(WorkflowCreatedEvent)

    asyncio.run(ns["create_workflow_async"]({"name": "Leather Wallet"}, 456))

    [event] = events_of(received)
    expected = {"workflow_id": 7, "workflow_name": "Leather Wallet", "user_id": 456}
    assert fields_of(event, *expected) == expected


def test_sync_subscription_reserves_and_notifies(
    namespace: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """handle_workflow_started reserves resources and notifies the user on a start."""
    ns = run_block(block("Event Subscription"), namespace)

    global_event_bus.publish(ns["event"])

    assert ns["reserve_workflow_resources"].calls == [call(1, 100)]
    assert ns["send_workflow_notification"].calls == [
        call(456, "Started: Leather Wallet")
    ]
    assert "Workflow Leather Wallet started by user 456\n" == capsys.readouterr().out


def test_subscribe_async_handler_runs_on_publish(namespace: dict[str, Any]) -> None:
    """The handler given to subscribe_async runs when the event is published."""
    ns = run_block(block("Event Subscription"), namespace)

    asyncio.run(global_event_bus.publish_async(ns["event"]))

    assert ns["reserve_resources_async"].calls == [call(1)]
    assert ns["send_notification_async"].calls == [call(456, "Leather Wallet")]


def test_multiple_handlers_all_run(namespace: dict[str, Any]) -> None:
    """The three handlers of one event type each run for a new template."""
    ns = run_block(block("Multiple Event Handlers"), namespace)

    global_event_bus.publish(
        WorkflowCreatedEvent(workflow_name="Belt", is_template=True, user_id=456)
    )

    assert ns["logger"].info.calls == [call("Workflow created: Belt by user 456")]
    assert ns["increment_workflow_counter"].calls == [call(456, True)]
    assert ns["notify_template_created"].calls == [call("Belt", 456)]


def service_with_db_helpers(ns: dict[str, Any]) -> Any:
    """Return the document's WorkflowService with the database helpers it leaves out."""
    service = ns["WorkflowService"](DB_SESSION)
    service._create_workflow_in_db = Recorder("create_in_db", returns=WORKFLOW)
    service._start_execution_in_db = Recorder("start_in_db", returns=EXECUTION)
    return service


def test_service_create_workflow_publishes_event(namespace: dict[str, Any]) -> None:
    """WorkflowService.create_workflow publishes the created workflow's event."""
    service = service_with_db_helpers(
        run_block(block("Service Integration Example"), namespace)
    )
    received = recorder_for(WorkflowCreatedEvent)

    service.create_workflow({"name": "Leather Wallet"}, user_id=456)

    [event] = events_of(received)
    expected = {"workflow_id": 7, "is_template": True, "user_id": 456}
    assert fields_of(event, *expected) == expected


def test_service_start_execution_publishes_event(namespace: dict[str, Any]) -> None:
    """WorkflowService.start_execution publishes a WorkflowStartedEvent."""
    service = service_with_db_helpers(
        run_block(block("Service Integration Example"), namespace)
    )
    received = recorder_for(WorkflowStartedEvent)

    assert EXECUTION is service.start_execution(7, user_id=456)

    [event] = events_of(received)
    expected = {
        "workflow_id": 7,
        "execution_id": 100,
        "workflow_name": "Leather Wallet",
    }
    assert fields_of(event, *expected) == expected


# -- handler patterns -------------------------------------------------------------------


def test_resource_handlers_reserve_on_start(namespace: dict[str, Any]) -> None:
    """After handle_resource_events(), a start reserves materials and schedules tools."""
    ns = run_block(block("1. Resource Management Handler"), namespace)
    ns["handle_resource_events"]()

    global_event_bus.publish(WorkflowStartedEvent(workflow_id=1, execution_id=100))

    assert ns["get_workflow"].calls == [call(1)]
    assert ns["reserve_material"].calls == [call(50, 2.5)]
    assert ns["schedule_tool_usage"].calls == [call(25, 30.0)]


def test_resource_handlers_release_on_completion(namespace: dict[str, Any]) -> None:
    """After handle_resource_events(), a completion releases the execution's resources."""
    ns = run_block(block("1. Resource Management Handler"), namespace)
    ns["handle_resource_events"]()

    global_event_bus.publish(WorkflowCompletedEvent(execution_id=100))

    assert ns["release_all_resources"].calls == [call(100)]


def test_analytics_handler_records_three_metrics(namespace: dict[str, Any]) -> None:
    """WorkflowAnalyticsHandler's bound methods record a metric for each of its events."""
    ns = run_block(block("2. Analytics Handler"), namespace)
    analytics = ns["WorkflowAnalyticsHandler"]()
    # The document's class calls record_metric without defining it: the app supplies it.
    analytics.record_metric = Recorder("record_metric")
    started = WorkflowStartedEvent(workflow_id=1, user_id=456)

    global_event_bus.publish(started)
    global_event_bus.publish(
        WorkflowCompletedEvent(workflow_id=1, total_duration=240.5)
    )
    global_event_bus.publish(
        WorkflowStepCompletedEvent(step_id=10, step_type="tool", actual_duration=15.5)
    )

    assert analytics.record_metric.calls == [
        call(
            "workflow_started",
            {"workflow_id": 1, "user_id": 456, "timestamp": started.timestamp},
        ),
        call(
            "workflow_completed",
            {"workflow_id": 1, "duration": 240.5, "outcome_id": None},
        ),
        call(
            "step_duration",
            {"step_id": 10, "step_type": "tool", "actual_duration": 15.5},
        ),
    ]


def test_notification_handlers_notify_users(namespace: dict[str, Any]) -> None:
    """The async notification handlers send a message for each of their three events."""
    ns = run_block(block("3. Notification Handler"), namespace)

    async def scenario() -> None:
        await ns["setup_notification_handlers"]()
        await global_event_bus.publish_async(
            WorkflowStartedEvent(workflow_name="Leather Wallet", user_id=456)
        )
        await global_event_bus.publish_async(
            WorkflowMilestoneReachedEvent(
                milestone_name="Pieces Cut", progress_percentage=25.0, user_id=456
            )
        )
        await global_event_bus.publish_async(
            WorkflowResourceUnavailableEvent(resource_name="Leather - 4oz", user_id=456)
        )

    asyncio.run(scenario())

    assert ns["send_user_notification"].calls == [
        call(456, "Started workflow: Leather Wallet"),
        call(456, "Milestone reached: Pieces Cut (25.0%)"),
    ]
    assert ns["send_urgent_notification"].calls == [
        call(456, "Resource unavailable: Leather - 4oz")
    ]


# -- best practices ---------------------------------------------------------------------


def test_fast_handler_queues_the_heavy_work(namespace: dict[str, Any]) -> None:
    """The fast handle_workflow_started logs and hands reservation to background tasks."""
    ns = run_block(block("2. Handler Design"), namespace)
    global_event_bus.subscribe(WorkflowStartedEvent, ns["handle_workflow_started"])

    global_event_bus.publish(WorkflowStartedEvent(workflow_id=1, execution_id=100))

    assert ns["logger"].info.calls == [call("Workflow 1 started")]
    assert ns["background_tasks"].add_task.calls == [
        call(ns["reserve_resources"], 1, 100)
    ]
    assert [] == ns["reserve_resources"].calls


def test_error_safe_handler_logs_its_failure(namespace: dict[str, Any]) -> None:
    """handle_step_completed logs a failed progress update instead of raising."""
    namespace["update_progress_tracking"] = Recorder(
        "update", raises=OSError("db down")
    )
    ns = run_block(block("2. Handler Design"), namespace)
    global_event_bus.subscribe(WorkflowStepCompletedEvent, ns["handle_step_completed"])

    global_event_bus.publish(WorkflowStepCompletedEvent(execution_id=100, step_id=15))

    assert ns["logger"].error.calls == [
        call("Error updating progress for step 15: db down")
    ]
    assert [] == ns["calculate_next_steps"].calls


def test_concurrent_handler_runs_all_operations(namespace: dict[str, Any]) -> None:
    """handle_multiple_operations updates analytics, notifies and cleans up."""
    ns = run_block(block("3. Performance Considerations"), namespace)
    global_event_bus.subscribe(WorkflowCompletedEvent, ns["handle_multiple_operations"])

    global_event_bus.publish(
        WorkflowCompletedEvent(workflow_id=1, execution_id=100, user_id=456)
    )

    assert ns["update_analytics_async"].calls == [call(1)]
    assert ns["send_completion_notification_async"].calls == [call(456)]
    assert ns["cleanup_resources_async"].calls == [call(100)]


def test_step_progress_batcher_flushes_ten_updates(namespace: dict[str, Any]) -> None:
    """StepProgressBatcher hands ten progress updates to one batch update."""
    ns = run_block(block("3. Performance Considerations"), namespace)
    batcher = ns["StepProgressBatcher"]()
    global_event_bus.subscribe(
        WorkflowProgressUpdateEvent, batcher.handle_step_progress
    )

    for completed in range(1, 11):
        global_event_bus.publish(WorkflowProgressUpdateEvent(completed_steps=completed))

    [batch] = events_of(ns["batch_update_progress"])
    assert list(range(1, 11)) == [event.completed_steps for event in batch]
    assert [] == batcher.batch


# -- debugging and monitoring -----------------------------------------------------------


def test_debug_handler_logs_the_listed_events(
    namespace: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """debug_event_handler logs each event of the three classes it is subscribed to."""
    caplog.set_level(logging.DEBUG, logger="hidesync.events")
    run_block(block("1. Event Logging"), namespace)
    listed = [
        WorkflowCreatedEvent(),
        WorkflowStartedEvent(),
        WorkflowStepCompletedEvent(),
    ]

    for event in [*listed, WorkflowPausedEvent()]:
        global_event_bus.publish(event)

    logged = [r.getMessage() for r in caplog.records if r.name == "hidesync.events"]
    assert logged == [f"Event: {type(e).__name__} - {e.to_dict()}" for e in listed]


def monitored_example(namespace: dict[str, Any]) -> dict[str, Any]:
    """Run the monitoring example with a clock that moves 2.5 s per reading."""
    ns = run_block(block("2. Performance Monitoring"), namespace)
    ns["time"] = SteppingClock(step=2.5)
    return ns


def test_monitored_example_handler_subscribes_by_its_hint(
    namespace: dict[str, Any],
) -> None:
    """The decorated handle_workflow_creation keeps the hint the bus subscribes it by."""
    ns = monitored_example(namespace)

    global_event_bus.subscribe(ns["handle_workflow_creation"])

    assert (
        ns["handle_workflow_creation"]
        in global_event_bus.subscribers[WorkflowCreatedEvent]
    )


def test_monitor_warns_about_a_slow_handler(namespace: dict[str, Any]) -> None:
    """A monitored handler runs on publish and a 2.5 s run is logged as slow."""
    ns = monitored_example(namespace)
    seen = Recorder("seen")

    @ns["monitor_handler_performance"]
    def on_created(event: WorkflowCreatedEvent) -> None:
        seen(event.workflow_id)

    global_event_bus.subscribe(on_created)
    global_event_bus.publish(WorkflowCreatedEvent(workflow_id=7))

    assert seen.calls == [call(7)]
    assert ns["logger"].warning.calls == [
        call("Slow handler on_created took 2.50s for WorkflowCreatedEvent")
    ]


def test_monitor_logs_and_reraises_a_failure(namespace: dict[str, Any]) -> None:
    """A monitored handler's exception is logged with its duration and raised again."""
    ns = monitored_example(namespace)
    failing = ns["monitor_handler_performance"](
        Recorder("boom", raises=OSError("down"))
    )

    with pytest.raises(OSError, match="down"):
        failing(WorkflowCreatedEvent())

    assert ns["logger"].error.calls == [
        call("Handler boom failed after 2.50s for WorkflowCreatedEvent: down")
    ]


def test_event_metrics_summarise_tracked_events(namespace: dict[str, Any]) -> None:
    """EventMetrics counts the events of the three subscribed classes, and only those."""
    ns = run_block(block("3. Event Metrics"), namespace)

    for event_type in (
        WorkflowStartedEvent,
        WorkflowCompletedEvent,
        WorkflowStartedEvent,
        WorkflowPausedEvent,
    ):
        global_event_bus.publish(event_type())

    assert ns["metrics"].get_metrics_summary() == {
        "total_events": 3,
        "event_types": {"WorkflowStartedEvent": 2, "WorkflowCompletedEvent": 1},
        "handler_errors": {},
        "most_common_events": [
            ("WorkflowStartedEvent", 2),
            ("WorkflowCompletedEvent", 1),
        ],
    }


# -- troubleshooting --------------------------------------------------------------------


def test_subscribing_by_wire_name_subscribes_the_class() -> None:
    """subscribe("WorkflowCreatedEvent", handler) subscribes to WorkflowCreatedEvent."""
    handler = Recorder("handler")

    global_event_bus.subscribe("WorkflowCreatedEvent", handler)
    global_event_bus.publish(WorkflowCreatedEvent(workflow_id=7))

    assert [7] == [event.workflow_id for event in events_of(handler)]


def test_example_handler_runs_once_for_both_subscriptions(
    namespace: dict[str, Any],
) -> None:
    """The handler subscribed by wire name and by class runs once per event."""
    ns = run_block(block("1. Events Not Being Handled"), namespace)

    global_event_bus.publish(WorkflowCreatedEvent(workflow_id=7))

    assert [7] == [event.workflow_id for event in events_of(ns["handler"])]


def test_debug_subscribers_prints_each_handler_name(
    namespace: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """debug_subscribers prints each event type and the __name__ of its handlers."""
    ns = run_block(block("1. Events Not Being Handled"), namespace)

    ns["debug_subscribers"]()

    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{WorkflowCreatedEvent}: ") for line in lines)
    assert "  - handler" in lines


def test_async_example_runs_its_handler_once_for_its_one_event(
    namespace: dict[str, Any],
) -> None:
    """The example publishes one event twice: async_handler runs, and only once."""
    ns = run_block(block("2. Async/Sync Handler Issues"), namespace)

    assert ns["do_async_work"].calls == [call()]


def test_sync_publish_without_a_loop_runs_async_handler(
    namespace: dict[str, Any],
) -> None:
    """publish outside any event loop runs the async handler to completion."""
    ns = run_block(block("2. Async/Sync Handler Issues"), namespace)
    ns["do_async_work"].calls.clear()

    global_event_bus.publish(WorkflowStartedEvent(workflow_id=2))

    assert ns["do_async_work"].calls == [call()]


def test_sync_publish_in_a_loop_schedules_async_handler(
    namespace: dict[str, Any],
) -> None:
    """publish inside a running loop schedules the async handler; drain awaits it."""
    ns = run_block(block("2. Async/Sync Handler Issues"), namespace)
    ns["do_async_work"].calls.clear()

    async def publish_and_drain() -> int:
        global_event_bus.publish(WorkflowStartedEvent(workflow_id=2))
        return await global_event_bus.drain()

    assert 0 == asyncio.run(publish_and_drain())
    assert ns["do_async_work"].calls == [call()]


def test_publish_async_runs_async_handler(namespace: dict[str, Any]) -> None:
    """publish_async, the document's correct approach, awaits the async handler."""
    ns = run_block(block("2. Async/Sync Handler Issues"), namespace)
    ns["do_async_work"].calls.clear()

    asyncio.run(global_event_bus.publish_async(WorkflowStartedEvent(workflow_id=2)))

    assert ns["do_async_work"].calls == [call()]


def test_failing_handler_does_not_stop_the_other(
    namespace: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """failing_handler's exception is logged and working_handler still runs once."""
    run_block(block("3. Handler Exceptions Stopping Processing"), namespace)

    global_event_bus.publish(WorkflowCreatedEvent())

    out = capsys.readouterr().out
    assert "This will still run even if failing_handler crashes\n" == out
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"{EXAMPLES_MODULE}:failing_handler" in message for message in errors)


def test_cleanup_unsubscribes_the_bound_method(namespace: dict[str, Any]) -> None:
    """TemporaryEventHandler subscribes its bound method and cleanup() removes it."""
    ns = run_block(block("4. Memory Leaks from Uncleaned Subscriptions"), namespace)
    temporary = ns["TemporaryEventHandler"]()
    assert (
        temporary.handle_creation in global_event_bus.subscribers[WorkflowCreatedEvent]
    )

    temporary.cleanup()

    remaining = global_event_bus.subscribers.get(WorkflowCreatedEvent, [])
    assert temporary.handle_creation not in remaining


# -- performance optimisation -----------------------------------------------------------


def batched_publications(namespace: dict[str, Any], clock_step: float) -> list[int]:
    """Add two events to a batcher of two; return how many were published after each."""
    namespace["time"] = SteppingClock(step=clock_step)
    ns = run_block(block("1. Event Batching"), namespace)
    batcher = ns["EventBatcher"](batch_size=2)
    received = recorder_for(WorkflowStepCompletedEvent)

    async def add_two() -> list[int]:
        published = []
        for step_id in (1, 2):
            await batcher.add_event(WorkflowStepCompletedEvent(step_id=step_id))
            published.append(len(received.calls))
        return published

    return asyncio.run(add_two())


def test_event_batcher_publishes_a_full_batch(namespace: dict[str, Any]) -> None:
    """EventBatcher publishes nothing until its batch is full, then all of it."""
    assert [0, 2] == batched_publications(namespace, clock_step=0.0)


def test_event_batcher_flushes_when_the_interval_ran_out(
    namespace: dict[str, Any],
) -> None:
    """EventBatcher publishes at once when its flush interval has passed."""
    assert [1, 2] == batched_publications(namespace, clock_step=10.0)


def test_selective_handler_processes_its_user_only(namespace: dict[str, Any]) -> None:
    """handle_user_events_only passes on the events of its own user and skips others."""
    ns = run_block(block("2. Selective Event Processing"), namespace)
    selective = ns["SelectiveEventHandler"](user_id=456)
    selective.process_event = Recorder("process_event")
    global_event_bus.subscribe(selective.handle_user_events_only)

    global_event_bus.publish(WorkflowStartedEvent(user_id=123))
    global_event_bus.publish(WorkflowStartedEvent(user_id=456))

    assert [456] == [event.user_id for event in events_of(selective.process_event)]


# -- integration ------------------------------------------------------------------------


@pytest.fixture
def app_services(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Install stand-ins for the application modules the startup hook imports."""
    setups = SimpleNamespace(
        workflow=Recorder("setup_workflow_event_handlers"),
        analytics=Recorder("setup_analytics_handlers"),
    )
    for name, setup in [
        ("app.services.workflow_event_handlers", setups.workflow),
        ("app.services.analytics_handlers", setups.analytics),
    ]:
        module = ModuleType(name)
        setattr(module, setup.__name__, setup)
        monkeypatch.setitem(sys.modules, name, module)
    return setups


def fastapi_app(namespace: dict[str, Any]) -> Any:
    """Run the FastAPI example and return its app."""
    with pytest.warns(DeprecationWarning, match="on_event is deprecated"):
        ns = run_block(block("FastAPI Integration"), namespace)
    return ns["app"]


def test_fastapi_startup_runs_the_bus_and_the_hook(
    namespace: dict[str, Any],
    app_services: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At startup the bus starts and the document's on_event hook sets up handlers."""
    from fastapi.testclient import TestClient

    caplog.set_level(logging.INFO, logger="hidesync.events.lifespan")

    with TestClient(fastapi_app(namespace)):
        pass

    assert "event bus started in eager mode" in caplog.messages
    assert app_services.workflow.calls == [call(DB_SESSION)]
    assert app_services.analytics.calls == [call()]


def test_fastapi_endpoint_creates_through_the_service(
    namespace: dict[str, Any], app_services: SimpleNamespace
) -> None:
    """POST /workflows/ hands the validated body to the workflow service."""
    from fastapi.testclient import TestClient

    with TestClient(fastapi_app(namespace)) as client:
        response = client.post("/workflows/", json={"name": "Belt"})

    assert (200, {"id": 7}) == (response.status_code, response.json())
    service = namespace["workflow_service"].create_workflow
    assert service.calls == [call(WorkflowCreate(name="Belt"))]


def test_reservation_handler_runs_the_celery_task(namespace: dict[str, Any]) -> None:
    """A reservation event makes the handler call the Celery task with its fields."""
    ns = run_block(block("Background Task Integration"), namespace)
    # No broker: the document's Celery app runs tasks in place.
    ns["celery_app"].conf.update(
        broker_url="memory://", task_always_eager=True, task_eager_propagates=True
    )

    global_event_bus.publish(
        WorkflowResourceReservedEvent(execution_id=100, resource_id=50, quantity=2.5)
    )

    assert ns["update_inventory_systems"].calls == [call(50, 2.5)]
    assert ns["send_supplier_notifications"].calls == [call(50, 2.5)]
    assert ns["update_cost_tracking"].calls == [call(100, 50, 2.5)]
