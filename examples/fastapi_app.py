"""A small HideSync-style API that announces what happened as domain events.

    uvicorn examples.fastapi_app:app                       # eager mode, the default
    HIDESYNC_EVENTS_MODE=celery HIDESYNC_EVENTS_BROKER_URL=redis://127.0.0.1:6379/0 \\
        uvicorn examples.fastapi_app:app                   # the worker fleet handles

Each endpoint changes the store, then publishes what changed with
``await global_event_bus.publish_async(...)``:

=========================================== ==========================================
POST /workflows                             WorkflowCreatedEvent
POST /workflows/{id}/executions             WorkflowStartedEvent, then
                                            WorkflowResourceReservedEvent per material
POST /executions/{id}/steps/{step}/complete WorkflowStepCompletedEvent
POST /executions/{id}/complete              WorkflowCompletedEvent, then
                                            WorkflowResourceReleasedEvent per material
POST /tools/{id}/checkouts                  ToolCheckedOut
POST /checkouts/{id}/return                 ToolReturned
GET  /tools, /reports/{tools,analytics,...} (nothing)
=========================================== ==========================================

``setup_event_handlers(app)`` builds the bus's transport at startup (bad settings stop
the start, not the first request; a broker that is down does not, as ``publish`` spools
events until it is back) and drains the bus's handler tasks at shutdown.

Where the handlers run: this module imports :mod:`workers.handlers`, which subscribes
HideSync's reference handlers to ``global_event_bus``.

* Eager mode: they run in this process; ``publish_async`` returns once they have run.
* Celery mode (``HIDESYNC_EVENTS_MODE=celery``): ``publish_async`` returns once the
  broker has the event and the worker fleet runs the handlers (the workers import
  ``workers.handlers`` themselves). A Celery-mode bus never runs the subscriptions made
  here; the import is there for the ``/reports`` endpoints, whose readers are the
  handler objects of that package.

``GET /reports/...`` reads what the reference handlers computed from the bus's store:
this process's memory in eager mode, the Redis the workers write to in Celery mode
(where a report shows a request's effects once a worker has handled its events).

:class:`WorkshopStore` is the example's stand-in for HideSync's database: records in
memory, one store per app, three tools to begin with. It is changed before the events
are published; a real service would commit first too (or use an outbox).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from hidesync_events import (
    ToolCheckedOut,
    ToolReturned,
    WorkflowCompletedEvent,
    WorkflowCreatedEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    global_event_bus,
    setup_event_handlers,
)
from workers import handlers as reference

# -- records (the stand-in database's rows, returned as they are) ----------------------


class Material(BaseModel):
    """A material a workflow consumes, reserved while one of its executions runs."""

    resource_id: int
    resource_name: str
    quantity: float = Field(gt=0)
    resource_type: str = "material"


class Step(BaseModel):
    id: int
    name: str
    step_type: str


class Workflow(BaseModel):
    id: int
    name: str
    is_template: bool
    steps: list[Step]
    materials: list[Material]


class Execution(BaseModel):
    """A run of a workflow: its completed steps, their minutes, what it holds."""

    id: int
    workflow_id: int
    status: Literal["running", "completed"] = "running"
    completed_steps: list[int] = Field(default_factory=list)
    minutes: float = 0.0
    reserved: list[Material] = Field(default_factory=list)


class Tool(BaseModel):
    id: int
    name: str
    category: str
    checkout_id: int | None = None


class Checkout(BaseModel):
    id: int
    tool_id: int
    checked_out_by: str
    project_id: int | None = None
    due_date: date | None = None
    returned: bool = False
    has_issues: bool = False


class WorkshopStore:
    """The example's stand-in for a database: dicts of records by id, in memory."""

    def __init__(self) -> None:
        self.workflows: dict[int, Workflow] = {}
        self.executions: dict[int, Execution] = {}
        self.checkouts: dict[int, Checkout] = {}
        self.tools: dict[int, Tool] = {
            1: Tool(id=1, name="Edge beveler", category="leather"),
            2: Tool(id=2, name="Stitching chisel", category="leather"),
            3: Tool(id=3, name="Block plane", category="wood"),
        }


R = TypeVar("R", bound=BaseModel)


def new_id(records: dict[int, R]) -> int:
    """The next id of a table (records are never deleted, so ids are never reused)."""
    return max(records, default=0) + 1


def found(records: dict[int, R], record_id: int, what: str) -> R:
    """The record ``record_id`` of ``records``, or a 404 naming what is missing."""
    try:
        return records[record_id]
    except KeyError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no {what} with id {record_id}"
        ) from None


def conflict(detail: str) -> HTTPException:
    """A 409: the request does not fit the record's current state."""
    return HTTPException(status.HTTP_409_CONFLICT, detail)


def get_store(request: Request) -> WorkshopStore:
    """The store of the app serving this request."""
    store: WorkshopStore = request.app.state.store
    return store


