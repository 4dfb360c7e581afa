"""camunda-external-task-client-python3 4.5.0, unchanged, against the sandbox engine.

The library's worker loop (``subscribe``) never returns, so the tests drive one iteration at a time
through its public ``fetch_and_execute``; everything on the wire is the library's own code.
"""

from __future__ import annotations

import pytest

from .conftest import Api, bpmn, error, one_task

pytest.importorskip("pydantic")
from camunda.external_task.external_task import ExternalTask, TaskResult  # noqa: E402
from camunda.external_task.external_task_worker import ExternalTaskWorker, NoExternalTaskFound  # noqa: E402

CONFIG = {"maxTasks": 1, "lockDuration": 10_000, "asyncResponseTimeout": 100, "retries": 3, "retryTimeout": 5000,
          "sleepSeconds": 0}


def worker(api: Api, **config: object) -> ExternalTaskWorker:
    return ExternalTaskWorker(worker_id="py-worker", base_url=api.url, config={**CONFIG, **config})


def test_fetch_with_variables_and_complete_with_variables(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work">
      <bpmn:extensionElements><camunda:properties><camunda:property name="system" value="python"/>
      </camunda:properties></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="next"/>
    <bpmn:serviceTask id="next" camunda:type="external" camunda:topic="next"/>"""))
    instance = api.start(variables={"amount": {"value": 41}, "customer": {"value": {"name": "Ann"}}},
                         businessKey="order-1")
    seen: dict = {}

    def handle(task: ExternalTask) -> TaskResult:
        seen["amount"] = task.get_variable("amount")
        seen["customer"] = task.get_variable("customer")
        seen["business_key"] = task.get_business_key()
        seen["system"] = task.get_extension_property("system")
        return task.complete({"total": task.get_variable("amount") + 1, "items": ["a", "b"]},
                             {"scratch": "local only"})

    worker(api).fetch_and_execute("work", handle)
    assert seen == {"amount": 41, "customer": {"name": "Ann"}, "business_key": "order-1", "system": "python"}
    variables = api.get(f"/process-instance/{instance['id']}/variables").json()
    assert variables["total"] == {"type": "Integer", "value": 42, "valueInfo": {}}
    assert variables["items"]["value"] == ["a", "b"] and "scratch" not in variables
    assert len(api.fetch(topic="next")) == 1


def test_failure_with_retries_until_an_incident(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    client = worker(api)
    attempts = []

    def fail(task: ExternalTask) -> TaskResult:
        attempts.append(task.get_task_id())
        return task.failure("backend down", "stack trace", max_retries=2, retry_timeout=1000)

    client.fetch_and_execute("work", fail)  # first failure: retries null -> 2
    assert api.tasks()[0]["retries"] == 2
    with pytest.raises(NoExternalTaskFound):
        client.fetch_and_execute("work", fail)  # the retry timeout has not passed yet
    for expected in (1, 0):
        api.advance(1000)
        client.fetch_and_execute("work", fail)
        assert api.tasks()[0]["retries"] == expected
    assert len(attempts) == 3
    (incident,) = api.get("/incident").json()
    assert incident["incidentMessage"] == "backend down" and incident["configuration"] == attempts[0]
    api.advance(1000)
    with pytest.raises(NoExternalTaskFound):
        client.fetch_and_execute("work", fail)


def test_bpmn_error_caught_by_a_boundary_event(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:boundaryEvent id="rejected" attachedToRef="task">
      <bpmn:errorEventDefinition errorRef="err" camunda:errorMessageVariable="reason"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="rejected" targetRef="fix"/>
    <bpmn:serviceTask id="fix" camunda:type="external" camunda:topic="fix"/>""",
                          errors='<bpmn:error id="err" errorCode="REJECTED"/>'))
    instance = api.start()
    task_ids = []

    def reject(task: ExternalTask) -> TaskResult:
        task_ids.append(task.get_task_id())
        return task.bpmn_error("REJECTED", "not allowed", {"decision": "no"})

    worker(api).fetch_and_execute("work", reject)
    fix = api.fetch_one(topic="fix")
    assert fix["variables"]["reason"]["value"] == "not allowed"
    assert fix["variables"]["decision"]["value"] == "no"
    assert "end" not in api.activities(instance["id"])
    error(api.complete(task_ids[0], worker="py-worker"), 404)


def test_long_poll_of_the_library_returns_empty(api: Api) -> None:
    with pytest.raises(NoExternalTaskFound):
        worker(api).fetch_and_execute("nothing", lambda task: task.complete())
