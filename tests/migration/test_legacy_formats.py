"""Exchanger.py's message formats (T, S, R, E1-E4: exchanger.migration.legacy) → the current contracts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exchanger.contracts import SCHEMA_HEADER, ResponseStatus, SentRecord, TaskMessage
from exchanger.migration import legacy
from exchanger.migration.legacy import LegacyConversionError, classify, convert
from exchanger.routing import RoutingTable
from exchanger_sandbox.exchanger_py import OldTool

ROUTING = RoutingTable()
CAMUNDA_TASK = {
    "id": "c1d2e3f4", "topicName": "bitrix_create_task", "processInstanceId": "a9b8", "activityId": "Activity_Approve",
    "activityInstanceId": "Activity_Approve:c1d3", "processDefinitionKey": "Process_1d4oa6g46", "tenantId": "imenaProd",
    "priority": 0, "retries": None, "businessKey": None,
    "variables": {"startedBy": {"type": "String", "value": "17"}, "amount": {"type": "Long", "value": 150000}},
    "extensionProperties": {"assigneeId": "42", "UF_RESULT_EXPECTED": "true", "UF_RESULT_QUESTION": "OK?"},
}  # fmt: skip
T = OldTool.task_message(CAMUNDA_TASK, "bitrix24", "Согласовать")
BITRIX_TASK = {"id": "8812", "title": "Согласовать", "status": "2"}
S = OldTool.sent_record(T, BITRIX_TASK)


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def run(data: dict[str, Any] | bytes, **kwargs: Any) -> legacy.Converted:
    raw = data if isinstance(data, bytes) else body(data)
    return convert(raw, None, worker_id="exchanger", routing=ROUTING, **kwargs)


def r(answer: str | None, questionnaires: dict[str, Any] | None = None, status: str = "completed_by_tracker"):
    return {**OldTool.response(S, {**BITRIX_TASK, "status": "5"}, answer, questionnaires), "processing_status": status}


def test_every_old_kind_is_told_apart_by_its_keys() -> None:
    assert classify(body(T)) == legacy.TASK
    assert classify(body({**T, "retry_count": 2})) == legacy.RETRY
    assert classify(body(S)) == legacy.SENT
    assert classify(body(r("ДА"))) == legacy.RESPONSE
    assert classify(body(OldTool.e1(T))) == legacy.E1
    assert classify(body(OldTool.e2(r("ДА")))) == legacy.E2
    assert classify(body(OldTool.e3(T))) == legacy.E3
    assert classify(body({**OldTool.e3(T), "error_type": "ASSIGNEE_ID_ERROR"})) == legacy.E4
    assert classify(b"{not json") == legacy.UNKNOWN
    assert classify(b"[1, 2]") == legacy.UNKNOWN
    assert classify(b"{}", {SCHEMA_HEADER: "exchanger.task/1"}) == legacy.NEW


def test_a_task_message_keeps_its_task_and_types_its_variables() -> None:
    converted = run({**T, "variables": {**T["variables"], "flat_only": True}})
    task = converted.message
    assert isinstance(task, TaskMessage) and converted.target == "task"
    assert (task.task_id, task.topic_name, task.system, task.worker_id) == ("c1d2e3f4", "bitrix_create_task",
                                                                             "bitrix24", "exchanger")
    assert (task.tenant_id, task.process_definition_key, task.activity_id) == ("imenaProd", "Process_1d4oa6g46",
                                                                                "Activity_Approve")
    assert task.variables["amount"] == {"value": 150000, "type": "Long"}  # the type Camunda gave, not a guess
    assert task.variables["flat_only"] == {"value": True, "type": "Boolean"}
    assert task.prop("UF_RESULT_QUESTION") == "OK?" and task.bpmn_metadata.activity_name == "Согласовать"
    assert task.created_at.isoformat() == "2025-03-03T10:15:30.123000+03:00"


def test_python_services_topics_go_to_the_python_system_and_unknown_topics_to_default() -> None:
    assert run({**T, "topic": "send_email", "system": "python-services"}).system == "python"
    assert run({**T, "topic": "bitrix_update_deal"}).system == "default"


def test_a_tracking_record_tracks_the_same_bitrix24_task_and_keeps_the_old_question() -> None:
    converted = run(S, item_url=lambda task_id: f"https://portal/task/{task_id}")
    record = converted.message
    assert isinstance(record, SentRecord) and converted.target == "sent" and converted.system == "bitrix24"
    assert (record.item.id, record.item.url) == ("8812", "https://portal/task/8812")
    assert record.item.data == {"activity_id": "Activity_Approve", "result_expected": True,
                                "xml_id": "a9b8:Activity_Approve"}


def test_a_stub_era_tracking_record_becomes_the_task_again() -> None:
    stub = OldTool.stub_sent_record({**T, "topic": "op_create_task", "system": "openproject"}, "work_package")
    converted = run(stub)
    assert converted.target == "task" and converted.system == "openproject"


def test_a_response_completes_with_the_old_variables_without_the_snapshot() -> None:
    questionnaires = {"items": [{"CODE": "BUDGET", "questions": [
        {"CODE": "AMOUNT", "TYPE": "integer", "answer": "150000"}, {"CODE": "AGREED", "TYPE": "boolean"},
        {"CODE": "NOTE", "TYPE": "string"}, {"CODE": "CODE", "TYPE": "integer", "answer": "A-1"}]}]}
    converted = run(r("НЕТ", questionnaires))
    response = converted.message
    assert converted.target == "response" and response.status == ResponseStatus.COMPLETE
    values = {name: typed["value"] for name, typed in response.variables.items()}
    assert values == {"bitrix_task_id": "8812", "bitrix_task_title": "Согласовать", "bitrix_task_status": "5",
                      "Activity_Approve_BUDGET_AMOUNT": 150000, "Activity_Approve_BUDGET_AGREED": False,
                      "Activity_Approve_BUDGET_NOTE": None, "Activity_Approve_BUDGET_CODE": "A-1",
                      "Activity_Approve": "no"}
    assert response.item is not None and response.item.id == "8812"


@pytest.mark.parametrize(("answer", "expected"), [("ДА", "ok"), (" да ", "ok"), ("НЕТ", "no"), ("Maybe", "no")])
def test_the_answer_text_decides_as_the_old_worker_did(answer: str, expected: str) -> None:
    assert run(r(answer)).message.variables["Activity_Approve"]["value"] == expected


def test_a_raw_enum_id_is_resolved_on_the_portal_and_an_unknown_one_is_refused_never_read_as_no() -> None:
    values = {"26": "ДА", "27": "НЕТ"}
    assert run(r("26"), answer_text=values.get).message.variables["Activity_Approve"]["value"] == "ok"
    with pytest.raises(LegacyConversionError, match="enum ID 999 is unknown"):
        run(r("999"), answer_text=values.get)


def test_error_records_become_what_they_hold_or_are_refused() -> None:
    assert run(OldTool.e2(r("ДА"))).target == "response"
    assert run(OldTool.e3(T)).target == "task"
    with pytest.raises(LegacyConversionError, match="raw_body"):
        run(OldTool.e2({"raw_body": "garbage", "original_message": T}))
    with pytest.raises(LegacyConversionError, match="E1 record"):
        run(OldTool.e1(T))
    with pytest.raises(LegacyConversionError, match="processing_status 'failed'"):
        run(r("ДА", status="failed"))
    with pytest.raises(LegacyConversionError, match="without task_id"):
        run({"task_id": "", "topic": "x"})


def test_a_rerun_publishes_the_same_message_id() -> None:
    assert legacy.message_id(body(T)) == legacy.message_id(body(T)) != legacy.message_id(body(S))