Store = Annotated[WorkshopStore, Depends(get_store)]

# -- requests --------------------------------------------------------------------------


class StepIn(BaseModel):
    name: str = Field(min_length=1)
    step_type: str = "manual"


class WorkflowIn(BaseModel):
    name: str = Field(min_length=1)
    is_template: bool = False
    steps: list[StepIn] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)


class StepDoneIn(BaseModel):
    actual_duration: float | None = Field(default=None, ge=0, description="minutes")


class ExecutionDoneIn(BaseModel):
    outcome_id: int | None = None


class CheckoutIn(BaseModel):
    checked_out_by: str = Field(min_length=1)
    project_id: int | None = None
    due_date: date | None = None


class ReturnIn(BaseModel):
    has_issues: bool = False
    condition_after: str | None = None


# -- workflows and executions ----------------------------------------------------------

router = APIRouter()

ResourceChange = TypeVar(
    "ResourceChange", WorkflowResourceReservedEvent, WorkflowResourceReleasedEvent
)


def resource_event(
    event_type: type[ResourceChange], execution: Execution, material: Material
) -> ResourceChange:
    """The reservation or release of ``material`` by ``execution``."""
    return event_type(
        workflow_id=execution.workflow_id,
        execution_id=execution.id,
        resource_type=material.resource_type,
        resource_id=material.resource_id,
        resource_name=material.resource_name,
        quantity=material.quantity,
    )


@router.post("/workflows", status_code=status.HTTP_201_CREATED)
async def create_workflow(body: WorkflowIn, store: Store) -> Workflow:
    """Create a workflow; its steps are numbered from 1."""
    steps = [
        Step(id=n, name=step.name, step_type=step.step_type)
        for n, step in enumerate(body.steps, start=1)
    ]
    workflow = Workflow(
        id=new_id(store.workflows),
        name=body.name,
        is_template=body.is_template,
        steps=steps,
        materials=body.materials,
    )
    store.workflows[workflow.id] = workflow

    await global_event_bus.publish_async(
        WorkflowCreatedEvent(
            workflow_id=workflow.id,
            workflow_name=workflow.name,
            is_template=workflow.is_template,
        )
    )
    return workflow


@router.post("/workflows/{workflow_id}/executions", status_code=status.HTTP_201_CREATED)
async def start_execution(workflow_id: int, store: Store) -> Execution:
    """Start an execution of a workflow and reserve the workflow's materials."""
    workflow = found(store.workflows, workflow_id, "workflow")
    execution = Execution(
        id=new_id(store.executions),
        workflow_id=workflow.id,
        reserved=list(workflow.materials),
    )
    store.executions[execution.id] = execution

    await global_event_bus.publish_async(
        WorkflowStartedEvent(
            workflow_id=workflow.id,
            execution_id=execution.id,
            workflow_name=workflow.name,
        )
    )
    for material in execution.reserved:
        reserved = resource_event(WorkflowResourceReservedEvent, execution, material)
        await global_event_bus.publish_async(reserved)
    return execution


def running_execution(store: WorkshopStore, execution_id: int) -> Execution:
    """The execution ``execution_id``: 404 when unknown, 409 when already completed."""
    execution = found(store.executions, execution_id, "execution")
    if execution.status != "running":
        raise conflict(f"execution {execution_id} is already {execution.status}")

    return execution


@router.post("/executions/{execution_id}/steps/{step_id}/complete")
async def complete_step(
    execution_id: int, step_id: int, body: StepDoneIn, store: Store
) -> Execution:
    """Record that a step of a running execution is done, and how long it took."""
    execution = running_execution(store, execution_id)
    workflow = store.workflows[execution.workflow_id]
    steps = {step.id: step for step in workflow.steps}
    step = found(steps, step_id, f"step in workflow {workflow.id}")
    if step.id in execution.completed_steps:
        raise conflict(f"step {step.id} of execution {execution.id} is already done")

    execution.completed_steps.append(step.id)
    execution.minutes += body.actual_duration or 0.0

    await global_event_bus.publish_async(
        WorkflowStepCompletedEvent(
            workflow_id=workflow.id,
            execution_id=execution.id,
            step_id=step.id,
            step_name=step.name,
            step_type=step.step_type,
            actual_duration=body.actual_duration,
        )
    )
    return execution


@router.post("/executions/{execution_id}/complete")
async def complete_execution(
    execution_id: int, store: Store, body: ExecutionDoneIn | None = None
) -> Execution:
    """Complete a running execution and release everything it reserved."""
    execution = running_execution(store, execution_id)
    workflow = store.workflows[execution.workflow_id]
    released, execution.reserved = execution.reserved, []
    execution.status = "completed"

    await global_event_bus.publish_async(
        WorkflowCompletedEvent(
            workflow_id=workflow.id,
            execution_id=execution.id,
            workflow_name=workflow.name,
            outcome_id=body.outcome_id if body else None,
            total_duration=execution.minutes,
        )
    )
    for material in released:
        release = resource_event(WorkflowResourceReleasedEvent, execution, material)
        await global_event_bus.publish_async(release)
    return execution


