"""The fake OpenProject speaks OpenProject's API v3 (raw HTTP, no client)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests

from exchanger_sandbox.openproject import server as fake

URN = "urn:openproject-org:api:v3:errors:"


def create(api: requests.Session, op: fake.OpenProjectServer, **body: object) -> requests.Response:
    payload = {"subject": "Approve invoice", **body}
    return api.post(f"{op.url}/api/v3/projects/exchanger/work_packages", json=payload)


def close(api: requests.Session, op: fake.OpenProjectServer, wp_id: int, status_id: int = 5) -> dict:
    """What a person does: PATCH the status link with the lockVersion just read."""
    current = api.get(f"{op.url}/api/v3/work_packages/{wp_id}").json()
    body = {"lockVersion": current["lockVersion"], "_links": {"status": {"href": f"/api/v3/statuses/{status_id}"}}}
    response = api.patch(f"{op.url}/api/v3/work_packages/{wp_id}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wp_filter(api: requests.Session, op: fake.OpenProjectServer, filters: object | None) -> dict:
    params = None if filters is None else {"filters": json.dumps(filters)}
    response = api.get(f"{op.url}/api/v3/work_packages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_reference_data_is_hal(api, op):
    statuses = api.get(f"{op.url}/api/v3/statuses")
    assert statuses.headers["Content-Type"].startswith("application/hal+json")
    body = statuses.json()
    assert body["_type"] == "Collection"
    closed = {s["name"] for s in body["_embedded"]["elements"] if s["isClosed"]}
    assert closed == {"Closed", "Rejected"}
    assert api.get(f"{op.url}/api/v3/priorities").json()["_embedded"]["elements"][1]["isDefault"] is True
    assert api.get(f"{op.url}/api/v3/projects/exchanger").json()["_type"] == "Project"
    schema = api.get(f"{op.url}/api/v3/work_packages/schemas/1-1").json()
    assert schema["customField1"]["name"] == "External task ID"
    users = api.get(f"{op.url}/api/v3/users", params={"filters": '[{"login":{"operator":"=","values":["apetrova"]}}]'})
    assert [u["name"] for u in users.json()["_embedded"]["elements"]] == ["Anna Petrova"]


def test_wrong_or_missing_key_is_401_hal_error(op):
    for auth in [("apikey", "wrong"), None, ("admin", op.settings_env["OPENPROJECT_API_KEY"])]:
        response = requests.get(f"{op.url}/api/v3/work_packages", auth=auth)
        assert response.status_code == 401
        assert response.json()["errorIdentifier"] == URN + "Unauthenticated"
    bearer = {"Authorization": f"Bearer {op.settings_env['OPENPROJECT_API_KEY']}"}
    assert requests.get(f"{op.url}/api/v3/statuses", headers=bearer).status_code == 200


def test_create_returns_201_with_full_work_package(api, op):
    response = create(
        api, op,
        description={"raw": "Check the amount"},
        dueDate="2030-01-31",
        customField1="task-1",
        _links={"assignee": {"href": "/api/v3/users/5"}, "priority": {"href": "/api/v3/priorities/9"}},
    )
    assert response.status_code == 201, response.text
    wp = response.json()
    assert response.headers["Location"] == f"/api/v3/work_packages/{wp['id']}"
    assert wp["_type"] == "WorkPackage" and wp["lockVersion"] == 0 and wp["percentageDone"] is None
    assert wp["customField1"] == "task-1" and wp["description"]["raw"] == "Check the amount"
    assert wp["_embedded"]["status"] == {**wp["_embedded"]["status"], "name": "New", "isClosed": False}
    assert wp["_links"]["assignee"] == {"href": "/api/v3/users/5", "title": "Anna Petrova"}
    assert wp["_links"]["priority"]["title"] == "High"
    assert wp["_links"]["responsible"] == {"href": None}
    assert api.get(f"{op.url}{wp['_links']['self']['href']}").json()["subject"] == "Approve invoice"


def test_create_errors_use_openproject_identifiers(api, op):
    cases = [
        (create(api, op, subject=" "), 422, "PropertyConstraintViolation"),
        (create(api, op, createdAt="2020-01-01T00:00:00Z"), 422, "PropertyIsReadOnly"),
        (create(api, op, _links={"status": {"href": "/api/v3/types/1"}}), 422, "ResourceTypeMismatch"),
        (create(api, op, _links={"assignee": {"href": "/api/v3/users/999"}}), 422, "PropertyConstraintViolation"),
        (api.post(f"{op.url}/api/v3/projects/exchanger/work_packages", json=[1]), 400, "InvalidRequestBody"),
        (api.post(f"{op.url}/api/v3/projects/secret/work_packages", json={"subject": "x"}), 404, "NotFound"),
        (api.post(f"{op.url}/api/v3/projects/archive/work_packages", json={"subject": "x"}), 403, "MissingPermission"),
        (api.post(f"{op.url}/api/v3/work_packages", json={"subject": "x"}), 422, "PropertyConstraintViolation"),
    ]
    for response, status, identifier in cases:
        assert response.status_code == status, response.text
        assert response.json()["_type"] == "Error"
        assert response.json()["errorIdentifier"] == URN + identifier
    assert create(api, op, subject=" ").json()["_embedded"]["details"]["attribute"] == "subject"
    assert op.state.stats()["work_packages"] == 0


def test_list_is_open_only_by_default_and_filters_include_closed(api, op):
    first = create(api, op, customField1="task-1").json()
    create(api, op, customField1="task-2")
    close(api, op, first["id"])
    assert wp_filter(api, op, None)["total"] == 1  # default: open ones only
    assert wp_filter(api, op, [])["total"] == 2
    by_field = [{"customField1": {"operator": "=", "values": ["task-1"]}}, {"status": {"operator": "*", "values": []}}]
    found = wp_filter(api, op, by_field)
    assert [wp["id"] for wp in found["_embedded"]["elements"]] == [first["id"]]
    assert found["_embedded"]["elements"][0]["_embedded"]["status"]["isClosed"] is True
    assert wp_filter(api, op, [{"status": {"operator": "c", "values": []}}])["total"] == 1
    assert wp_filter(api, op, [{"subject": {"operator": "~", "values": ["approve"]}}])["total"] == 2
    bad = api.get(f"{op.url}/api/v3/work_packages", params={"filters": '[{"nope":{"operator":"=","values":[]}}]'})
    assert bad.status_code == 400 and bad.json()["errorIdentifier"] == URN + "InvalidQuery"


def test_pagination_is_by_one_based_page(api, op):
    for n in range(5):
        create(api, op, customField1=f"t-{n}")
    page = api.get(f"{op.url}/api/v3/work_packages", params={"filters": "[]", "pageSize": 2, "offset": 3}).json()
    assert (page["total"], page["count"], page["pageSize"], page["offset"]) == (5, 1, 2, 3)


def test_patch_needs_current_lock_version(api, op):
    wp = create(api, op).json()
    url = f"{op.url}/api/v3/work_packages/{wp['id']}"
    missing = api.patch(url, json={"subject": "New subject"})
    assert missing.status_code == 409 and missing.json()["errorIdentifier"] == URN + "UpdateConflict"
    updated = api.patch(url, json={"subject": "New subject", "percentageDone": 40, "lockVersion": 0})
    assert updated.status_code == 200 and updated.json()["lockVersion"] == 1
    stale = api.patch(url, json={"subject": "Other", "lockVersion": 0})
    assert stale.status_code == 409
    assert api.get(url).json()["subject"] == "New subject"
    closed = close(api, op, wp["id"])
    assert closed["_embedded"]["status"]["isClosed"] is True and closed["lockVersion"] == 2


def test_delete_then_404_and_comments(api, op):
    wp = create(api, op).json()
    url = f"{op.url}/api/v3/work_packages/{wp['id']}"
    comment = api.post(f"{url}/activities", json={"comment": {"raw": "Done by the robot"}})
    assert comment.status_code == 201 and comment.json()["comment"]["raw"] == "Done by the robot"
    assert api.get(f"{url}/activities").json()["total"] == 1
    assert api.delete(url).status_code == 204
    gone = api.get(url)
    assert gone.status_code == 404
    assert gone.json() == {**gone.json(), "errorIdentifier": URN + "NotFound"}
    assert api.get(f"{op.url}/api/v3/nothing/here").json()["errorIdentifier"] == URN + "NotFound"


def test_admin_stats_count_duplicates_and_reset_clears(api, op):
    create(api, op, customField1="task-1")
    create(api, op, customField1="task-1")
    create(api, op, customField1="task-2")
    stats = requests.get(f"{op.url}/_admin/stats").json()
    assert stats == {"work_packages": 3, "by_external_id": {"task-1": 2, "task-2": 1}, "duplicates": {"task-1": 2}}
    requests.post(f"{op.url}/_admin/reset")
    assert requests.get(f"{op.url}/_admin/stats").json()["work_packages"] == 0


def test_cli_prints_settings_first_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "exchanger_sandbox", "openproject", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ},
    )
    try:
        settings = json.loads(process.stdout.readline())
        assert settings["OPENPROJECT_EXTERNAL_ID_FIELD"] == "customField1"
        auth = ("apikey", settings["OPENPROJECT_API_KEY"])
        assert requests.get(f"{settings['OPENPROJECT_BASE_URL']}/api/v3", auth=auth, timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
