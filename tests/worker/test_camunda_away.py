"""Camunda away for longer than any retry budget (responses wait and are applied when it is back, the wait
visible), and Camunda refusing a completion (after bounded retries: an incident with its message, a parked copy)."""

from __future__ import annotations

import json

import pytest
from broker_queues import Queues, wait_for
from test_responses import next_task, parked, response
from worker_helpers import Engine, EngineProcess
from worker_models import one_task, with_gateway

from exchanger.camunda.client import CamundaConflict, CamundaEngineError
from exchanger.contracts import ResponseStatus, TaskMessage
from exchanger.errors import Unreachable
from exchanger.variables import to_typed_map
from exchanger.worker.responses import unavailable


def gauge(worker, name: str) -> float:
    return worker.metrics.registry.get_sample_value(f"exchanger_worker_{name}")


def test_responses_wait_for_camunda_longer_than_the_retry_budget(tmp_path, queues: Queues, make_worker) -> None:
    with EngineProcess(tmp_path) as process:
        engine = Engine(process.url)
        engine.deploy(one_task("deal", "bitrix_create_task", then_topic="send_email"))
        budget = 2  # WORKER_RESPONSE_MAX_ATTEMPTS: refusals get this many tries; an absent Camunda is waited for
        worker = make_worker(process.url, worker={"response_max_attempts": budget, "response_retry_initial_s": 0.3,
                                                  "response_retry_max_s": 0.6})
        instances = [engine.start("deal", {"n": n}) for n in range(2)]
        tasks = [next_task(queues) for _ in instances]
        process.stop()  # Camunda goes away with two tasks in flight

        for task in tasks:
            queues.respond(response(task, ResponseStatus.COMPLETE, variables=to_typed_map({"done": True})))
        wait_for(lambda: worker.metrics.responses.labels("retried")._value.get() >= 3 * budget * len(tasks),
                 timeout_s=30, what="retries well past the budget")
        assert queues.depth("errors.camunda_tasks.queue") == 0  # nothing parked
        assert gauge(worker, "responses_waiting") == 2
        assert gauge(worker, "camunda_unreachable_seconds") > 1
        ready, detail = worker.readiness_checks()["camunda"]()
        assert not ready and "2 response(s) waiting" in detail and "unreachable for" in detail

        process.start()  # back, with its state
        moved = {TaskMessage.from_bytes(queues.get("python.queue", timeout_s=20)[2]).process_instance_id
                 for _ in instances}
        assert moved == set(instances)
        assert worker.metrics.responses.labels("completed")._value.get() == 2
        assert queues.depth("errors.camunda_tasks.queue") == 0
        assert gauge(worker, "responses_waiting") == 0 and gauge(worker, "camunda_unreachable_seconds") == 0


def test_a_refused_completion_becomes_an_incident_with_the_engines_message(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(with_gateway("approval", "bitrix_create_task", "answer"))
    worker = make_worker(engine.url, worker={"response_max_attempts": 3, "response_retry_initial_s": 0.2,
                                             "response_retry_max_s": 0.2})
    instance = engine.start("approval")
    task = next_task(queues)
    queues.respond(response(task, ResponseStatus.COMPLETE))  # the Bitrix24 answer never set: the gateway fails

    (incident,) = wait_for(lambda: engine.get("/incident", processInstanceId=instance), what="an incident")
    assert incident["incidentType"] == "failedExternalTask" and incident["configuration"] == task.task_id
    assert "Unknown property used in expression: ${answer == \"ok\"}" in incident["incidentMessage"]
    record = parked(queues)  # the copy to replay once the cause is fixed
    assert record.attempts == 3 and record.error_type == "CamundaEngineError"
    assert "Unknown property used in expression" in record.reason and "incident reported" in record.reason
    assert json.loads(record.original_body())["task_id"] == task.task_id
    assert worker.metrics.responses.labels("incident")._value.get() == 1

    # the operator sets the missing variable and replays the parked response: the process finishes
    engine.http.request("POST", f"/process-instance/{instance}/variables", idempotent=True,
                        json={"modifications": to_typed_map({"answer": "ok"})})
    queues.publish_raw("camunda.responses.queue", record.original_body(), correlation_id=task.task_id)
    wait_for(lambda: worker.metrics.responses.labels("completed")._value.get() == 1, what="the replay applied")
    assert engine.get("/history/process-instance", processInstanceId=instance)[0]["state"] == "COMPLETED"


@pytest.mark.parametrize(("error", "waits"), [
    (Unreachable("no connection"), True),
    (CamundaEngineError("Camunda 503", status=503, details={"type": "", "message": ""}), True),
    (CamundaEngineError("proxy page", status=500, details={"type": "", "message": "<html>"}), True),
    (CamundaEngineError("Camunda 500 ProcessEngineException: Unknown property", status=500,
                        details={"type": "ProcessEngineException", "message": "Unknown property"}), False),
], ids=["unreachable", "503", "500-not-the-engine", "500-engine-refusal"])
def test_unavailable_is_told_from_refused(error: CamundaEngineError, waits: bool) -> None:
    assert unavailable(error) is waits
    assert not isinstance(error, CamundaConflict)
