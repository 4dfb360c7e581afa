"""Camunda's own external-task example models (tests/sandbox_camunda/models, copied unchanged) deploy and
run to the end, driven the way their own workers drive them: the same topics, the same variables."""

from __future__ import annotations

from pathlib import Path

from .conftest import Api

MODELS = Path(__file__).parent / "models"
INVOICE = {"type": "Object", "value": "<invoice><id>A123</id></invoice>",
           "valueInfo": {"objectTypeName": "org.camunda.bpm.Invoice", "serializationDataFormat": "application/xml"}}


def _deploy(api: Api, name: str) -> dict:
    return api.deploy_model((MODELS / name).read_bytes(), name=name)


def _instances(api: Api) -> list[dict]:
    return api.get("/history/process-instance", processDefinitionKey="Order_Process", sortBy="startTime",
                   sortOrder="asc").json()


def test_order_handling_starts_on_its_cron_and_archives_when_the_invoice_is_on_the_process(api: Api) -> None:
    deployment = _deploy(api, "order-handling.bpmn")
    (definition,) = deployment["deployedProcessDefinitions"].values()
    assert definition["historyTimeToLive"] == 180
    assert _instances(api) == []

    api.advance(5_000)  # "0/5 0/1 * 1/1 * ?": every five seconds
    (instance,) = _instances(api)
    assert instance["startActivityId"] == "StartEvent_1"

    # invoiceCreator, the random branch that completes with process variables: invoiceId becomes visible
    # to the conditional boundary event "Archive invoice?", which interrupts the subprocess
    task = api.fetch_one(topic="invoiceCreator")
    response = api.complete(task["id"], variables={"invoiceId": {"value": "A123"}, "invoice": INVOICE})
    assert response.status_code == 204, response.text
    archiver = api.fetch_one(topic="invoiceArchiver", variables=["invoice"])
    assert archiver["variables"]["invoice"]["value"] == INVOICE["value"]
    assert api.complete(archiver["id"]).status_code == 204
    finished = api.history(instance["id"])
    assert finished["state"] == "COMPLETED"
    activities = api.activities(instance["id"])
    assert "BoundaryEvent_1y1bvad" in activities and activities[-1] == "EndEvent_0q2wrcp"
    assert "EndEvent_00asnpf" not in activities


def test_order_handling_local_invoice_ends_the_subprocess_normally(api: Api) -> None:
    _deploy(api, "order-handling.bpmn")
    api.advance(5_000)
    (instance,) = _instances(api)
    task = api.fetch_one(topic="invoiceCreator")
    # the other branch: the same variables as local variables of the task stay invisible to the boundary
    response = api.complete(task["id"], localVariables={"invoiceId": {"value": "A123"}, "invoice": INVOICE})
    assert response.status_code == 204, response.text
    assert api.fetch(topic="invoiceArchiver") == []
    assert api.history(instance["id"])["state"] == "COMPLETED"
    assert api.activities(instance["id"])[-1] == "EndEvent_00asnpf"


def test_order_handling_keeps_starting_instances_on_schedule(api: Api) -> None:
    _deploy(api, "order-handling.bpmn")
    for _ in range(3):
        api.advance(5_000)
    assert len(_instances(api)) == 3
    assert len(api.fetch(topic="invoiceCreator")) == 3


def test_request_interceptor_process_runs_to_the_end(api: Api) -> None:
    _deploy(api, "request-interceptor.bpmn")
    instance = api.start(key="process")
    task = api.fetch_one(topic="my-topic")
    assert api.complete(task["id"]).status_code == 204
    assert api.history(instance["id"])["state"] == "COMPLETED"
    assert api.activities(instance["id"]) == ["Event_0qpo74x", "Activity_0myg2yy", "Event_1uufnns"]
