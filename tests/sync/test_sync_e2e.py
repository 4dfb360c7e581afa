"""camunda-sync end to end, for real: a diagram uploaded to the fake StormBPMN through its public API is
deployed by ``camunda-sync/main.py --once`` under the environment's tenant, runs through camunda-worker,
task-creator and the fake Bitrix24 with a person answering the question (yes and no), is not redeployed
when nothing changed and gets exactly one new version when it changes; a broken diagram is named and
skipped. The portal is set up as the old Exchanger.py tool left it (answer values «ДА»/«НЕТ» whose
XML_IDs are neither ok nor no), and a model the old tool deployed (``UF_RESULT_EXPECTED``/
``UF_RESULT_QUESTION``, ``checklists`` with ``name``) routes its gateway on «ДА» too. Everything runs as
processes (``exchanger_sandbox.demo.stack``), StormBPMN with its quota headers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger_sandbox.demo.stack import Stack
from exchanger_sandbox.stormbpmn.server import upload as storm_upload

TENANT = "syncE2E"
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/'
        '20100524/MODEL" id="Definitions_1" targetNamespace="http://stormbpmn.com/schema/bpmn">\n')
REQUEST = HEAD + """  <bpmn:process id="Process_request" isExecutable="false">
    <bpmn:startEvent id="StartEvent_1" name="Заявка пришла" />
    <bpmn:userTask id="Activity_approve" name="Согласовать заявку" />
    <bpmn:exclusiveGateway id="Gateway_1" name="Заявка согласована?" />
    <bpmn:userTask id="Activity_execute" name="Исполнить заявку" />
    <bpmn:endEvent id="Event_done" />
    <bpmn:endEvent id="Event_rejected" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_approve" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_approve" targetRef="Gateway_1" />
    <bpmn:sequenceFlow id="Flow_yes" name="Да" sourceRef="Gateway_1" targetRef="Activity_execute" />
    <bpmn:sequenceFlow id="Flow_no" name="нет" sourceRef="Gateway_1" targetRef="Event_rejected" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Activity_execute" targetRef="Event_done" />
  </bpmn:process>
</bpmn:definitions>
"""
OLD_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  id="Definitions_old" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="Process_old_tool" isExecutable="true" camunda:historyTimeToLive="365">
    <bpmn:startEvent id="Start" />
    <bpmn:serviceTask id="Activity_old" name="Согласовать по-старому" camunda:type="external"
      camunda:topic="bitrix_create_task">
      <bpmn:extensionElements><camunda:properties>
        <camunda:property name="UF_RESULT_EXPECTED" value="true" />
        <camunda:property name="UF_RESULT_QUESTION" value="Согласовано по-старому?" />
        <camunda:property name="checklists" value='[{"name":"Документы","items":["Паспорт","СНИЛС"]}]' />
      </camunda:properties></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:exclusiveGateway id="Gateway_old" />
    <bpmn:serviceTask id="Activity_old_yes" name="Дальше по-старому" camunda:type="external"
      camunda:topic="bitrix_create_task" />
    <bpmn:endEvent id="End_yes" />
    <bpmn:endEvent id="End_no" />
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Activity_old" />
    <bpmn:sequenceFlow id="F2" sourceRef="Activity_old" targetRef="Gateway_old" />
    <bpmn:sequenceFlow id="F_yes" sourceRef="Gateway_old" targetRef="Activity_old_yes">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${Activity_old == "ok"}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="F_no" sourceRef="Gateway_old" targetRef="End_no">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${Activity_old != "ok"}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="F3" sourceRef="Activity_old_yes" targetRef="End_yes" />
  </bpmn:process>
</bpmn:definitions>
"""
BROKEN = REQUEST.replace("Process_request", "Process_broken").replace(
    '<bpmn:exclusiveGateway id="Gateway_1" name="Заявка согласована?" />',
    '<bpmn:parallelGateway id="Gateway_1" name="Заявка согласована?" />')


def upload(settings: dict[str, str], items: list[dict[str, str]]) -> dict[str, Any]:
    return storm_upload(settings["STORMBPMN_BASE_URL"], settings["STORMBPMN_API_KEY"], items)


class Person:
    """Answers and completes the open Bitrix24 tasks through the portal's REST API."""

    def __init__(self, webhook_url: str) -> None:
        self.url = webhook_url

    def call(self, method: str, params: dict[str, Any]) -> Any:
        response = requests.post(self.url + method, json=params, timeout=10)
        response.raise_for_status()
        return response.json()["result"]

    def answer_ids(self) -> dict[str, str]:
        """The answer values by meaning, from their texts as the old tool's portal has them."""
        fields = self.call("task.item.userfield.getlist", {})
        answer = next(f for f in fields if f["FIELD_NAME"] == "UF_RESULT_ANSWER")
        texts = {"ДА": "ok", "НЕТ": "no"}
        return {texts[value["VALUE"]]: value["ID"] for value in answer["LIST"]}

    def make_portal_old(self) -> None:
        """The answer field as the old Exchanger.py setup made it: «ДА»/«НЕТ», XML_IDs nobody chose."""
        fields = self.call("task.item.userfield.getlist", {})
        answer = next(f for f in fields if f["FIELD_NAME"] == "UF_RESULT_ANSWER")
        self.call("task.item.userfield.delete", {"ID": answer["ID"]})
        self.call("task.item.userfield.add", {"PARAMS": {
            "FIELD_NAME": "UF_RESULT_ANSWER", "USER_TYPE_ID": "enumeration", "LABEL": "Результат", "MULTIPLE": "N",
            "LIST": [{"VALUE": "ДА", "XML_ID": "a81f3c"}, {"VALUE": "НЕТ", "XML_ID": "5d02b7"}]}})

    def work(self, answers: dict[str, str], approve: set[str]) -> None:
        """Finish every open task; a question is answered yes for the instances in ``approve``, else no."""
        tasks = self.call("tasks.task.list", {"filter": {"STATUS": 2},
                                               "select": ["ID", "UF_RESULT_EXPECTED", "XML_ID"]})["tasks"]
        for task in tasks:
            if str(task.get("ufResultExpected")) == "1":
                instance = str(task.get("xmlId") or "").split(":")[0]
                answer = answers["ok" if instance in approve else "no"]
                self.call("tasks.task.update", {"taskId": task["id"], "fields": {"UF_RESULT_ANSWER": answer}})
            self.call("tasks.task.complete", {"taskId": task["id"]})


