"""External task REST contract of Camunda 7: one test per status/message row."""

from __future__ import annotations

import pytest

from .conftest import START_MS, Api, bpmn, error, one_task

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def task(api: Api) -> dict:
    api.deploy_model(one_task())
    api.start(variables={"amount": {"value": 5}})
    return api.fetch_one()


# ------------------------------------------------------------------------------ complete


def test_complete_continues_the_process_and_sets_variables(api: Api, task: dict) -> None:
    response = api.complete(task["id"], variables={"result": {"value": "ok"}})
    assert response.status_code == 204
    history = api.history(task["processInstanceId"])
    assert history["state"] == "COMPLETED"
    assert api.activities(task["processInstanceId"]) == ["start", "task", "end"]


def test_complete_by_another_worker_is_400(api: Api, task: dict) -> None:
    body = error(api.complete(task["id"], worker="w2"), 400)
    assert body == {"type": "RestException", "code": 0, "message":
                    f"External Task {task['id']} cannot be completed by worker 'w2'. It is locked by worker 'w1'."}


def test_complete_of_a_never_locked_task_names_null(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    task_id = api.tasks()[0]["id"]
    body = error(api.complete(task_id), 400)
    assert body["message"] == f"External Task {task_id} cannot be completed by worker 'w1'. It is locked by worker " \
                              "'null'."


def test_complete_of_an_unknown_task_is_404(api: Api) -> None:
    body = error(api.complete(MISSING), 404)
    assert body == {"type": "RestException", "message": f"External task with id {MISSING} does not exist",
                    "code": 0}


def test_complete_without_worker_id_is_500(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/complete", {}), 500)
    assert body == {"type": "NullValueException", "message": "workerId is null", "code": 0}


def test_expired_lock_can_still_be_completed_by_the_same_worker(api: Api, task: dict) -> None:
    api.advance(60_000)
    assert api.complete(task["id"]).status_code == 204


def test_expired_lock_refetched_by_another_worker_cannot_be_completed_by_the_first(api: Api, task: dict) -> None:
    api.advance(60_000)
    assert api.fetch_one(worker="w2")["id"] == task["id"]
    assert error(api.complete(task["id"]), 400)["message"].endswith("It is locked by worker 'w2'.")


def test_complete_after_completion_is_404(api: Api, task: dict) -> None:
    assert api.complete(task["id"]).status_code == 204
    error(api.complete(task["id"]), 404)


def test_bad_variable_value_is_400_and_changes_nothing(api: Api, task: dict) -> None:
    body = error(api.complete(task["id"], variables={"n": {"value": "abc", "type": "Integer"}}), 400)
    assert body["type"] == "InvalidRequestException"
    assert body["message"] == "Cannot convert value 'abc' of type 'Integer' to java type java.lang.Integer"
    assert api.get(f"/external-task/{task['id']}").status_code == 200


def test_unknown_variable_type_is_400(api: Api, task: dict) -> None:
    body = error(api.complete(task["id"], variables={"n": {"value": 1, "type": "Money"}}), 400)
    assert body == {"type": "RestException", "message": "Unsupported value type 'Money'", "code": None}


# ------------------------------------------------------------------------------- failure


def test_failure_keeps_worker_and_blocks_fetch_until_retry_timeout(api: Api, task: dict) -> None:
    response = api.post(f"/external-task/{task['id']}/failure", {
        "workerId": "w1", "errorMessage": "boom", "errorDetails": "trace", "retries": 2, "retryTimeout": 5000})
    assert response.status_code == 204
    current = api.get(f"/external-task/{task['id']}").json()
    assert (current["workerId"], current["retries"], current["errorMessage"]) == ("w1", 2, "boom")
    assert api.fetch() == []
    assert api.tasks(locked="true")[0]["id"] == task["id"]
    api.advance(5000)
    again = api.fetch_one(worker="w2")
    assert (again["retries"], again["errorMessage"], again["errorDetails"]) == (2, "boom", "trace")


def test_failure_by_another_worker_is_400(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/failure", {"workerId": "w2", "retries": 1}), 400)
    assert body["message"] == (f"Failure of External Task {task['id']} cannot be reported by worker 'w2'. It is "
                               "locked by worker 'w1'.")


def test_failure_with_negative_retries_is_500(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/failure", {"workerId": "w1", "retries": -1}), 500)
    assert body == {"type": "ProcessEngineException", "message": "retries is not greater than or equal to 0",
                    "code": 0}


def test_failure_with_negative_retry_timeout_is_500(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/failure",
                          {"workerId": "w1", "retries": 1, "retryTimeout": -5}), 500)
    assert body["type"] == "ProcessEngineException"


def test_failure_of_unknown_task_is_404(api: Api) -> None:
    error(api.post(f"/external-task/{MISSING}/failure", {"workerId": "w1"}), 404)


def test_retries_zero_creates_an_incident_and_retries_one_resolves_it(api: Api, task: dict) -> None:
    assert api.post(f"/external-task/{task['id']}/failure",
                    {"workerId": "w1", "errorMessage": "broken"}).status_code == 204  # retries default 0
    incidents = api.get("/incident").json()
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["configuration"] == task["id"]
    assert incident["incidentMessage"] == "broken"
    assert incident["causeIncidentId"] == incident["rootCauseIncidentId"] == incident["id"]
    assert incident["activityId"] == "task" and incident["processInstanceId"] == task["processInstanceId"]
    assert api.get(f"/incident/{incident['id']}").json() == incident
    assert api.get("/incident/count").json() == {"count": 1}
    assert api.fetch() == []
    assert api.tasks(noRetriesLeft="true")[0]["id"] == task["id"]

    assert api.put(f"/external-task/{task['id']}/retries", {"retries": 1}).status_code == 204
    assert api.get("/incident").json() == []
    assert api.fetch_one(worker="w2")["retries"] == 1


def test_set_retries_to_zero_creates_an_incident(api: Api, task: dict) -> None:
    assert api.put(f"/external-task/{task['id']}/retries", {"retries": 0}).status_code == 204
    assert len(api.get("/incident", incidentType="failedExternalTask").json()) == 1


def test_set_retries_null_is_400(api: Api, task: dict) -> None:
    body = error(api.put(f"/external-task/{task['id']}/retries", {}), 400)
    assert body == {"type": "InvalidRequestException", "message": "The number of retries cannot be null.",
                    "code": None}


def test_set_retries_negative_is_400(api: Api, task: dict) -> None:
    body = error(api.put(f"/external-task/{task['id']}/retries", {"retries": -1}), 400)
    assert body["type"] == "BadUserRequestException"


def test_set_retries_on_unknown_task_is_404(api: Api) -> None:
    error(api.put(f"/external-task/{MISSING}/retries", {"retries": 1}), 404)


def test_set_retries_does_not_unlock(api: Api, task: dict) -> None:
    api.put(f"/external-task/{task['id']}/retries", {"retries": 3})
    assert api.get(f"/external-task/{task['id']}").json()["workerId"] == "w1"
    assert api.fetch() == []


# ---------------------------------------------------------------------------- extendLock


def test_extend_lock_moves_the_expiration(api: Api, task: dict) -> None:
    assert api.post(f"/external-task/{task['id']}/extendLock", {"workerId": "w1", "newDuration": 60_000}
                    ).status_code == 204
    expiration = api.get(f"/external-task/{task['id']}").json()["lockExpirationTime"]
    assert expiration == api.get(f"/external-task/{task['id']}").json()["lockExpirationTime"]
    api.advance(30_000)
    assert api.fetch(worker="w2") == []


def test_extend_lock_on_an_expired_lock_is_400(api: Api, task: dict) -> None:
    api.advance(10_001)
    body = error(api.post(f"/external-task/{task['id']}/extendLock", {"workerId": "w1", "newDuration": 1000}), 400)
    assert body["type"] == "RestException"
    assert body["message"] == ("Cannot extend a lock that expired: lockExpirationTime is not greater than or equal "
                               f"to {START_MS + 10_001}")


def test_extend_lock_with_zero_duration_is_400(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/extendLock", {"workerId": "w1", "newDuration": 0}), 400)
    assert body["message"] == "lockTime is not greater than 0"


def test_extend_lock_by_another_worker_is_400(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/extendLock", {"workerId": "w2", "newDuration": 5}), 400)
    assert body["message"] == (f"The lock of the External Task {task['id']} cannot be extended by worker 'w2'. It "
                               "is locked by worker 'w1'.")


def test_extend_lock_without_worker_is_500(api: Api, task: dict) -> None:
    assert error(api.post(f"/external-task/{task['id']}/extendLock", {"newDuration": 5}), 500)["message"] == \
        "workerId is null"


# ------------------------------------------------------------------------ lock / unlock


def test_lock_unlock_and_relock(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    task_id = api.tasks()[0]["id"]
    assert api.post(f"/external-task/{task_id}/lock", {"workerId": "w1", "lockDuration": 1000}).status_code == 204
    body = error(api.post(f"/external-task/{task_id}/lock", {"workerId": "w2", "lockDuration": 1000}), 400)
    assert body["message"] == f"External Task {task_id} cannot be locked by worker 'w2'. It is locked by worker 'w1'."
    assert api.post(f"/external-task/{task_id}/lock", {"workerId": "w1", "lockDuration": 5000}).status_code == 204
    api.advance(5001)
    assert api.post(f"/external-task/{task_id}/lock", {"workerId": "w2", "lockDuration": 1000}).status_code == 204
    assert api.post(f"/external-task/{task_id}/unlock").status_code == 204
    current = api.get(f"/external-task/{task_id}").json()
    assert current["workerId"] is None and current["lockExpirationTime"] is None
    assert api.fetch_one(worker="w3")["id"] == task_id


def test_lock_with_zero_duration_is_400(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/lock", {"workerId": "w1", "lockDuration": 0}), 400)
    assert body["message"] == "lockDuration is not greater than 0"


def test_unlock_of_unknown_task_is_404(api: Api) -> None:
    error(api.post(f"/external-task/{MISSING}/unlock"), 404)


# ------------------------------------------------------------------ priority, errorDetails, get


def test_priority_and_error_details(api: Api, task: dict) -> None:
    assert api.put(f"/external-task/{task['id']}/priority", {"priority": 42}).status_code == 204
    assert api.get(f"/external-task/{task['id']}").json()["priority"] == 42
    api.post(f"/external-task/{task['id']}/failure", {"workerId": "w1", "errorDetails": "line 1\nline 2",
                                                      "retries": 1})
    response = api.get(f"/external-task/{task['id']}/errorDetails")
    assert response.status_code == 200 and response.text == "line 1\nline 2"
    assert response.headers["Content-Type"].startswith("text/plain")
    error(api.get(f"/external-task/{MISSING}/errorDetails"), 404)
    error(api.put(f"/external-task/{MISSING}/priority", {"priority": 1}), 404)


def test_get_unknown_task_is_404_without_code(api: Api) -> None:
    body = error(api.get(f"/external-task/{MISSING}"), 404)
    assert body == {"type": "RestException", "message": f"External task with id {MISSING} does not exist",
                    "code": None}


def test_external_task_dto_shape(api: Api, task: dict) -> None:
    current = api.get(f"/external-task/{task['id']}").json()
    assert set(current) == {"activityId", "activityInstanceId", "errorMessage", "executionId", "id",
                            "lockExpirationTime", "createTime", "processDefinitionId", "processDefinitionKey",
                            "processDefinitionVersionTag", "processInstanceId", "retries", "suspended", "workerId",
                            "topicName", "tenantId", "priority", "businessKey"}
    assert set(task) == set(current) | {"errorDetails", "variables", "extensionProperties"}
    assert task["retries"] is None and task["suspended"] is False
    assert task["createTime"].endswith(("+0000", "+0100", "+0200")) or task["createTime"][-5] in "+-"
    assert task["executionId"] != task["processInstanceId"]
    assert task["activityInstanceId"].startswith("task:")


# ----------------------------------------------------------------------------- bpmnError

ERRORS = '<bpmn:error id="err" errorCode="E42"/>'


def test_bpmn_error_caught_by_a_boundary_event(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:boundaryEvent id="caught" attachedToRef="task">
      <bpmn:errorEventDefinition errorRef="err" camunda:errorCodeVariable="code"
          camunda:errorMessageVariable="why"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="caught" targetRef="handle"/>
    <bpmn:serviceTask id="handle" camunda:type="external" camunda:topic="handle"/>
    <bpmn:sequenceFlow id="f4" sourceRef="handle" targetRef="end2"/>
    <bpmn:endEvent id="end2"/>""", errors=ERRORS))
    api.start()
    task = api.fetch_one()
    response = api.post(f"/external-task/{task['id']}/bpmnError", {
        "workerId": "w1", "errorCode": "E42", "errorMessage": "no stock", "variables": {"x": {"value": 1}}})
    assert response.status_code == 204
    handler = api.fetch_one(topic="handle")
    assert handler["variables"]["code"]["value"] == "E42"
    assert handler["variables"]["why"]["value"] == "no stock"
    assert handler["variables"]["x"]["value"] == 1
    error(api.complete(task["id"]), 404)


def test_uncaught_bpmn_error_ends_the_path(api: Api, task: dict) -> None:
    assert api.post(f"/external-task/{task['id']}/bpmnError", {"workerId": "w1", "errorCode": "nobody"}
                    ).status_code == 204
    history = api.history(task["processInstanceId"])
    assert history["state"] == "COMPLETED"
    assert "end" not in api.activities(task["processInstanceId"])
    assert api.get(f"/process-instance/{task['processInstanceId']}").status_code == 404


def test_bpmn_error_without_code_is_500(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/bpmnError", {"workerId": "w1"}), 500)
    assert body == {"type": "NullValueException", "message": "errorCode is null", "code": 0}


def test_bpmn_error_by_another_worker_is_400(api: Api, task: dict) -> None:
    body = error(api.post(f"/external-task/{task['id']}/bpmnError", {"workerId": "x", "errorCode": "E"}), 400)
    assert body["message"].startswith(f"Bpmn error of External Task {task['id']} cannot be reported by worker 'x'")


# ---------------------------------------------------------------------------- queries


def test_list_count_and_topic_names(api: Api) -> None:
    api.deploy_model(one_task(topic="a"), name="a.bpmn")
    api.deploy_model(one_task(key="q", topic="b"), name="b.bpmn")
    api.start("p")
    api.start("p")
    api.start("q")
    api.fetch(topic="a", max_tasks=1)
    assert api.get("/external-task/count").json() == {"count": 3}
    assert api.get("/external-task/count", topicName="a").json() == {"count": 2}
    assert len(api.tasks(locked="true")) == 1
    assert len(api.tasks(notLocked="true")) == 2
    assert len(api.tasks(processDefinitionKey="q")) == 1
    assert len(api.tasks(maxResults=2, firstResult=0)) == 2
    assert api.get("/external-task/topic-names").json() == ["a", "b"]
    assert api.get("/external-task/topic-names", withLockedTasks="true").json() == ["a"]
    assert api.post("/external-task/count", {"topicName": "b"}).json() == {"count": 1}
    ordered = api.tasks(sortBy="createTime", sortOrder="desc")
    assert len(ordered) == 3
    body = error(api.get("/external-task", sortBy="createTime"), 400)
    assert body["type"] == "InvalidRequestException"
