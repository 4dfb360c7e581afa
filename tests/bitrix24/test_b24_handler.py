"""Bitrix24TaskHandler against the fake portal over real HTTP: fields, precedence, checklist, links,
idempotent redelivery, the start check, the update topic and a burst under the rate limit."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from b24_helpers import TOKEN, client_for, inject, rest

from exchanger.contracts import BpmnMetadata, ExternalItem, TaskMessage
from exchanger.creator.base import BpmnErrorOutcome, Done, SystemContext
from exchanger.creator.loader import load_components
from exchanger.creator.routing_config import CreatorRouting
from exchanger.creator.settings import CreatorSettings
from exchanger.errors import ConfigError, Incident, TransientError, Unreachable
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.handler import Bitrix24TaskHandler
from exchanger.systems.bitrix24.tracker import Bitrix24Tracker
from exchanger.variables import to_typed_map
from exchanger_sandbox.bitrix24.server import PortalServer, start

CONTEXT = SystemContext(system="bitrix24", queue="bitrix24.queue", sent_queue="bitrix24.sent.queue")


def make_task(
    task_id: str = "ct-1",
    properties: dict[str, str] | None = None,
    variables: dict[str, Any] | None = None,
    *,
    topic: str = "bitrix_create_task",
    activity_id: str = "Activity_Approve",
    process_instance_id: str = "pi-1",
    documentation: str = "",
) -> TaskMessage:
    """A task as camunda-worker publishes it for a Bitrix24 activity."""
    metadata = BpmnMetadata(activity_name="Approve the onboarding", documentation=documentation,
                            extension_properties=properties or {})
    return TaskMessage(task_id=task_id, topic_name=topic, system="bitrix24", worker_id="w1",
                       process_instance_id=process_instance_id, activity_id=activity_id,
                       variables=to_typed_map(variables or {}), bpmn_metadata=metadata)


def handler_for(client: Bitrix24Client) -> Bitrix24TaskHandler:
    return Bitrix24TaskHandler(CONTEXT, settings=client.settings, client=client)


def stored(portal: PortalServer, item: ExternalItem) -> dict[str, Any]:
    """The task as the portal keeps it (upper-case fields)."""
    return portal.portal.tasks[int(item.id)]


@pytest.fixture
def handler(client: Bitrix24Client) -> Bitrix24TaskHandler:
    return handler_for(client)


def test_properties_and_variables_with_their_precedence(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    properties = {
        "TITLE": "Approve ${employeeName}",
        "RESPONSIBLE_ID": "3",  # the property wins over the variable
        "PRIORITY": "high",
        "GROUP_ID": "7",
        "AUDITORS": "2, 4",
        "ACCOMPLICES": "${helpers}",
        "TAGS": "onboarding,hr",
        "UF_CRM_TASK": "D_10",
        "descriptionVariables": "employeeName,department",
    }
    variables = {"employeeName": "Ada", "department": "R&D", "assigneeId": 2, "startedBy": "4", "helpers": [2, 3]}
    task = make_task(properties=properties, variables=variables, documentation="Check ${employeeName}'s papers.")
    item = handler.process_message(task)
    assert isinstance(item, ExternalItem) and item.system == "bitrix24"
    assert item.url.endswith(f"/tasks/task/view/{item.id}/") and TOKEN not in item.url
    fields = stored(portal, item)
    assert fields["TITLE"] == "Approve Ada"
    assert fields["DESCRIPTION"] == "Check Ada's papers.\n\nemployeeName: Ada\ndepartment: R&D"
    people = (fields["RESPONSIBLE_ID"], fields["CREATED_BY"], fields["PRIORITY"], fields["GROUP_ID"])
    assert people == ("3", "4", "2", "7")
    assert (fields["AUDITORS"], fields["ACCOMPLICES"], fields["TAGS"]) == (["2", "4"], ["2", "3"], ["onboarding", "hr"])
    assert fields["UF_CRM_TASK"] == ["D_10"]
    assert fields["UF_CAMUNDA_ID_EXTERNAL_TASK"] == "ct-1"
    assert fields["XML_ID"] == "pi-1:Activity_Approve"
    assert fields.get("UF_RESULT_EXPECTED") is None
    assert item.data == {"activity_id": "Activity_Approve", "result_expected": False, "xml_id": "pi-1:Activity_Approve"}


def test_defaults_variables_and_settings(portal: PortalServer) -> None:
    client = client_for(portal, default_responsible_id=4, default_created_by=2)
    handler = handler_for(client)
    plain = stored(portal, handler.process_message(make_task("d-1", variables={"startedBy": "demo"})))
    assert (plain["TITLE"], plain["RESPONSIBLE_ID"], plain["CREATED_BY"]) == ("Approve the onboarding", "4", "2")
    from_variable = stored(portal, handler.process_message(make_task("d-2", variables={"responsibleId": "3"})))
    assert from_variable["RESPONSIBLE_ID"] == "3"
    with pytest.raises(Incident, match="RESPONSIBLE_ID"):
        handler.process_message(make_task("d-3", {"assigneeId": "anna"}))
    client.close()


def test_a_yes_no_question_sets_the_answer_fields(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    properties = {"resultExpected": "true", "resultQuestion": "Hire ${employeeName}?"}
    item = handler.process_message(make_task(properties=properties, variables={"employeeName": "Ada"}))
    fields = stored(portal, item)
    assert (fields["UF_RESULT_EXPECTED"], fields["UF_RESULT_QUESTION"]) == ("1", "Hire Ada?")
    assert item.data["result_expected"] is True
    untitled = handler.process_message(make_task("q-2", {"resultExpected": "${ask}"}, {"ask": True}))
    assert stored(portal, untitled)["UF_RESULT_QUESTION"] == "Approve the onboarding"  # default: the title


def test_checklist_groups_and_items(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    checklist = ["Sign the contract", {"title": "IT for ${employeeName}", "items": ["Laptop", "Accounts"]}]
    item = handler.process_message(make_task(properties={"checklist": json.dumps(checklist)},
                                             variables={"employeeName": "Ada"}))
    rows = [row for row in portal.portal.checklist.values() if row["TASK_ID"] == item.id]
    roots = {row["TITLE"]: row["ID"] for row in rows if row["PARENT_ID"] == 0}
    assert set(roots) == {"Checklist", "IT for Ada"}
    children = {(row["PARENT_ID"], row["TITLE"]) for row in rows if row["PARENT_ID"] != 0}
    assert children == {(roots["Checklist"], "Sign the contract"), (roots["IT for Ada"], "Laptop"),
                        (roots["IT for Ada"], "Accounts")}
    with pytest.raises(Incident, match="checklist"):
        handler.process_message(make_task("bad", {"checklist": "{not json"}))


@pytest.mark.parametrize(
    ("properties", "variables", "expected"),
    [
        ({}, {"deadline": datetime(2026, 12, 31, 18, 0, tzinfo=UTC)}, "2026-12-31T21:00:00+03:00"),  # Camunda Date
        ({}, {"deadline": "2026-12-31T18:00:00.000+0000"}, "2026-12-31T21:00:00+03:00"),  # Date format as text
        ({}, {"deadline": "2026-12-31"}, "2026-12-31T03:00:00+03:00"),  # an ISO date: midnight UTC
        ({"DEADLINE": "${due}"}, {"due": "2026-06-01T10:00:00+03:00", "deadline": "2030-01-01"},
         "2026-06-01T10:00:00+03:00"),  # the property wins
    ],
)
def test_deadline_formats(handler: Bitrix24TaskHandler, portal: PortalServer, properties: dict[str, str],
                          variables: dict[str, Any], expected: str) -> None:
    assert stored(portal, handler.process_message(make_task(properties=properties, variables=variables)))[
        "DEADLINE"] == expected


def test_deadline_after_a_duration_and_a_bad_deadline(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    item = handler.process_message(make_task(properties={"deadlineAfter": "P3D"}))
    deadline = datetime.fromisoformat(stored(portal, item)["DEADLINE"])
    assert abs(deadline - (datetime.now(UTC) + timedelta(days=3))) < timedelta(seconds=10)
    with pytest.raises(Incident, match="deadline"):
        handler.process_message(make_task("bad", variables={"deadline": "next friday"}))
    with pytest.raises(Incident, match="deadlineAfter"):
        handler.process_message(make_task("bad2", {"deadlineAfter": "3 days"}))


def test_redelivery_finds_the_task_and_finishes_its_checklist(handler: Bitrix24TaskHandler,
                                                                portal: PortalServer) -> None:
    task = make_task(properties={"checklist": json.dumps([{"title": "Docs", "items": ["A", "B"]}, "C"])})
    inject(portal, status=500, count=1, path_contains="/batch")  # the task exists, its second checklist did not
    with pytest.raises(TransientError):
        handler.process_message(task)
    first = handler.process_message(task)  # redelivered
    again = handler.process_message(task)
    assert first.id == again.id
    stats = portal.portal.stats()
    assert stats["by_external_id"] == {"ct-1": 1} and stats["duplicates"] == {}
    titles = sorted(row["TITLE"] for row in portal.portal.checklist.values())
    assert titles == ["A", "B", "C", "Checklist", "Docs"]  # each row once
    assert handler.get_stats()["found_existing"] == 2


def test_a_timed_out_add_then_redelivery_leaves_one_task(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    inject(portal, status=None, delay_s=1.0, count=1, path_contains="tasks.task.add")  # past the 0.5 s read timeout
    task = make_task("slow")
    with pytest.raises(Unreachable) as caught:
        handler.process_message(task)
    assert TOKEN not in str(caught.value)
    time.sleep(0.7)  # the portal finishes the add the handler gave up on
    item = handler.process_message(task)
    assert isinstance(item, ExternalItem)
    assert portal.portal.stats()["by_external_id"] == {"slow": 1}


def test_dependencies_on_predecessor_activities(handler: Bitrix24TaskHandler, portal: PortalServer) -> None:
    first = handler.process_message(make_task("a", activity_id="Activity_A"))
    other_instance = handler.process_message(make_task("x", activity_id="Activity_B", process_instance_id="pi-2"))
    second = handler.process_message(make_task("b", activity_id="Activity_B"))
    third = handler.process_message(make_task("c", {"dependsOn": "Activity_A, Activity_B, Activity_Missing"},
                                              activity_id="Activity_C"))
    assert portal.portal.links == {(int(first.id), int(third.id)): 2, (int(second.id), int(third.id)): 2}
    assert int(other_instance.id) not in {source for source, _ in portal.portal.links}
    handler.process_message(make_task("c", {"dependsOn": "Activity_A, Activity_B"}, activity_id="Activity_C"))
    assert len(portal.portal.links) == 2  # redelivered: existing links kept, none added


def test_unsupported_topic_is_an_incident_naming_the_supported_ones(handler: Bitrix24TaskHandler,
                                                                     portal: PortalServer) -> None:
    with pytest.raises(Incident) as caught:
        handler.process_message(make_task(topic="bitrix_send_message"))
    assert "bitrix_send_message" in str(caught.value) and "bitrix_create_task, bitrix_update_task" in str(caught.value)
    assert portal.portal.stats()["tasks"] == 0


def test_missing_user_fields_stop_the_start_with_instructions() -> None:
    server = start(0, token=TOKEN, rate_per_s=1000, burst=1000, with_user_fields=False)
    client = client_for(server)
    try:
        with pytest.raises(ConfigError) as caught:
            handler_for(client)
    finally:
        client.close()
        server.stop()
    message = str(caught.value)
    for name in ("UF_CAMUNDA_ID_EXTERNAL_TASK", "UF_RESULT_ANSWER", "UF_RESULT_EXPECTED", "UF_RESULT_QUESTION"):
        assert f"task user field {name} is missing" in message
    assert "task.item.userfield.add" in message and '"XML_ID": "ok"' in message and TOKEN not in message


def test_an_unreachable_portal_at_start_is_checked_again_before_the_first_task(client: Bitrix24Client,
                                                                                portal: PortalServer) -> None:
    inject(portal, status=502, count=3, path_contains="task.item.userfield.getlist")  # every attempt of the check
    handler = handler_for(client)  # no crash
    inject(portal, status=502, count=3, path_contains="task.item.userfield.getlist")
    with pytest.raises(TransientError):  # not ready yet: the task is retried later
        handler.process_message(make_task("early"))
    assert portal.portal.stats()["tasks"] == 0
    assert isinstance(handler.process_message(make_task("early")), ExternalItem)


def test_update_topic_changes_the_task_of_an_earlier_activity(handler: Bitrix24TaskHandler,
                                                              portal: PortalServer) -> None:
    created = handler.process_message(make_task("a", activity_id="Activity_A"))
    update = make_task("u", {"taskActivity": "Activity_A", "TITLE": "Renamed for ${who}", "PRIORITY": "0"},
                       {"who": "Ada", "assigneeId": 4}, topic="bitrix_update_task", activity_id="Activity_U")
    outcome = handler.process_message(update)
    assert isinstance(outcome, Done)
    assert outcome.variables == {"bitrix_task_id": int(created.id), "bitrix_task_url": created.url,
                                 "bitrix_task_status": 2}
    fields = stored(portal, created)
    assert (fields["TITLE"], fields["PRIORITY"]) == ("Renamed for Ada", "0")
    assert fields["RESPONSIBLE_ID"] == "1"  # a variable alone changes nothing on update
    by_id = make_task("u2", {"TASK_ID": "${bitrix_task_id}", "DEADLINE": "2026-12-31T18:00:00+03:00"},
                      {"bitrix_task_id": int(created.id)}, topic="bitrix_update_task")
    assert isinstance(handler.process_message(by_id), Done)
    assert stored(portal, created)["DEADLINE"] == "2026-12-31T18:00:00+03:00"
    rest(portal.webhook_url, "tasks.task.delete", {"taskId": int(created.id)})
    gone = handler.process_message(by_id)
    assert isinstance(gone, BpmnErrorOutcome) and gone.code == "BITRIX_TASK_DELETED"
    with pytest.raises(Incident, match="TASK_ID or taskActivity"):
        handler.process_message(make_task("u3", topic="bitrix_update_task"))


def test_a_burst_of_200_tasks_never_hits_the_portal_limit() -> None:
    """The real 2 req/s, burst 50, scaled up 100 times in both the fake and the client."""
    server = start(0, token=TOKEN, rate_per_s=200, burst=50)
    client = client_for(server, rate_per_s=200, burst=50)
    handler = handler_for(client)
    try:
        with ThreadPoolExecutor(16) as pool:
            items = list(pool.map(lambda n: handler.process_message(make_task(f"burst-{n}")), range(200)))
        stats = server.portal.stats()
    finally:
        client.close()
        server.stop()
    assert len({item.id for item in items}) == 200
    assert stats["tasks"] == 200 and stats["duplicates"] == {}
    assert stats["rejected"] == 0  # never a 503 QUERY_LIMIT_EXCEEDED


def test_the_creator_builds_both_from_the_default_routing_sharing_one_client(portal: PortalServer,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITRIX_WEBHOOK_URL", portal.webhook_url)
    settings = CreatorSettings(queues="bitrix24.queue,bitrix24.sent.queue")
    components = load_components(settings, CreatorRouting.from_settings(settings), "camunda.responses.queue")
    handler = components.handlers["bitrix24.queue"].handler
    tracker = components.trackers["bitrix24.sent.queue"].tracker
    assert isinstance(handler, Bitrix24TaskHandler) and isinstance(tracker, Bitrix24Tracker)
    assert handler.client is tracker.client  # one rate limiter: the portal meters the webhook as a whole
    assert tracker.check_interval_s == 300.0 and tracker.batch_size == 1000 and tracker.sweep_interval_s == 10.0
    components.cleanup()