@pytest.mark.slow
def test_a_storm_diagram_is_deployed_once_per_change_and_runs_with_people(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        stack.create_vhost()
        stack.start_sandbox("camunda")
        stack.start_sandbox("bitrix24", "--rate", "50", "--burst", "200")
        storm = stack.start_sandbox("stormbpmn", "--per-window", "5", "--window-s", "3")  # the vendor's 5, faster
        stack.write_env_file({
            "CAMUNDA_TENANT_ID": TENANT, "CAMUNDA_WORKER_ID": "sync-e2e", "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "5000",
            "STORMBPMN_RATE_PER_MIN": "4", "STORMBPMN_RATE_WINDOW_S": "3",
            "CREATOR_QUEUES": "bitrix24.queue,bitrix24.sent.queue", "CREATOR_CHECK_INTERVAL_S": "1",
            "BITRIX_CHECK_INTERVAL_S": "1",
            "BITRIX_RATE_PER_S": "20", "BITRIX_BURST": "100", "WORKER_HEALTH_PORT": "0", "CREATOR_HEALTH_PORT": "0",
            "CAMUNDA_SYNC_HEALTH_PORT": "0", "LOG_LEVEL": "INFO",
        })
        upload(storm, [{"id": "request", "name": "Заявка", "xml": REQUEST},
                       {"id": "broken", "name": "Сломанная заявка", "xml": BROKEN}])
        time.sleep(3)  # the upload used the quota window; the sync's own limiter knows only its calls

        first = stack.run_once("camunda-sync", "--once")
        assert first.returncode == 1, first.stdout + first.stderr  # one diagram failed: named, others synced
        assert f"→ deployed Process_request version 1 (tenant {TENANT})" in first.stdout
        assert "«Сломанная заявка»" in first.stdout and "yes/no flows leave a parallelGateway" in first.stdout

        ops = EngineOps(CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"])), TENANT)
        (deployment,) = ops.get("/deployment")
        assert (deployment["tenantId"], deployment["source"]) == (TENANT, "camunda-sync")

        person = Person(stack.settings["BITRIX_WEBHOOK_URL"])
        person.make_portal_old()
        answers = person.answer_ids()
        ops.deploy(OLD_MODEL, name="old.bpmn", deployment_name="old-tool")  # as Exchanger.py deployed it
        stack.start_daemon("camunda-worker")
        stack.start_daemon("task-creator")
        approved = ops.start("Process_request", business_key="approved")
        rejected = ops.start("Process_request", business_key="rejected")
        old_style = ops.start("Process_old_tool", business_key="old")
        deadline = time.monotonic() + 90
        finished: set[str] = set()
        while time.monotonic() < deadline and finished != {approved, rejected, old_style}:
            person.work(answers, approve={approved, old_style})
            finished = {i["id"] for i in ops.finished_instances("Process_request")}
            finished |= {i["id"] for i in ops.finished_instances("Process_old_tool")}
            time.sleep(0.5)
        assert finished == {approved, rejected, old_style}, "the instances did not finish"
        executed = {a["processInstanceId"] for a in ops.activity_history(activityId="Activity_execute")}
        assert executed == {approved}  # «ДА» went on, «НЕТ» ended
        assert [a["processInstanceId"] for a in ops.activity_history(activityId="Activity_old_yes")] == [old_style]
        assert ops.incidents() == []

        second = stack.run_once("camunda-sync", "--once")
        assert second.returncode == 1 and "deployed" not in second.stdout  # nothing changed: nothing deployed
        assert len([d for d in ops.get("/deployment") if d["source"] == "camunda-sync"]) == 1

        upload(storm, [{"id": "request", "name": "Заявка", "xml": REQUEST.replace("Исполнить заявку",
                                                                                  "Исполнить заявку в срок")}])
        time.sleep(3)
        third = stack.run_once("camunda-sync", "--once")
        assert "→ deployed Process_request version 2" in third.stdout, third.stdout + third.stderr
        versions = sorted(d["version"] for d in ops.get("/process-definition", key="Process_request"))
        assert versions == [1, 2]

        status = subprocess.run([str(Path(sys.executable).parent / "exchanger"), "sync", "status"],
                                env={**stack._base_env(), "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(tmp_path)},
                                capture_output=True, text=True, timeout=60)
        assert "«Заявка»" in status.stdout and "Process_request:2" in status.stdout, status.stdout + status.stderr
        assert storm_overruns(storm) == 0
    finally:
        stack.stop_all()
        stack.delete_vhost()


def storm_overruns(settings: dict[str, str]) -> int:
    return int(requests.get(settings["STORMBPMN_BASE_URL"] + "/_admin/stats", timeout=5).json()["overruns"])
