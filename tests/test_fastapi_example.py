"""The FastAPI example, examples/fastapi_app.py: its endpoints publish HideSync's
events, and the reference handlers' reports show their effects, in eager mode and
through a real worker."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from examples import fastapi_app
from examples.fastapi_app import create_app
from hidesync_events import (
    DomainEvent,
    ToolCheckedOut,
    ToolReturned,
    WorkflowCompletedEvent,
    WorkflowCreatedEvent,
    WorkflowResourceReleasedEvent,
    WorkflowResourceReservedEvent,
    WorkflowStartedEvent,
    WorkflowStepCompletedEvent,
    configure,
    global_event_bus,
)
from tests.support.fleet import WorkerFleet
from tests.support.harness import Harness

WALLET: dict[str, Any] = {
    "name": "Leather wallet",
    "steps": [
        {"name": "Cut panels", "step_type": "cutting"},
        {"name": "Saddle stitch", "step_type": "stitching"},
    ],
    "materials": [
        {"resource_id": 11, "resource_name": "Veg-tan shoulder", "quantity": 2.5},
        {"resource_id": 12, "resource_name": "Linen thread", "quantity": 10},
    ],
}


def facts(event: DomainEvent) -> dict[str, Any]:
    """An event's type and fields, without the id and time that every event has."""
    data = event.to_dict()
    del data["event_id"], data["timestamp"]
    return data


def reserved(
    execution_id: int, resource_id: int, name: str, quantity: float
) -> WorkflowResourceReservedEvent:
    return WorkflowResourceReservedEvent(
        workflow_id=1,
        execution_id=execution_id,
        resource_type="material",
        resource_id=resource_id,
        resource_name=name,
        quantity=quantity,
    )


def released(
    execution_id: int, resource_id: int, name: str, quantity: float
) -> WorkflowResourceReleasedEvent:
    return WorkflowResourceReleasedEvent(
        **reserved(execution_id, resource_id, name, quantity).model_dump(
            exclude={"event_id", "timestamp"}
        )
    )


