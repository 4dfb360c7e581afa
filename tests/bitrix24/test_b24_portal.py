"""The fake portal answers like Bitrix24: envelopes, casing, auth, limits, batch, a person's actions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from b24_helpers import TOKEN, inject, new_task, rest

from exchanger_sandbox.bitrix24.server import PortalServer, start


def test_success_envelope_and_camel_case_task(portal: PortalServer) -> None:
    response = rest(portal.webhook_url, "tasks.task.add", {"fields": {
        "TITLE": "Sign", "RESPONSIBLE_ID": 3, "DEADLINE": "2025-12-31T23:59:59", "AUDITORS": [2, 4],
        "UF_CAMUNDA_ID_EXTERNAL_TASK": "ext-1",
    }})  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"result", "time"}
    assert {"start", "finish", "duration", "operating", "operating_reset_at"} <= set(body["time"])
    task = body["result"]["task"]
    assert task["id"] == "1" and task["status"] == "2" and task["responsibleId"] == "3"
    assert task["createdBy"] == "1"  # the webhook's user
    assert task["deadline"] == "2025-12-31T23:59:59+03:00"  # naive dates are portal time; answers carry the offset
    assert task["auditors"] == ["2", "4"]
    assert "ufCamundaIdExternalTask" not in task  # user fields only when selected

    got = rest(portal.webhook_url, "tasks.task.get", {"taskId": 1, "select": ["ID", "STATUS", "UF_*"]}).json()
    assert got["result"]["task"]["ufCamundaIdExternalTask"] == "ext-1"
    assert got["result"]["task"]["ufResultAnswer"] is None


def test_older_methods_speak_upper_case(portal: PortalServer) -> None:
    task = new_task(portal.webhook_url)
    item = rest(portal.webhook_url, "task.checklistitem.add", {"TASKID": task["id"], "FIELDS": {"TITLE": "Check"}})
    assert isinstance(item.json()["result"], int)
    rows = rest(portal.webhook_url, "task.checklistitem.getlist", [task["id"]]).json()["result"]  # positional
    assert {row["TITLE"] for row in rows} == {"Checklist", "Check"}  # the first item made a checklist for itself
    assert all("TASK_ID" in row for row in rows)
    comment = rest(portal.webhook_url, "task.commentitem.add", {"taskid": task["id"], "fields": {"POST_MESSAGE": "hi"}})
    assert isinstance(comment.json()["result"], int)  # older methods take any case
    fields = rest(portal.webhook_url, "task.item.userfield.getlist").json()["result"]
    answer = next(f for f in fields if f["FIELD_NAME"] == "UF_RESULT_ANSWER")
    assert answer["USER_TYPE_ID"] == "enumeration" and {v["XML_ID"] for v in answer["LIST"]} == {"ok", "no"}
    users = rest(portal.webhook_url, "user.get", {"FILTER": {"ID": 2}}).json()
    assert users["total"] == 1 and users["result"][0]["NAME"] == "Anna"


def test_webhook_auth_and_unknown_method(portal: PortalServer) -> None:
    wrong = rest(portal.url + "/rest/1/wrongcode123/", "user.current")
    assert wrong.status_code == 401 and wrong.json()["error"] == "NO_AUTH_FOUND"
    other_user = rest(portal.url + f"/rest/2/{TOKEN}/", "user.current")
    assert other_user.status_code == 401  # a code belongs to one user
    unknown = rest(portal.webhook_url, "tasks.task.fly")
    assert unknown.status_code == 404 and unknown.json()["error"] == "ERROR_METHOD_NOT_FOUND"


def test_query_string_and_form_bodies_nest_like_php(portal: PortalServer) -> None:
    form = requests.post(
        portal.webhook_url + "tasks.task.add.json",
        data="fields[TITLE]=From+a+form&fields[RESPONSIBLE_ID]=2&fields[TAGS][]=a&fields[TAGS][]=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert form.status_code == 200 and form.json()["result"]["task"]["title"] == "From a form"
    listed = requests.get(portal.webhook_url + "tasks.task.list?filter[TAG]=b&select[]=ID&select[]=TAGS", timeout=5)
    tasks = listed.json()["result"]["tasks"]
    assert len(tasks) == 1 and [t["title"] for t in tasks[0]["tags"].values()] == ["a", "b"]


def test_validation_errors(portal: PortalServer) -> None:
    no_title = rest(portal.webhook_url, "tasks.task.add", {"fields": {"RESPONSIBLE_ID": 2}})
    assert no_title.status_code == 400
    assert no_title.json() == {"error": "ERROR_CORE", "error_description": "Task title is not specified<br>"}
    no_fields = rest(portal.webhook_url, "tasks.task.add", {})
    assert no_fields.json()["error"] == "100"
    nobody = rest(portal.webhook_url, "tasks.task.add", {"fields": {"TITLE": "x", "RESPONSIBLE_ID": 99}})
    assert "Responsible person not found" in nobody.json()["error_description"]
    missing = rest(portal.webhook_url, "tasks.task.get", {"taskId": 404})
    assert missing.status_code == 400 and missing.json()["error"] == "0"
    bad_sort = rest(portal.webhook_url, "tasks.task.list", {"order": {"COLOUR": "asc"}})
    assert bad_sort.json() == {"error": "0", "error_description": "Invalid sorting key"}


def test_list_filters_by_user_field_orders_and_pages(portal: PortalServer) -> None:
    for index in range(60):
        new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK=f"ext-{index % 3}")
    first = rest(portal.webhook_url, "tasks.task.list", {"order": {"ID": "desc"}, "select": ["ID"]}).json()
    assert first["total"] == 60 and first["next"] == 50 and len(first["result"]["tasks"]) == 50
    assert first["result"]["tasks"][0] == {"id": "60"}
    second = rest(portal.webhook_url, "tasks.task.list", {"order": {"ID": "desc"}, "start": 50}).json()
    assert len(second["result"]["tasks"]) == 10 and "next" not in second
    params = {"filter": {"UF_CAMUNDA_ID_EXTERNAL_TASK": "ext-1", ">ID": 50}, "select": ["ID"]}
    by_field = rest(portal.webhook_url, "tasks.task.list", params).json()
    assert [t["id"] for t in by_field["result"]["tasks"]] == ["53", "56", "59"]


def test_leaky_bucket_refuses_past_the_burst_and_recovers() -> None:
    with start(0, rate_per_s=5, burst=3) as server:
        codes = [rest(server.webhook_url, "user.current").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 503]
        refused = rest(server.webhook_url, "user.current").json()
        assert refused["error"] == "QUERY_LIMIT_EXCEEDED"
        time.sleep(0.45)  # two requests drain
        assert rest(server.webhook_url, "user.current").status_code == 200
        assert server.portal.stats()["rejected"] == 2


def test_batch_substitutes_results_reports_errors_and_halts(portal: PortalServer) -> None:
    cmd = {
        "add": "tasks.task.add?fields[TITLE]=Batch&fields[RESPONSIBLE_ID]=2",
        "get": "tasks.task.get?taskId=$result[add][task][id]&select[]=TITLE",
        "bad": "tasks.task.get?taskId=999",
        "after": "user.get?ID=1",
    }
    body = rest(portal.webhook_url, "batch", {"halt": 0, "cmd": cmd}).json()["result"]
    assert body["result"]["get"]["task"]["title"] == "Batch"
    assert body["result_error"] == {"bad": {"error": "0", "error_description": "Action on the task is not allowed"}}
    assert body["result_total"] == {"after": 1}
    halted = rest(portal.webhook_url, "batch", {"halt": 1, "cmd": cmd}).json()["result"]
    assert "after" not in halted["result"] and "bad" in halted["result_error"]
    listed = rest(portal.webhook_url, "batch", {"cmd": ["user.current", "user.current"]}).json()["result"]
    assert isinstance(listed["result"], list) and listed["result_error"] == []  # PHP arrays
    too_long = rest(portal.webhook_url, "batch", {"cmd": {str(i): "user.current" for i in range(51)}})
    assert too_long.status_code == 400 and too_long.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_a_person_completes_defers_answers_and_deletes(portal: PortalServer) -> None:
    url = portal.webhook_url
    task = new_task(url)
    enum = next(
        f for f in rest(url, "task.item.userfield.getlist").json()["result"] if f["FIELD_NAME"] == "UF_RESULT_ANSWER"
    )
    yes = next(v["ID"] for v in enum["LIST"] if v["XML_ID"] == "ok")
    bad = rest(url, "tasks.task.update", {"taskId": task["id"], "fields": {"UF_RESULT_ANSWER": "9999"}})
    assert bad.status_code == 400 and bad.json()["error"] == "ERROR_CORE"
    rest(url, "tasks.task.update", {"taskId": task["id"], "fields": {"UF_RESULT_ANSWER": yes}}).raise_for_status()
    deferred = rest(url, "tasks.task.defer", {"taskId": task["id"]}).json()["result"]["task"]
    assert deferred["status"] == "6"
    comment = rest(url, "task.commentitem.add", {"TASKID": task["id"], "FIELDS": {"POST_MESSAGE": "Done, paid"}})
    result = rest(url, "tasks.task.result.addFromComment", {"commentId": comment.json()["result"]}).json()["result"]
    assert result["status"] == 0 and result["taskId"] == int(task["id"])
    done = rest(url, "tasks.task.complete", {"taskId": task["id"]}).json()["result"]["task"]
    assert done["status"] == "5" and done["closedBy"] == "1" and done["closedDate"]
    results = rest(url, "tasks.task.result.list", {"taskId": task["id"]}).json()["result"]
    assert [(r["text"], r["status"]) for r in results] == [("Done, paid", 1)]  # closed with the task
    again = rest(url, "tasks.task.complete", {"taskId": task["id"]})
    assert again.status_code == 400 and again.json()["error_description"] == "Action on the task is not allowed"
    got = rest(url, "tasks.task.get", {"taskId": task["id"], "select": ["STATUS", "UF_RESULT_ANSWER"]}).json()
    assert got["result"]["task"] == {"id": task["id"], "status": "5", "ufResultAnswer": yes}
    assert rest(url, "tasks.task.delete", {"taskId": task["id"]}).json()["result"] == {"task": True}
    assert rest(url, "tasks.task.get", {"taskId": task["id"]}).status_code == 400


def test_task_control_waits_for_the_creator(portal: PortalServer) -> None:
    task = new_task(portal.webhook_url, TASK_CONTROL="Y", RESPONSIBLE_ID=3)
    as_ivan = portal.webhook_url_for(3)
    done = rest(as_ivan, "tasks.task.complete", {"taskId": task["id"]}).json()["result"]["task"]
    assert done["status"] == "4"  # awaiting control
    approved = rest(portal.webhook_url, "tasks.task.approve", {"taskId": task["id"]}).json()["result"]["task"]
    assert approved["status"] == "5"


def test_dependencies_and_duplicate_links(portal: PortalServer) -> None:
    first, second = new_task(portal.webhook_url), new_task(portal.webhook_url)
    link = {"taskIdFrom": first["id"], "taskIdTo": second["id"], "linkType": 2}
    assert rest(portal.webhook_url, "task.dependence.add", link).json()["result"] == []
    again = rest(portal.webhook_url, "task.dependence.add", link)
    assert again.status_code == 400 and again.json()["error"] == "ILLEGAL_NEW_LINK"
    got = rest(portal.webhook_url, "tasks.task.get", {"taskId": second["id"]}).json()["result"]["task"]
    assert got["dependsOn"] == [first["id"]]


def test_admin_stats_count_duplicates_and_reset_forgets(portal: PortalServer) -> None:
    for external_id in ("a", "b", "a"):
        new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK=external_id)
    stats = requests.get(portal.url + "/_admin/stats", timeout=5).json()
    assert stats["tasks"] == 3 and stats["duplicates"] == {"a": 2} and stats["by_external_id"] == {"a": 2, "b": 1}
    inject(portal, status=500, count=5)
    requests.post(portal.url + "/_admin/reset", timeout=5).raise_for_status()
    assert requests.get(portal.url + "/_admin/stats", timeout=5).json()["tasks"] == 0
    assert rest(portal.webhook_url, "user.current").status_code == 200  # same webhook, faults cleared


def test_user_fields_can_be_absent_and_created() -> None:
    with start(0, with_user_fields=False) as server:
        names = {f["FIELD_NAME"] for f in rest(server.webhook_url, "task.item.userfield.getlist").json()["result"]}
        assert names == {"UF_CRM_TASK", "UF_MAIL_MESSAGE", "UF_TASK_WEBDAV_FILES"}
        params = {"PARAMS": {"USER_TYPE_ID": "string", "FIELD_NAME": "CAMUNDA_ID_EXTERNAL_TASK"}}
        assert isinstance(rest(server.webhook_url, "task.item.userfield.add", params).json()["result"], int)
        twice = rest(server.webhook_url, "task.item.userfield.add", params).json()
        assert (
            twice["error_description"]
            == "The field UF_CAMUNDA_ID_EXTERNAL_TASK for the object TASKS_TASK already exists.<br>"
        )


def test_cli_prints_the_webhook_url_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = (tmp_path / "bitrix24.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "exchanger_sandbox", "bitrix24", "--port", "0", "--token", "clitoken1234"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        settings = json.loads(process.stdout.readline())
        assert settings["BITRIX_WEBHOOK_URL"].endswith("/rest/1/clitoken1234/")
        assert rest(settings["BITRIX_WEBHOOK_URL"], "user.current").json()["result"]["ID"] == "1"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        log.close()
    logged = (tmp_path / "bitrix24.log").read_text()
    assert "user.current" in logged and "clitoken1234" not in logged  # the request log masks the code
