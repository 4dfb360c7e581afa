"""Responses applied to the sandbox engine: complete, failure down to an incident, BPMN error, gone, parked.
Responses that wait while the engine is away: test_camunda_away.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from broker_queues import Queues, wait_for
from worker_helpers import Engine
from worker_models import one_task, with_error_boundary

from exchanger.contracts import ParkedRecord, ResponseMessage, ResponseStatus, TaskMessage
from exchanger.variables import from_typed, to_typed_map


def response(task: TaskMessage, status: ResponseStatus, **fields: Any) -> ResponseMessage:
    return ResponseMessage(task_id=task.task_id, process_instance_id=task.process_instance_id,
                           worker_id=task.worker_id, tenant_id=task.tenant_id, topic_name=task.topic_name,
                           status=status, **fields)


def next_task(queues: Queues, queue: str = "bitrix24.queue") -> TaskMessage:
    return TaskMessage.from_bytes(queues.get(queue)[2])


def parked(queues: Queues) -> ParkedRecord:
    return ParkedRecord.from_bytes(queues.get("errors.camunda_tasks.queue")[2])


LONG_TEXT = "Ω" + "long text " * 5000
VALUES: dict[str, Any] = {
    "result": {"deal": {"id": 17, "stages": ["new", "won"], "owner": {"name": "Ann", "active": True}}},
    "items": [1, "two", {"three": 3.5}, None],
    "due": datetime(2026, 11, 22, 10, 30, 15, 123000, tzinfo=UTC),
    "approved": False,
    "note": LONG_TEXT,
    "count": 3_000_000_000,
}


def test_complete_moves_the_process_with_typed_variables(engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task", then_topic="send_email"))
    worker = make_worker(engine.url)
    instance = engine.start("deal")
    task = next_task(queues)
    queues.respond(response(task, ResponseStatus.COMPLETE, variables=to_typed_map(VALUES),
                            local_variables=to_typed_map({"local_only": "x"})))

    after = TaskMessage.from_bytes(queues.get("python.queue")[2])  # the process moved on to the next task
    assert after.process_instance_id == instance and after.activity_id == "after"
    variables = engine.get(f"/process-instance/{instance}/variables")
    assert {name: variables[name]["type"] for name in VALUES} == {
        "result": "Json", "items": "Json", "due": "Date", "approved": "Boolean", "note": "String", "count": "Long"}
    assert {name: from_typed(variables[name]) for name in VALUES} == VALUES
    assert "local_only" not in variables  # local variables stayed on the task's scope
    assert after.values()["result"] == VALUES["result"] and after.values()["due"] == VALUES["due"]
    assert worker.metrics.responses.labels("completed")._value.get() == 1


def test_failure_counts_down_to_an_incident(engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    make_worker(engine.url, failure_max_retries=1, failure_retry_timeout_ms=0)
    instance = engine.start("deal")

    first = next_task(queues)
    queues.respond(response(first, ResponseStatus.FAILURE, error_message="portal said no",
                            error_details="HTTP 503 from Bitrix24"))
    second = next_task(queues)  # retries 1, fetched and published again
    assert second.task_id == first.task_id and second.retries == 1
    queues.respond(response(second, ResponseStatus.FAILURE, error_message="portal still says no"))

    (incident,) = wait_for(lambda: engine.get("/incident", processInstanceId=instance), what="an incident")
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["incidentMessage"] == "portal still says no"
    assert incident["configuration"] == first.task_id
    (task,) = engine.tasks(processInstanceId=instance)
    assert task["retries"] == 0
    assert queues.depth("bitrix24.queue") == 0


def test_bpmn_error_follows_the_boundary_event(engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(with_error_boundary("deal", "bitrix_create_task", "NO_CUSTOMER", "echo", "send_email"))
    make_worker(engine.url)
    instance = engine.start("deal")
    task = next_task(queues)
    queues.respond(response(task, ResponseStatus.BPMN_ERROR, error_code="NO_CUSTOMER",
                            error_message="customer unknown", variables=to_typed_map({"reason": {"code": 4}})))

    handler = TaskMessage.from_bytes(queues.get("python.queue")[2])
    assert handler.process_instance_id == instance and handler.activity_id == "handle"
    assert handler.values()["reason"] == {"code": 4}
    assert handler.values()["caughtCode"] == "NO_CUSTOMER"
    assert handler.values()["caughtMessage"] == "customer unknown"


def test_a_gone_task_is_acked_and_a_foreign_lock_is_parked(engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    engine.deploy(one_task("other", "not_routed_here"), name="other.bpmn")
    worker = make_worker(engine.url)
    engine.start("deal")
    task = next_task(queues)
    done = response(task, ResponseStatus.COMPLETE)
    queues.respond(done)
    queues.respond(done)  # a redelivered completion: Camunda answers 404
    wait_for(lambda: worker.metrics.responses.labels("gone")._value.get() == 1, what="the 404 to be acked")

    # a task locked by another worker: Camunda answers 400, the response is parked with the reason
    other = engine.start("other")
    (locked,) = wait_for(lambda: engine.client.fetch_and_lock(["not_routed_here"], async_response_timeout_ms=0),
                         what="a task for the other worker")
    assert locked["processInstanceId"] == other
    fake = TaskMessage(task_id=locked["id"], topic_name="not_routed_here", system="default",
                       worker_id="worker-test", process_instance_id=other)
    queues.respond(response(fake, ResponseStatus.COMPLETE))
    record = parked(queues)
    assert record.source_queue == "camunda.responses.queue" and record.task_id == locked["id"]
    assert "locked by worker 'test-driver'" in record.reason and record.error_type == "CamundaConflict"
    assert json.loads(record.original_body())["task_id"] == locked["id"]


def test_a_malformed_response_is_parked_and_does_not_block_the_queue(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task", then_topic="send_email"))
    make_worker(engine.url)
    engine.start("deal")
    task = next_task(queues)
    queues.publish_raw("camunda.responses.queue", b"{not json")
    queues.publish_raw("camunda.responses.queue", json.dumps({"task_id": task.task_id, "status": "done"}).encode())
    queues.respond(response(task, ResponseStatus.COMPLETE))

    assert next_task(queues, "python.queue").activity_id == "after"
    reasons = sorted(parked(queues).reason for _ in range(2))
    assert any("worker_id" in r or "status" in r for r in reasons), reasons
    assert any("json" in r.lower() for r in reasons), reasons
