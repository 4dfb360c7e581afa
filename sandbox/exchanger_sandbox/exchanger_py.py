"""A stand-in for what Exchanger.py leaves behind, for the migration's tests and benchmark.

It does what the old tool did, through the same APIs: declares the old topology (``<system>.*``
bindings, ``python-services.queue``, ``bitrix24.dead_letter.queue``), locks tasks for a year under
``universal-worker``, creates Bitrix24 tasks with the old user fields (``UF_RESULT_EXPECTED`` = ``Y``,
no ``XML_ID``) on a portal whose answer values read «ДА»/«НЕТ», and writes messages in the old formats
(:mod:`exchanger.migration.legacy` reads them) into the old queues.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from exchanger.camunda.client import CamundaClient
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.variables import from_typed

WORKER_ID = "universal-worker"
ONE_YEAR_MS = 31_536_000_000
ANSWERS = ("ДА", "НЕТ")
OLD_SYSTEM_KEYS = {  # queue ← binding keys of the old tasks exchange
    "bitrix24.queue": ["bitrix24.*"], "openproject.queue": ["openproject.*"], "1c.queue": ["1c.*"],
    "python-services.queue": ["python.*", "email.*", "telegram.*", "yandex.*", "user.*", "file.*", "data.*"],
}  # fmt: skip
OLD_PLAIN_QUEUES = ("bitrix24.sent.queue", "openproject.sent.queue", "1c.sent.queue", "python-services.sent.queue",
                    "default.sent.queue", "bitrix24.dead_letter.queue")
OLD_USER_FIELDS: list[dict[str, Any]] = [
    {"FIELD_NAME": "UF_CAMUNDA_ID_EXTERNAL_TASK", "USER_TYPE_ID": "string"},
    {"FIELD_NAME": "UF_RESULT_EXPECTED", "USER_TYPE_ID": "boolean"},
    {"FIELD_NAME": "UF_RESULT_QUESTION", "USER_TYPE_ID": "string"},
    {"FIELD_NAME": "UF_RESULT_ANSWER", "USER_TYPE_ID": "enumeration",
     "LIST": [{"VALUE": ANSWERS[0], "SORT": 10}, {"VALUE": ANSWERS[1], "SORT": 20}]},
    {"FIELD_NAME": "UF_ELEMENT_ID", "USER_TYPE_ID": "string"},
    {"FIELD_NAME": "UF_PROCESS_INSTANCE_ID", "USER_TYPE_ID": "string"},
]
TRUTHY = ("true", "1", "да", "yes")


def declare_old_topology(channel: BlockingChannel) -> None:
    """Exchanges and classic queues as the old tool declared them (durable, no arguments)."""
    channel.exchange_declare("camunda.unrouted.tasks", "fanout", durable=True)
    channel.exchange_declare("camunda.external.tasks", "topic", durable=True,
                             arguments={"alternate-exchange": "camunda.unrouted.tasks"})
    channel.exchange_declare("camunda.task.responses", "direct", durable=True)
    for queue, keys in OLD_SYSTEM_KEYS.items():
        channel.queue_declare(queue, durable=True)
        for key in keys:
            channel.queue_bind(queue, "camunda.external.tasks", key)
    channel.queue_declare("default.queue", durable=True)
    channel.queue_bind("default.queue", "camunda.unrouted.tasks", "")
    channel.queue_declare("camunda.responses.queue", durable=True)
    channel.queue_bind("camunda.responses.queue", "camunda.task.responses", "camunda.responses.queue")
    channel.queue_declare("errors.camunda_tasks.queue", durable=True)
    channel.queue_bind("errors.camunda_tasks.queue", "camunda.external.tasks", "errors.camunda_tasks")
    for queue in OLD_PLAIN_QUEUES:
        channel.queue_declare(queue, durable=True)


def set_up_old_portal(admin: Bitrix24Client) -> dict[str, str]:
    """The task user fields the ``imena.camunda`` add-on made; returns answer text → enum ID."""
    for definition in OLD_USER_FIELDS:
        admin.call("task.item.userfield.add", {"PARAMS": {**definition, "LABEL": definition["FIELD_NAME"]}})
    for definition in admin.user_fields():
        if definition["FIELD_NAME"] == "UF_RESULT_ANSWER":
            return {item["VALUE"]: str(item["ID"]) for item in definition["LIST"]}
    raise AssertionError("UF_RESULT_ANSWER was not created")


class OldTool:
    """The old camunda-worker and task-creator, reduced to the state they leave."""

    def __init__(self, camunda: CamundaClient, bitrix: Bitrix24Client, channel: BlockingChannel) -> None:
        self.camunda = camunda  # its worker_id is the old one
        self.bitrix = bitrix
        self.channel = channel

    # --- camunda-worker ---------------------------------------------------------------------------

    def fetch(self, topic: str, count: int, system: str = "bitrix24",
              activity_names: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Lock ``count`` tasks of ``topic`` for a year; return them as old task messages (T)."""
        tasks = self.camunda.fetch_and_lock([topic], lock_duration_ms=ONE_YEAR_MS, max_tasks=count,
                                            async_response_timeout_ms=0)
        return [self.task_message(task, system, (activity_names or {}).get(task["activityId"], "")) for task in tasks]

    @staticmethod
    def task_message(task: dict[str, Any], system: str, activity_name: str = "") -> dict[str, Any]:
        typed = task.get("variables") or {}
        now_ms = int(time.time() * 1000)
        properties = task.get("extensionProperties") or {}
        return {
            "task_id": task["id"], "topic": task["topicName"], "system": system,
            "variables": {name: from_typed(value) for name, value in typed.items()},
            "process_variables": {name: {**value, "valueInfo": {}} for name, value in typed.items()},
            "process_instance_id": task["processInstanceId"],
            "process_definition_key": task.get("processDefinitionKey"), "activity_id": task["activityId"],
            "activity_instance_id": task["activityInstanceId"], "worker_id": WORKER_ID, "retries": task.get("retries"),
            "created_time": "2025-03-03T10:15:30.123+0300", "priority": task.get("priority") or 0,
            "tenant_id": task.get("tenantId"), "business_key": task.get("businessKey"), "timestamp": now_ms,
            "metadata": {
                "extensionProperties": properties,
                "activityInfo": {"id": task["activityId"], "name": activity_name, "type": "external",
                                 "topic": task["topicName"]},
                "processVariables": {name: {**value, "valueInfo": {}} for name, value in typed.items()},
            },
        }  # fmt: skip

    def complete(self, task_id: str, variables: dict[str, Any]) -> None:
        self.camunda.complete(task_id, variables=variables)

    # --- task-creator -----------------------------------------------------------------------------

    def create_bitrix_task(self, message: dict[str, Any]) -> dict[str, Any]:
        """``tasks.task.add`` as the old Bitrix24 consumer called it; returns the task (camelCase)."""
        properties = message["metadata"]["extensionProperties"]
        expected = str(properties.get("UF_RESULT_EXPECTED", "")).strip().lower() in TRUTHY
        fields = {
            "TITLE": message["metadata"]["activityInfo"]["name"] or message["activity_id"],
            "DESCRIPTION": "Задача из Camunda", "RESPONSIBLE_ID": int(properties.get("assigneeId") or 2),
            "UF_CAMUNDA_ID_EXTERNAL_TASK": message["task_id"], "UF_RESULT_EXPECTED": "Y" if expected else "N",
            "UF_RESULT_QUESTION": properties.get("UF_RESULT_QUESTION", ""), "UF_ELEMENT_ID": message["activity_id"],
            "UF_PROCESS_INSTANCE_ID": message["process_instance_id"], "SE_PARAMETER": [{"CODE": 3, "VALUE": "Y"}],
        }  # fmt: skip
        return dict(self.bitrix.call("tasks.task.add", {"fields": fields})["task"])

    @staticmethod
    def sent_record(message: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": message["timestamp"], "original_queue": f"{message['system']}.queue",
                "original_message": message, "response_data": {"result": {"task": task}, "time": {"start": 1.0}},
                "processing_status": "success", "processed_at": time.time()}

    @staticmethod
    def stub_sent_record(message: dict[str, Any], kind: str) -> dict[str, Any]:
        return {"timestamp": message["timestamp"], "original_queue": f"{message['system']}.queue",
                "original_message": message,
                "response_data": {"result": {kind: {"id": f"mock-{message['task_id'][:8]}"}}, "success": True},
                "processing_status": "success", "processed_at": time.time()}

    @staticmethod
    def response(sent: dict[str, Any], task: dict[str, Any], answer: str | None = None,
                 questionnaires: dict[str, Any] | None = None) -> dict[str, Any]:
        """The tracker's R: ``task`` values as strings, the answer's VALUE text (or a raw enum ID)."""
        out = {key: str(value) for key, value in task.items() if value is not None and not isinstance(value, dict)}
        out["ufResultExpected"] = "1" if answer is not None else "0"
        if answer is not None:
            out["ufResultAnswer_text"] = answer
        result: dict[str, Any] = {"task": out}
        if questionnaires is not None:
            result["questionnaires"] = questionnaires
        return {**sent, "response_data": {"result": result}, "processing_status": "completed_by_tracker",
                "processed_at": time.time()}

    @staticmethod
    def e1(message: dict[str, Any]) -> dict[str, Any]:
        return {"task_id": message["task_id"], "topic": message["topic"], "error": "publish failed",
                "timestamp": int(time.time() * 1000), "type": "task_error"}

    @staticmethod
    def e2(response: dict[str, Any], error_type: str = "timeout_error") -> dict[str, Any]:
        task_id = response["original_message"]["task_id"]
        return {"error_info": {"type": error_type, "message": "Read timed out", "camunda_error_type": None,
                               "camunda_error_message": None, "http_status_code": None,
                               "timestamp": "2025-03-10T12:00:05", "source_queue": "camunda.responses.queue"},
                "original_message": response, "task_id": task_id,
                "activity_id": response["original_message"]["activity_id"], "error_timestamp": 1741597205000}

    @staticmethod
    def e3(message: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": message["timestamp"], "original_message": message, "error_type": "RETRY_LIMIT_EXCEEDED",
                "error_message": "Превышено количество попыток", "source_queue": "bitrix24.queue",
                "requires_manual_intervention": True, "suggested_action": "Проверьте задачу вручную"}

    # --- the broker -------------------------------------------------------------------------------

    def publish_task(self, message: dict[str, Any]) -> None:
        """The worker's publish: tasks exchange, routing key ``<system>.<topic>``, with headers."""
        properties = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", timestamp=int(time.time()),
            headers={"camunda_topic": message["topic"], "target_system": message["system"],
                     "task_id": message["task_id"], "process_instance_id": message["process_instance_id"]})
        self.channel.basic_publish("camunda.external.tasks", f"{message['system']}.{message['topic']}",
                                   json.dumps(message, ensure_ascii=False).encode("utf-8"), properties)

    def put(self, queue: str, body: dict[str, Any] | bytes, headers: dict[str, Any] | None = None) -> None:
        """A persistent JSON message straight into ``queue`` (default exchange), as the old tool wrote S/R/E."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                          content_encoding="utf-8", headers=headers)
        self.channel.basic_publish("", queue, raw, properties)


def _process(key: str, activity: str, name: str, properties: dict[str, str], after: str) -> str:
    props = "".join(f'<camunda:property name="{k}" value="{v}" />' for k, v in properties.items())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  id="Definitions_{key}" targetNamespace="http://exchanger.dev/old-tool">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="Start" />
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="{activity}" />
    <bpmn:serviceTask id="{activity}" name="{name}" camunda:type="external" camunda:topic="bitrix_create_task">
      <bpmn:extensionElements><camunda:properties>{props}</camunda:properties></bpmn:extensionElements>
    </bpmn:serviceTask>
    {after}
  </bpmn:process>
</bpmn:definitions>"""