# -- tools -----------------------------------------------------------------------------


@router.get("/tools")
async def list_tools(store: Store) -> list[Tool]:
    """Every tool, with the open checkout of those checked out."""
    return list(store.tools.values())


@router.post("/tools/{tool_id}/checkouts", status_code=status.HTTP_201_CREATED)
async def check_out_tool(tool_id: int, body: CheckoutIn, store: Store) -> Checkout:
    """Check a tool out to someone; 409 while someone else has it."""
    tool = found(store.tools, tool_id, "tool")
    if tool.checkout_id is not None:
        raise conflict(f"tool {tool.id} is checked out (checkout {tool.checkout_id})")

    checkout = Checkout(
        id=new_id(store.checkouts),
        tool_id=tool.id,
        checked_out_by=body.checked_out_by,
        project_id=body.project_id,
        due_date=body.due_date,
    )
    store.checkouts[checkout.id] = checkout
    tool.checkout_id = checkout.id

    await global_event_bus.publish_async(
        ToolCheckedOut(
            checkout_id=checkout.id,
            tool_id=tool.id,
            checked_out_by=checkout.checked_out_by,
            project_id=checkout.project_id,
            due_date=checkout.due_date,
        )
    )
    return checkout


@router.post("/checkouts/{checkout_id}/return")
async def return_tool(
    checkout_id: int, store: Store, body: ReturnIn | None = None
) -> Checkout:
    """Return a checked-out tool, saying whether it came back with issues."""
    checkout = found(store.checkouts, checkout_id, "checkout")
    if checkout.returned:
        raise conflict(f"checkout {checkout.id} was already returned")

    returned = body or ReturnIn()
    checkout.returned, checkout.has_issues = True, returned.has_issues
    store.tools[checkout.tool_id].checkout_id = None

    await global_event_bus.publish_async(
        ToolReturned(
            checkout_id=checkout.id,
            tool_id=checkout.tool_id,
            has_issues=returned.has_issues,
            condition_after=returned.condition_after,
        )
    )
    return checkout


# -- reports: what the reference handlers computed -------------------------------------


class ToolReport(BaseModel):
    """``workers.handlers.tools.report()``: open checkouts by tool id, maintenance."""

    model_config = ConfigDict(from_attributes=True)

    checked_out: dict[int, str]
    in_maintenance: list[int]
    checkouts: int
    returned_with_issues: int


class StepTypeStats(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step_type: str
    completed: int
    minutes: float
    mean_minutes: float


class AnalyticsReport(BaseModel):
    """``workers.handlers.analytics.report()``: executions by outcome, step minutes."""

    model_config = ConfigDict(from_attributes=True)

    started: int
    completed: int
    cancelled: int
    completed_minutes: float
    steps: list[StepTypeStats]


class ResourceReport(BaseModel):
    """``workers.handlers.resources.report()``: open reservations, shortages."""

    model_config = ConfigDict(from_attributes=True)

    reserved: int
    released: int
    open_reservations: dict[str, float]
    shortages: list[dict[str, JsonValue]]


class AuditReport(BaseModel):
    """``workers.handlers.audit.report()``: events recorded, by type, the latest."""

    model_config = ConfigDict(from_attributes=True)

    recorded: int
    by_type: dict[str, int]
    latest: list[dict[str, JsonValue]]


# Plain `def`: in Celery mode a report reads Redis, which blocks; FastAPI runs these
# in its thread pool.


@router.get("/reports/tools")
def tools_report() -> ToolReport:
    """Who has which tool, as the reference handlers recorded it."""
    return ToolReport.model_validate(reference.tools.report())


@router.get("/reports/analytics")
def analytics_report() -> AnalyticsReport:
    """Executions started, completed and cancelled; minutes per step type."""
    return AnalyticsReport.model_validate(reference.analytics.report())


@router.get("/reports/resources")
def resources_report() -> ResourceReport:
    """What open executions hold, and the shortages reported."""
    return ResourceReport.model_validate(reference.resources.report())


@router.get("/reports/audit")
def audit_report() -> AuditReport:
    """How many events of each type were handled, and the latest five."""
    return AuditReport.model_validate(reference.audit.report())


# -- the app ---------------------------------------------------------------------------


def create_app() -> FastAPI:
    """A new app with its own store, running ``global_event_bus`` while it serves."""
    app = FastAPI(title="HideSync workshop (hidesync-events example)")
    app.state.store = WorkshopStore()
    app.include_router(router)
    setup_event_handlers(app)
    return app


app = create_app()
