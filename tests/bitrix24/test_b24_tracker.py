"""Bitrix24Tracker against the fake portal: a person works the task through the standard REST methods
(with their own webhook) and the tracker reports what a Camunda task needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from b24_helpers import TOKEN, client_for, inject, rest
from loguru import logger
from test_b24_handler import CONTEXT, handler_for, make_task

from exchanger.contracts import ExternalItem, SentRecord, TaskMessage
from exchanger.creator.base import BpmnErrorOutcome, CheckFailed, Done, Failed, StillOpen
from exchanger.errors import TransientError
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.tracker import Bitrix24Tracker
from exchanger_sandbox.bitrix24.server import PortalServer

PERSON = 2  # Anna, the responsible person in these tests


def created(client: Bitrix24Client, task: TaskMessage) -> SentRecord:
    """What the handler publishes to bitrix24.sent.queue for ``task``."""
    item = handler_for(client).process_message(task)
    assert isinstance(item, ExternalItem)
    return SentRecord(task=task, item=item)


def tracker_for(client: Bitrix24Client) -> Bitrix24Tracker:
    return Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)


def person(portal: PortalServer, method: str, params: dict[str, Any]) -> Any:
    """The responsible person acting on the portal with their own webhook."""
    response = rest(portal.webhook_url_for(PERSON), method, params)
    response.raise_for_status()
    return response.json()["result"]


def enum_id(portal: PortalServer, xml_id: str) -> str:
    values = portal.portal.user_fields["UF_RESULT_ANSWER"]["LIST"]
    return next(value["ID"] for value in values if value["XML_ID"] == xml_id)


def finish(portal: PortalServer, record: SentRecord, answer: str | None = None, result: str | None = None) -> None:
    task_id = int(record.item.id)
    if answer:
        fields = {"UF_RESULT_ANSWER": enum_id(portal, answer)}
        person(portal, "tasks.task.update", {"taskId": task_id, "fields": fields})
    if result:
        comment = person(portal, "task.commentitem.add", {"TASKID": task_id, "FIELDS": {"POST_MESSAGE": result}})
        person(portal, "tasks.task.result.addFromComment", {"commentId": comment})
    person(portal, "tasks.task.complete", {"taskId": task_id})


QUESTION = {"resultExpected": "true", "resultQuestion": "Approve?", "RESPONSIBLE_ID": str(PERSON)}


def test_open_and_deferred_tasks_keep_waiting(client: Bitrix24Client, portal: PortalServer) -> None:
    record = created(client, make_task())
    tracker = tracker_for(client)
    assert tracker.check(record) == StillOpen(note="status 2 (pending)")
    person(portal, "tasks.task.start", {"taskId": int(record.item.id)})
    assert tracker.check(record) == StillOpen(note="status 3 (in progress)")
    person(portal, "tasks.task.defer", {"taskId": int(record.item.id)})
    assert tracker.check(record) == StillOpen(note="status 6 (deferred)")
    assert tracker.check_interval_s == client.settings.check_interval_s


@pytest.mark.parametrize("answer", ["ok", "no"])
def test_a_completed_task_with_an_answer(client: Bitrix24Client, portal: PortalServer, answer: str) -> None:
    record = created(client, make_task(properties=QUESTION))
    finish(portal, record, answer=answer, result="Checked the papers")
    outcome = tracker_for(client).check(record)
    assert isinstance(outcome, Done)
    variables = outcome.variables
    assert variables["Activity_Approve"] == answer
    assert (variables["bitrix_task_id"], variables["bitrix_task_status"]) == (int(record.item.id), 5)
    assert variables["bitrix_task_url"] == record.item.url
    assert (variables["bitrix_result"], variables["bitrix_closed_by"]) == ("Checked the papers", PERSON)
    assert isinstance(variables["bitrix_closed_at"], datetime) and variables["bitrix_closed_at"].tzinfo is not None


def test_completed_without_the_expected_answer_counts_as_no(client: Bitrix24Client, portal: PortalServer) -> None:
    record = created(client, make_task(properties=QUESTION))
    finish(portal, record)
    outcome = tracker_for(client).check(record)
    assert isinstance(outcome, Done) and outcome.variables["Activity_Approve"] == "no"
    assert outcome.variables["bitrix_result"] == ""


def test_no_question_no_answer_variable(client: Bitrix24Client, portal: PortalServer) -> None:
    record = created(client, make_task())
    finish(portal, record, result="first")
    outcome = tracker_for(client).check(record)
    assert isinstance(outcome, Done) and "Activity_Approve" not in outcome.variables


def test_answer_values_are_cached_and_read_again_for_an_unknown_id(
    client: Bitrix24Client, portal: PortalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (created(client, make_task(f"c-{n}", QUESTION)) for n in (1, 2, 3))
    tracker = tracker_for(client)
    reads = []
    read = client.user_fields
    monkeypatch.setattr(client, "user_fields", lambda: reads.append(1) or read())
    finish(portal, first, answer="ok")
    finish(portal, second, answer="no")
    assert tracker.check(first).variables["Activity_Approve"] == "ok"
    assert tracker.check(second).variables["Activity_Approve"] == "no"
    assert len(reads) == 1  # cached
    later = {"ID": "99", "SORT": "300", "VALUE": "Later", "DEF": "N", "XML_ID": "later"}
    portal.portal.user_fields["UF_RESULT_ANSWER"]["LIST"].append(later)  # an admin adds a value meanwhile
    person(portal, "tasks.task.update", {"taskId": int(third.item.id), "fields": {"UF_RESULT_ANSWER": "99"}})
    person(portal, "tasks.task.complete", {"taskId": int(third.item.id)})
    assert tracker.check(third).variables["Activity_Approve"] == "no"  # neither ok nor no
    assert len(reads) == 2 and tracker.answer_xml_id("99") == "later"  # read again for the unknown value


def test_awaiting_control_counts_only_when_configured(portal: PortalServer) -> None:
    strict, lenient = client_for(portal), client_for(portal, complete_on_awaiting_control=True)
    record = created(strict, make_task(properties={"RESPONSIBLE_ID": str(PERSON)}))
    rest(portal.webhook_url, "tasks.task.update", {"taskId": int(record.item.id), "fields": {"TASK_CONTROL": "Y"}})
    person(portal, "tasks.task.complete", {"taskId": int(record.item.id)})
    assert tracker_for(strict).check(record) == StillOpen(note="status 4 (awaiting control)")
    outcome = tracker_for(lenient).check(record)
    assert isinstance(outcome, Done) and outcome.variables["bitrix_task_status"] == 4
    strict.close()
    lenient.close()


def test_a_deleted_task_is_the_bpmn_error_or_a_failure(client: Bitrix24Client, portal: PortalServer) -> None:
    record = created(client, make_task())
    rest(portal.webhook_url, "tasks.task.delete", {"taskId": int(record.item.id)}).raise_for_status()
    outcome = tracker_for(client).track(record)
    assert isinstance(outcome, BpmnErrorOutcome)
    assert outcome.code == "BITRIX_TASK_DELETED" and outcome.variables == {"bitrix_task_id": int(record.item.id)}
    as_failure = client_for(portal, deleted_as_failure=True, deleted_error_code="GONE")
    failed = tracker_for(as_failure).track(record)
    assert isinstance(failed, Failed) and "deleted" in failed.reason and failed.retries == 0
    as_failure.close()


def test_action_not_allowed_on_a_task_that_is_still_there_is_not_a_deletion(client, portal) -> None:
    """The portal answers "Action not allowed" for a missing task and a missing right alike: only a
    task that tasks.task.list no longer lists is deleted; anything else is a failed check."""
    record = created(client, make_task())
    inject(portal, status=400, count=1, path_contains="tasks.task.get",
           body={"error": "ERROR_CORE", "error_description": "TASKS_ERROR_EXCEPTION_#8; Action not allowed"})
    with pytest.raises(CheckFailed, match="still there"):
        tracker_for(client).track(record)


def test_the_webhook_token_is_in_no_error_and_no_log_line(client: Bitrix24Client, portal: PortalServer) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG",
                      filter=lambda record: not record["name"].startswith("exchanger_sandbox"))  # the fake's own log
    try:
        record = created(client, make_task(properties=QUESTION))
        inject(portal, status=502, count=3, path_contains="tasks.task.get")
        with pytest.raises(TransientError) as caught:
            tracker_for(client).check(record)
        inject(portal, status=None, delay_s=1.0, count=3, path_contains="tasks.task.get")  # timeouts
        with pytest.raises(TransientError) as timed_out:
            tracker_for(client).check(record)
        rest(portal.webhook_url, "tasks.task.delete", {"taskId": int(record.item.id)})
        tracker_for(client).track(record)
    finally:
        logger.remove(sink)
    for exc in (caught.value, timed_out.value):
        assert TOKEN not in str(exc) and TOKEN not in repr(exc) and exc.__cause__ is None
    assert lines and not [line for line in lines if TOKEN in line]
