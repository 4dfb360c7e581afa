"""Details of Camunda's wire format that generated and third-party clients depend on."""

from __future__ import annotations

from urllib.parse import quote

from .conftest import Api, error, one_task


def test_content_type_is_exactly_application_json(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    for response in (api.get("/engine"), api.post("/external-task/fetchAndLock", {
            "workerId": "w", "maxTasks": 1, "topics": [{"topicName": "work", "lockDuration": 1000}]}),
            api.get("/process-definition/key/nope")):
        assert response.headers["Content-Type"] == "application/json", response.headers


def test_percent_encoded_path_parameters_are_decoded(api: Api) -> None:
    api.deploy_model(one_task(key="invoice"))
    definition_id = api.get("/process-definition/key/invoice").json()["id"]
    assert ":" in definition_id
    encoded = quote(definition_id, safe="")
    assert "%3A" in encoded
    assert api.get(f"/process-definition/{encoded}").json()["id"] == definition_id
    assert api.get(f"/process-definition/{encoded}/xml").json()["id"] == definition_id
    started = api.post(f"/process-definition/{encoded}/start", {})
    assert started.status_code == 200, started.text
    assert started.json()["definitionId"] == definition_id


def test_unknown_encoded_id_is_still_a_404(api: Api) -> None:
    body = error(api.get("/process-definition/" + quote("nope:1:x", safe="")), 404)
    assert body["message"] == "No matching definition with id nope:1:x"