def run_wallet(client: TestClient, minutes: tuple[float, float]) -> int:
    """Create the wallet workflow, start it and complete both steps; return the
    execution id."""
    workflow = client.post("/workflows", json=WALLET).json()
    execution = client.post(f"/workflows/{workflow['id']}/executions").json()
    for step, duration in zip((1, 2), minutes, strict=True):
        client.post(
            f"/executions/{execution['id']}/steps/{step}/complete",
            json={"actual_duration": duration},
        )
    return int(execution["id"])


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The example app in eager mode, its lifespan running."""
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def published() -> list[DomainEvent]:
    """Every event the global bus delivers during the test, in order."""
    events: list[DomainEvent] = []

    def record(event: DomainEvent) -> None:
        events.append(event)

    global_event_bus.subscribe(DomainEvent, record)
    return events


class TestWorkflows:
    def test_creating_a_workflow_publishes_it(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """POST /workflows answers 201 with the workflow and publishes
        WorkflowCreatedEvent."""
        response = client.post("/workflows", json=WALLET)

        assert 201 == response.status_code
        assert (1, [1, 2]) == (
            response.json()["id"],
            [step["id"] for step in response.json()["steps"]],
        )
        expected = WorkflowCreatedEvent(workflow_id=1, workflow_name="Leather wallet")
        assert [facts(expected)] == [facts(event) for event in published]

    def test_starting_an_execution_reserves_the_materials(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Starting an execution publishes WorkflowStartedEvent and one
        WorkflowResourceReservedEvent per material; the reservations are open."""
        # Given a workflow with two materials
        client.post("/workflows", json=WALLET)
        published.clear()

        # When an execution of it starts
        response = client.post("/workflows/1/executions")

        # Then it is announced with its reservations, which the resources report holds
        assert 201 == response.status_code
        started = WorkflowStartedEvent(
            workflow_id=1, execution_id=1, workflow_name="Leather wallet"
        )
        expected = [
            started,
            reserved(1, 11, "Veg-tan shoulder", 2.5),
            reserved(1, 12, "Linen thread", 10),
        ]
        assert [facts(e) for e in expected] == [facts(e) for e in published]
        report = client.get("/reports/resources").json()
        assert {"1:material:11": 2.5, "1:material:12": 10.0} == report[
            "open_reservations"
        ]

    def test_completing_a_step_publishes_its_duration(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Completing a step publishes WorkflowStepCompletedEvent with the minutes it
        took, which the analytics report counts by step type."""
        # Given a running execution
        client.post("/workflows", json=WALLET)
        client.post("/workflows/1/executions")
        published.clear()

        # When its first step is done after 30 minutes
        response = client.post(
            "/executions/1/steps/1/complete", json={"actual_duration": 30}
        )

        # Then the step is announced and counted
        assert 200 == response.status_code
        assert [1] == response.json()["completed_steps"]
        expected = WorkflowStepCompletedEvent(
            workflow_id=1,
            execution_id=1,
            step_id=1,
            step_name="Cut panels",
            step_type="cutting",
            actual_duration=30,
        )
        assert [facts(expected)] == [facts(event) for event in published]
        steps = client.get("/reports/analytics").json()["steps"]
        assert [
            {
                "step_type": "cutting",
                "completed": 1,
                "minutes": 30.0,
                "mean_minutes": 30.0,
            }
        ] == steps

    def test_completing_an_execution_releases_its_reservations(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Completing an execution publishes WorkflowCompletedEvent with the steps'
        total minutes and releases every reservation."""
        # Given an execution whose two steps took 30 and 45 minutes
        execution_id = run_wallet(client, (30, 45))
        published.clear()

        # When the execution is completed
        response = client.post(
            f"/executions/{execution_id}/complete", json={"outcome_id": 3}
        )

        # Then it is announced, its materials are released, and the reports agree
        assert 200 == response.status_code
        assert ("completed", []) == (
            response.json()["status"],
            response.json()["reserved"],
        )
        completed = WorkflowCompletedEvent(
            workflow_id=1,
            execution_id=1,
            workflow_name="Leather wallet",
            outcome_id=3,
            total_duration=75,
        )
        expected = [
            completed,
            released(1, 11, "Veg-tan shoulder", 2.5),
            released(1, 12, "Linen thread", 10),
        ]
        assert [facts(e) for e in expected] == [facts(e) for e in published]
        resources = client.get("/reports/resources").json()
        assert (2, 2, {}) == (
            resources["reserved"],
            resources["released"],
            resources["open_reservations"],
        )
        analytics = client.get("/reports/analytics").json()
        assert (1, 1, 75.0) == (
            analytics["started"],
            analytics["completed"],
            analytics["completed_minutes"],
        )

    def test_a_completed_execution_takes_no_more_steps(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Completing a step or the execution again after completion is a 409 that
        publishes nothing."""
        execution_id = run_wallet(client, (30, 45))
        client.post(f"/executions/{execution_id}/complete")
        published.clear()

        step = client.post(f"/executions/{execution_id}/steps/1/complete", json={})
        again = client.post(f"/executions/{execution_id}/complete")

        assert (409, 409) == (step.status_code, again.status_code)
        assert [] == published

    def test_a_step_is_completed_once(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Completing the same step twice is a 409; the step is counted once."""
        client.post("/workflows", json=WALLET)
        client.post("/workflows/1/executions")

        first = client.post("/executions/1/steps/1/complete", json={})
        second = client.post("/executions/1/steps/1/complete", json={})

        assert (200, 409) == (first.status_code, second.status_code)
        steps = [e for e in published if isinstance(e, WorkflowStepCompletedEvent)]
        assert 1 == len(steps)

    def test_a_step_outside_the_workflow_is_not_found(self, client: TestClient) -> None:
        """A step id the execution's workflow does not have is a 404."""
        client.post("/workflows", json=WALLET)
        client.post("/workflows/1/executions")

        response = client.post("/executions/1/steps/3/complete", json={})

        assert 404 == response.status_code
        assert "no step in workflow 1 with id 3" == response.json()["detail"]


class TestTools:
    def test_a_checkout_then_its_return_show_in_the_tools_report(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Checking a tool out publishes ToolCheckedOut and the tools report shows who
        has it; returning it publishes ToolReturned and frees it."""
        # When the stitching chisel is checked out
        response = client.post(
            "/tools/2/checkouts",
            json={"checked_out_by": "Ana", "project_id": 7, "due_date": "2025-03-01"},
        )

        # Then Ana has it
        assert 201 == response.status_code
        checkout_id = response.json()["id"]
        assert {"2": "Ana"} == client.get("/reports/tools").json()["checked_out"]

        # When she returns it with a chipped edge
        returned = client.post(
            f"/checkouts/{checkout_id}/return",
            json={"has_issues": True, "condition_after": "chipped"},
        )

        # Then nobody has it, the issue is counted, and both events were published
        assert 200 == returned.status_code
        assert {
            "checked_out": {},
            "in_maintenance": [],
            "checkouts": 1,
            "returned_with_issues": 1,
        } == client.get("/reports/tools").json()
        expected = [
            ToolCheckedOut(
                checkout_id=checkout_id,
                tool_id=2,
                checked_out_by="Ana",
                project_id=7,
                due_date="2025-03-01",
            ),
            ToolReturned(
                checkout_id=checkout_id,
                tool_id=2,
                has_issues=True,
                condition_after="chipped",
            ),
        ]
        assert [facts(e) for e in expected] == [facts(e) for e in published]

    def test_a_checked_out_tool_is_not_checked_out_again(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """A second checkout of a tool someone has is a 409 that publishes nothing."""
        client.post("/tools/1/checkouts", json={"checked_out_by": "Ana"})

        response = client.post("/tools/1/checkouts", json={"checked_out_by": "Ben"})

        assert 409 == response.status_code
        assert [ToolCheckedOut] == [type(event) for event in published]

    def test_a_checkout_is_returned_once(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """Returning a checkout twice is a 409; the return is published once."""
        client.post("/tools/1/checkouts", json={"checked_out_by": "Ana"})

        first = client.post("/checkouts/1/return")
        second = client.post("/checkouts/1/return")

        assert (200, 409) == (first.status_code, second.status_code)
        assert [ToolCheckedOut, ToolReturned] == [type(event) for event in published]


class TestRequests:
    @pytest.mark.parametrize(
        ("path", "body", "detail"),
        [
            ("/workflows/9/executions", None, "no workflow with id 9"),
            ("/executions/9/steps/1/complete", {}, "no execution with id 9"),
            ("/executions/9/complete", None, "no execution with id 9"),
            ("/tools/9/checkouts", {"checked_out_by": "Ana"}, "no tool with id 9"),
            ("/checkouts/9/return", None, "no checkout with id 9"),
        ],
    )
    def test_unknown_ids_are_not_found(
        self,
        client: TestClient,
        published: list[DomainEvent],
        path: str,
        body: dict[str, Any] | None,
        detail: str,
    ) -> None:
        """A request naming a record that does not exist is a 404 saying which, and
        publishes nothing."""
        response = client.post(path, json=body)

        assert (404, detail) == (response.status_code, response.json()["detail"])
        assert [] == published

    def test_invalid_bodies_are_refused_before_anything_is_published(
        self, client: TestClient, published: list[DomainEvent]
    ) -> None:
        """A request body that fails validation is a 422 naming the field."""
        bad = {**WALLET, "materials": [{"resource_id": 1, "resource_name": "x"}]}

        response = client.post("/workflows", json=bad)

        assert 422 == response.status_code
        assert ["body", "materials", 0, "quantity"] == response.json()["detail"][0][
            "loc"
        ]
        assert [] == published


class TestModule:
    def test_each_app_has_a_store_of_its_own(self) -> None:
        """create_app() starts from an empty store: ids begin at 1 in every app."""
        with TestClient(create_app()) as first, TestClient(create_app()) as second:
            first.post("/workflows", json=WALLET)

            response = second.post("/workflows", json=WALLET)

        assert 1 == response.json()["id"]

    def test_reloading_the_module_subscribes_nothing_twice(self) -> None:
        """Reloading the example leaves each reference handler subscribed once."""
        before = global_event_bus.subscribers

        module = importlib.reload(fastapi_app)

        assert before == global_event_bus.subscribers
        with TestClient(module.app) as client:
            client.post("/tools/1/checkouts", json={"checked_out_by": "Ana"})
            audit = client.get("/reports/audit").json()
        assert {"ToolCheckedOut": 1} == audit["by_type"]


def assert_eventually(client: TestClient, path: str, expected: dict[str, Any]) -> None:
    """Read ``GET path`` until it answers ``expected``, failing with the last answer
    after the harness's timeout: workers write while the test reads."""
    Harness("celery").wait(
        lambda: client.get(path).json(),
        lambda found: expected == found,
        f"GET {path} to answer {expected!r}",
    )


class TestCeleryMode:
    @pytest.fixture
    def celery_client(self, worker_fleet: WorkerFleet) -> Iterator[TestClient]:
        """The example app in Celery mode, with one worker running the reference
        handlers on every category."""
        worker_fleet.start("workshop", handler_modules=("workers.handlers",))
        configure(mode="celery", broker_url=worker_fleet.broker_url)
        with TestClient(create_app()) as client:
            yield client

    def test_a_checkout_and_its_return_reach_the_worker(
        self, celery_client: TestClient
    ) -> None:
        """The worker handles the checkout and the return the API published; the API's
        tools report reads its results from Redis."""
        # Given the API in Celery mode and a worker with the reference handlers
        client = celery_client

        # When a tool is checked out
        response = client.post("/tools/3/checkouts", json={"checked_out_by": "Ana"})

        # Then the worker records who has it
        assert 201 == response.status_code
        checked_out = {
            "checked_out": {"3": "Ana"},
            "in_maintenance": [],
            "checkouts": 1,
            "returned_with_issues": 0,
        }
        assert_eventually(client, "/reports/tools", checked_out)

        # When it is returned with issues
        checkout_id = response.json()["id"]
        client.post(f"/checkouts/{checkout_id}/return", json={"has_issues": True})

        # Then the worker frees the tool and counts the issue
        returned = {**checked_out, "checked_out": {}, "returned_with_issues": 1}
        assert_eventually(client, "/reports/tools", returned)

    def test_an_execution_reaches_the_worker(self, celery_client: TestClient) -> None:
        """The worker reserves an execution's materials when it starts, and releases
        them and counts its minutes when it completes."""
        # Given the API in Celery mode and a worker with the reference handlers
        client = celery_client

        # When an execution of the wallet workflow starts
        client.post("/workflows", json=WALLET)
        client.post("/workflows/1/executions")

        # Then the worker holds its two reservations
        reserved = {
            "reserved": 2,
            "released": 0,
            "open_reservations": {"1:material:11": 2.5, "1:material:12": 10.0},
            "shortages": [],
        }
        assert_eventually(client, "/reports/resources", reserved)

        # When both steps are done and the execution completes
        for step, minutes in ((1, 30), (2, 45)):
            client.post(
                f"/executions/1/steps/{step}/complete",
                json={"actual_duration": minutes},
            )
        client.post("/executions/1/complete")

        # Then the reservations are released and the analytics count the minutes
        released = {**reserved, "released": 2, "open_reservations": {}}
        assert_eventually(client, "/reports/resources", released)
        assert_eventually(
            client,
            "/reports/analytics",
            {
                "started": 1,
                "completed": 1,
                "cancelled": 0,
                "completed_minutes": 75.0,
                "steps": [
                    {
                        "step_type": "cutting",
                        "completed": 1,
                        "minutes": 30.0,
                        "mean_minutes": 30.0,
                    },
                    {
                        "step_type": "stitching",
                        "completed": 1,
                        "minutes": 45.0,
                        "mean_minutes": 45.0,
                    },
                ],
            },
        )