# an approval as old-tooling BPMN has it: UF_RESULT_* properties and a gateway on the answer
APPROVAL_KEY, APPROVAL_ACTIVITY = "Process_OldApproval", "Activity_Approve"
APPROVAL_BPMN = _process(APPROVAL_KEY, APPROVAL_ACTIVITY, "Согласовать",
                         {"assigneeId": "2", "UF_RESULT_EXPECTED": "true", "UF_RESULT_QUESTION": "Согласны?"}, f"""
    <bpmn:sequenceFlow id="F2" sourceRef="{APPROVAL_ACTIVITY}" targetRef="Decision" />
    <bpmn:exclusiveGateway id="Decision" default="F_No" />
    <bpmn:sequenceFlow id="F_Yes" sourceRef="Decision" targetRef="End_Approved">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        >${{{APPROVAL_ACTIVITY} == "ok"}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="F_No" sourceRef="Decision" targetRef="End_Rejected" />
    <bpmn:endEvent id="End_Approved" />
    <bpmn:endEvent id="End_Rejected" />""")
# a plain task for a person, no question
NOTICE_KEY, NOTICE_ACTIVITY = "Process_OldNotice", "Activity_Notice"
NOTICE_BPMN = _process(NOTICE_KEY, NOTICE_ACTIVITY, "Ознакомиться", {"assigneeId": "2"}, f"""
    <bpmn:sequenceFlow id="F2" sourceRef="{NOTICE_ACTIVITY}" targetRef="End" />
    <bpmn:endEvent id="End" />""")
ACTIVITY_NAMES = {APPROVAL_ACTIVITY: "Согласовать", NOTICE_ACTIVITY: "Ознакомиться"}
