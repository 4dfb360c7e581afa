"""Variable and incident history: what a finished process decided stays visible (Camunda's default
history level), with every update as a ``/history/detail`` entry."""

from __future__ import annotations

from .conftest import Api, one_task


def test_finished_instance_keeps_its_variables_and_their_updates(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start(variables={"amount": {"value": 1}, "customer": {"value": "Ann"}})
    task = api.fetch_one()
    assert api.complete(task["id"], variables={"amount": {"value": 2}, "approved": {"value": True}},
                        localVariables={"scratch": {"value": "x"}}).status_code == 204
    assert api.history(instance["id"])["state"] == "COMPLETED"

    rows = api.get("/history/variable-instance", processInstanceId=instance["id"], sortBy="variableName",
                   sortOrder="asc").json()
    assert [(r["name"], r["value"], r["type"], r["state"]) for r in rows] == [
        ("amount", 2, "Integer", "CREATED"), ("approved", True, "Boolean", "CREATED"),
        ("customer", "Ann", "String", "CREATED"), ("scratch", "x", "String", "CREATED")]
    scratch = next(r for r in rows if r["name"] == "scratch")
    assert scratch["executionId"] != instance["id"] and scratch["processDefinitionKey"] == "p"
    assert api.get(f"/history/variable-instance/{scratch['id']}").json()["value"] == "x"
    assert api.get("/history/variable-instance/count", variableNameLike="a%").json() == {"count": 2}
    assert api.post("/history/variable-instance", {"variableName": "customer",
                                                   "processInstanceIdIn": [instance["id"]]}).json()[0]["value"] == "Ann"

    details = api.get("/history/detail", processInstanceId=instance["id"], sortBy="time", sortOrder="asc").json()
    amount = [(d["value"], d["revision"], d["initial"]) for d in details if d["variableName"] == "amount"]
    assert amount == [(1, 0, True), (2, 1, False)]
    assert {d["type"] for d in details} == {"variableUpdate"}
    amount_id = next(r["id"] for r in rows if r["name"] == "amount")
    assert api.get("/history/detail/count", variableInstanceId=amount_id).json() == {"count": 2}


def test_removed_variables_and_serialized_values(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start(variables={"doc": {"value": '{"a": 1}', "type": "Json"}, "tmp": {"value": 1}})
    assert api.delete(f"/process-instance/{instance['id']}/variables/tmp").status_code == 204
    names = [r["name"] for r in api.get("/history/variable-instance", processInstanceId=instance["id"]).json()]
    assert names == ["doc"]
    deleted = api.get("/history/variable-instance", processInstanceId=instance["id"], includeDeleted="true",
                      variableName="tmp").json()
    assert [r["state"] for r in deleted] == ["DELETED"]
    (doc,) = api.get("/history/variable-instance", variableName="doc", deserializeValues="false").json()
    assert doc["type"] == "Json" and doc["value"] == '{"a": 1}'


def test_incident_history_open_then_resolved(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start()
    task = api.fetch_one()
    assert api.post(f"/external-task/{task['id']}/failure", {
        "workerId": "w1", "errorMessage": "Unknown property used in expression", "retries": 0}).status_code == 204
    (incident,) = api.get("/history/incident", processInstanceId=instance["id"]).json()
    assert incident["open"] and incident["incidentMessage"] == "Unknown property used in expression"
    assert incident["processDefinitionKey"] == "p" and incident["endTime"] is None
    assert api.put(f"/external-task/{task['id']}/retries", {"retries": 1}).status_code == 204
    (resolved,) = api.get("/history/incident", processInstanceId=instance["id"]).json()
    assert resolved["resolved"] and not resolved["open"] and resolved["endTime"]
    assert api.get("/history/incident/count", open="true").json() == {"count": 0}
