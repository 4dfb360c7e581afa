"""The Bitrix24 consumer on a portal and with models as the old Exchanger.py tool left them.

The old tool's answer values read «ДА»/«НЕТ» with XML_IDs nobody chose; its models spell the question
``UF_RESULT_EXPECTED``/``UF_RESULT_QUESTION`` and the checklist ``checklists`` with ``name``; its tasks
carry ``UF_RESULT_EXPECTED`` = Y themselves. All of it must keep routing gateways as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from b24_helpers import client_for, rest
from test_b24_handler import handler_for, make_task, stored
from test_b24_tracker import PERSON, person, tracker_for

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import Done
from exchanger.errors import ConfigError
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger_sandbox.bitrix24.server import PortalServer

OLD_ANSWERS = [  # IDs and XML_IDs as some old portal has them: only the texts are known
    {"ID": "26", "SORT": "100", "VALUE": "ДА", "DEF": "N", "XML_ID": "f1c9a2"},
    {"ID": "27", "SORT": "200", "VALUE": "НЕТ", "DEF": "N", "XML_ID": "0b7e44"},
]
OLD_QUESTION = {"UF_RESULT_EXPECTED": "true", "UF_RESULT_QUESTION": "Согласовано?", "assigneeId": str(PERSON)}


@pytest.fixture
def old_portal(portal: PortalServer) -> PortalServer:
    with portal.portal.lock:
        portal.portal.user_fields["UF_RESULT_ANSWER"]["LIST"] = [dict(value) for value in OLD_ANSWERS]
    return portal


def answer_and_complete(portal: PortalServer, task_id: int, enum_id: str) -> None:
    person(portal, "tasks.task.update", {"taskId": task_id, "fields": {"UF_RESULT_ANSWER": enum_id}})
    person(portal, "tasks.task.complete", {"taskId": task_id})


def test_the_start_check_accepts_the_old_answer_texts(old_portal: PortalServer, client: Bitrix24Client) -> None:
    handler_for(client)  # no ConfigError: «ДА»/«НЕТ» stand in for the XML_IDs ok/no
    strict = client_for(old_portal, answer_ok_texts="yes", answer_no_texts="no")
    try:
        with pytest.raises(ConfigError, match="without ok, no"):
            handler_for(strict)
    finally:
        strict.close()


@pytest.mark.parametrize(("enum_id", "expected"), [("26", "ok"), ("27", "no")])
def test_an_old_model_asks_and_its_old_answer_routes(old_portal: PortalServer, client: Bitrix24Client,
                                                     enum_id: str, expected: str) -> None:
    checklists = [{"name": "Документы", "items": ["Паспорт", "СНИЛС"]}]
    properties = {**OLD_QUESTION, "checklists": json.dumps(checklists, ensure_ascii=False)}
    item = handler_for(client).process_message(make_task(properties=properties))
    assert isinstance(item, ExternalItem) and item.data["result_expected"] is True
    fields = stored(old_portal, item)
    assert (fields["UF_RESULT_EXPECTED"], fields["UF_RESULT_QUESTION"]) == ("1", "Согласовано?")
    rows = [row for row in old_portal.portal.checklist.values() if row["TASK_ID"] == item.id]
    assert sorted(row["TITLE"] for row in rows) == ["Документы", "Паспорт", "СНИЛС"]
    answer_and_complete(old_portal, int(item.id), enum_id)
    outcome = tracker_for(client).check(SentRecord(task=make_task(properties=properties), item=item))
    assert isinstance(outcome, Done) and outcome.variables["Activity_Approve"] == expected


def test_a_task_the_old_tool_created_is_read_by_its_own_flag(old_portal: PortalServer, client: Bitrix24Client) -> None:
    """Adopted after the switch: the sent record may not know a question was asked; the task does."""
    fields: dict[str, Any] = {"TITLE": "Согласовать договор", "RESPONSIBLE_ID": PERSON, "UF_RESULT_EXPECTED": "Y",
                              "UF_RESULT_QUESTION": "Согласовано?", "UF_CAMUNDA_ID_EXTERNAL_TASK": "old-1"}
    response = rest(old_portal.webhook_url, "tasks.task.add", {"fields": fields})
    task_id = int(response.json()["result"]["task"]["id"])
    answer_and_complete(old_portal, task_id, "26")  # «ДА»
    record = SentRecord(task=make_task("old-1"), item=ExternalItem(system="bitrix24", id=str(task_id)))
    outcome = tracker_for(client).check(record)
    assert isinstance(outcome, Done) and outcome.variables["Activity_Approve"] == "ok"


def test_the_new_spelling_wins_and_a_false_old_flag_asks_nothing(client: Bitrix24Client,
                                                                 portal: PortalServer) -> None:
    handler = handler_for(client)
    both = {"resultExpected": "true", "resultQuestion": "New?", "UF_RESULT_QUESTION": "Old?"}
    assert stored(portal, handler.process_message(make_task("n-1", both)))["UF_RESULT_QUESTION"] == "New?"
    quiet = handler.process_message(make_task("n-2", {"UF_RESULT_EXPECTED": "false"}))
    assert quiet.data["result_expected"] is False
