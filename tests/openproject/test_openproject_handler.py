"""OpenProject handler and tracker against the fake over real HTTP: create, idempotency, faults, tracking."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.contracts import BpmnMetadata, SentRecord, TaskMessage
from exchanger.creator.base import BpmnErrorOutcome, CheckFailed, Done, StillOpen, SystemContext
from exchanger.errors import AuthError, ConfigError, Incident, NotFound, TransientError
from exchanger.systems.openproject.handler import OpenProjectTaskHandler
from exchanger.systems.openproject.tracker import OpenProjectTracker
from exchanger.variables import to_typed_map

CONTEXT = SystemContext(system="openproject", queue=system_queue("openproject"), sent_queue=sent_queue("openproject"))
CREATE_PATH = "/api/v3/projects/1/work_packages"  # POST into the default project; searches use /work_packages


def op_task(task_id: str = "task-1", props: dict[str, str] | None = None, variables: dict[str, Any] | None = None,
            topic: str = "op_create_task", **metadata: Any) -> TaskMessage:
    return TaskMessage(task_id=task_id, topic_name=topic, system="openproject", worker_id="w",
                       process_instance_id="pi-1", activity_id="Activity_Workplace",
                       variables=to_typed_map(variables or {}),
                       bpmn_metadata=BpmnMetadata(activity_name="Prepare the workplace",
                                                  extension_properties=props or {}, **metadata))


@pytest.fixture
def handler(op_settings, make_client) -> OpenProjectTaskHandler:
    return OpenProjectTaskHandler(CONTEXT, settings=op_settings, client=make_client(op_settings))


@pytest.fixture
def tracker(op_settings, make_client) -> OpenProjectTracker:
    return OpenProjectTracker(CONTEXT, settings=op_settings, client=make_client(op_settings))


def stats(op) -> dict:
    return requests.get(f"{op.url}/_admin/stats", timeout=5).json()


def set_status(op, api, wp_id: int, status_id: int, **changes: Any) -> None:
    """What a person does: PATCH the status (and e.g. percentageDone) with the current lockVersion."""
    url = f"{op.url}/api/v3/work_packages/{wp_id}"
    lock = api.get(url).json()["lockVersion"]
    status = {"status": {"href": f"/api/v3/statuses/{status_id}"}}
    api.patch(url, json={"lockVersion": lock, "_links": status, **changes}).raise_for_status()


def test_creates_a_work_package_with_every_property(handler, client):
    task = op_task(
        props={"project": "finance", "subject": "Prepare the workplace for ${employeeName}", "type": "Bug",
               "priority": "High", "assignee": "Anna Petrova", "dueDate": "2026-12-31",
               "descriptionVariables": "employeeName,department", "customField2": "${department}"},
        variables={"employeeName": "Ada", "department": "HR", "project": "exchanger"},
        documentation="Desk, laptop and badge for ${employeeName}.",
    )
    item = handler.process_message(task)
    assert item.system == "openproject" and item.url.endswith(f"/work_packages/{item.id}")
    wp = client.get_work_package(int(item.id))
    assert wp["subject"] == "Prepare the workplace for Ada"
    assert wp["_embedded"]["project"]["identifier"] == "finance"  # the property wins over the variable
    assert (wp["_embedded"]["type"]["name"], wp["_embedded"]["priority"]["name"]) == ("Bug", "High")
    assert wp["_embedded"]["assignee"]["login"] == "apetrova"
    assert wp["dueDate"] == "2026-12-31"
    assert wp["description"]["raw"] == "Desk, laptop and badge for Ada.\n\nemployeeName: Ada\ndepartment: HR"
    assert (wp["customField1"], wp["customField2"]) == ("task-1", "HR")
    assert handler.get_stats() == {"total_messages": 1, "created_items": 1}


def test_defaults_and_variable_fallbacks(handler, client):
    task = op_task(props={"dueAfter": "P3D"}, variables={"project": "finance", "assignee": "isidorov"})
    wp = client.get_work_package(int(handler.process_message(task).id))
    assert wp["subject"] == "Prepare the workplace"  # the activity name
    assert wp["_embedded"]["project"]["identifier"] == "finance"
    assert wp["_embedded"]["type"]["name"] == "Task"  # the project's default type
    assert wp["_embedded"]["assignee"]["login"] == "isidorov"
    assert wp["dueDate"] == (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    default = client.get_work_package(int(handler.process_message(op_task("task-2")).id))
    assert default["_embedded"]["project"]["identifier"] == "exchanger"  # OPENPROJECT_DEFAULT_PROJECT


def test_op_update_task_changes_the_work_package_the_property_or_variable_names(handler, client, op):
    wp_id = int(handler.process_message(op_task()).id)
    update = op_task("task-2", topic="op_update_task", variables={"op_work_package_id": wp_id, "who": "isidorov"},
                     props={"status": "In progress", "assignee": "${who}", "subject": "Renamed",
                            "dueDate": "2027-01-31"})
    outcome = handler.process_message(update)
    assert isinstance(outcome, Done) and outcome.variables["op_work_package_id"] == wp_id
    assert outcome.variables["op_status"] == "In progress"
    wp = client.get_work_package(wp_id)
    assert (wp["subject"], wp["dueDate"], wp["_embedded"]["assignee"]["login"]) == ("Renamed", "2027-01-31", "isidorov")
    assert handler.process_message(update).variables["op_status"] == "In progress"  # a redelivery does no harm
    assert stats(op)["work_packages"] == 1  # nothing created
    by_property = op_task("task-3", topic="op_update_task", props={"workPackageId": str(wp_id), "status": "Closed"})
    assert handler.process_message(by_property).variables["op_status"] == "Closed"


def test_op_update_task_of_a_deleted_work_package_is_the_bpmn_error(handler, client):
    wp_id = int(handler.process_message(op_task()).id)
    client.delete_work_package(wp_id)
    outcome = handler.process_message(op_task("task-2", topic="op_update_task", props={"workPackageId": str(wp_id)}))
    assert isinstance(outcome, BpmnErrorOutcome) and outcome.code == "OP_WORK_PACKAGE_DELETED"
    with pytest.raises(Incident, match="needs its work package"):
        handler.process_message(op_task("task-3", topic="op_update_task"))


def test_a_redelivered_task_finds_its_work_package_even_when_closed(handler, op, api):
    first = handler.process_message(op_task())
    assert handler.process_message(op_task()).id == first.id
    set_status(op, api, int(first.id), 5)
    assert handler.process_message(op_task()).id == first.id
    assert stats(op)["by_external_id"] == {"task-1": 1}
    assert handler.get_stats()["found_existing"] == 2


def test_a_create_that_times_out_is_not_repeated_on_redelivery(handler, op, fault, op_settings):
    fault(delay_s=1.5, path_contains=CREATE_PATH)  # longer than the 0.5 s read timeout; the fake creates anyway
    with pytest.raises(TransientError) as raised:
        handler.process_message(op_task())
    assert op_settings.api_key.get_secret_value() not in str(raised.value)
    deadline = time.monotonic() + 5
    while stats(op)["work_packages"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    item = handler.process_message(op_task())  # the redelivery, after the retry delay
    assert stats(op)["by_external_id"] == {"task-1": 1}
    assert handler.get_stats()["found_existing"] == 1 and item.id == "1"


def test_injected_503s_are_retried(handler, op, fault):
    fault(status=503, count=2)  # the search: retried by the client
    handler.process_message(op_task("task-1"))
    fault(status=503, count=1, path_contains=CREATE_PATH)  # the create: not retried blindly
    with pytest.raises(TransientError):
        handler.process_message(op_task("task-2"))
    handler.process_message(op_task("task-2"))  # redelivered: searched, then created
    assert stats(op)["by_external_id"] == {"task-1": 1, "task-2": 1}


def test_clear_incidents_for_what_no_retry_fixes(handler, op_settings, make_client):
    with pytest.raises(Incident, match="topic op_close_task is not supported .*supported: op_create_task"):
        handler.process_message(op_task(topic="op_close_task"))
    with pytest.raises(Incident, match="no project 'nowhere'"):
        handler.process_message(op_task(props={"project": "nowhere"}))
    with pytest.raises(Incident, match="dueDate 'tomorrow'"):
        handler.process_message(op_task(props={"dueDate": "tomorrow"}))
    with pytest.raises(Incident, match="dueAfter"):
        handler.process_message(op_task(props={"dueAfter": "3 days"}))
    with pytest.raises(NotFound, match="nobody"):
        handler.process_message(op_task(props={"assignee": "nobody"}))
    with pytest.raises(Incident, match="external-id field"):
        handler.process_message(op_task(props={"customField1": "x"}))
    no_default = op_settings.model_copy(update={"default_project": ""})
    bare = OpenProjectTaskHandler(CONTEXT, settings=no_default, client=make_client(no_default))
    with pytest.raises(Incident, match="OPENPROJECT_DEFAULT_PROJECT"):
        bare.process_message(op_task())


def test_the_external_id_field_is_checked_at_start_and_before_creating(op_settings, make_client):
    missing = op_settings.model_copy(update={"external_id_field": "customField9"})
    with pytest.raises(ConfigError, match="OPENPROJECT_EXTERNAL_ID_FIELD=customField9"):
        OpenProjectTaskHandler(CONTEXT, settings=missing, client=make_client(missing))
    elsewhere = missing.model_copy(update={"default_project": ""})
    handler = OpenProjectTaskHandler(CONTEXT, settings=elsewhere, client=make_client(elsewhere))
    with pytest.raises(Incident, match="OPENPROJECT_EXTERNAL_ID_FIELD=customField9: .*cannot search"):
        handler.process_message(op_task(props={"project": "finance"}))
    unknown = op_settings.model_copy(update={"default_project": "nowhere"})
    with pytest.raises(ConfigError, match="OPENPROJECT_DEFAULT_PROJECT=nowhere"):
        OpenProjectTaskHandler(CONTEXT, settings=unknown, client=make_client(unknown))


def test_an_unreachable_server_at_start_defers_the_check(op_settings, make_client):
    down = op_settings.model_copy(update={"base_url": "http://127.0.0.1:9", "attempts": 1})
    OpenProjectTaskHandler(CONTEXT, settings=down, client=make_client(down))  # no exception: checked later


def test_a_wrong_api_key_is_an_auth_error_without_the_key(op_settings, make_client):
    wrong = op_settings.model_copy(update={"api_key": SecretStr("opapi-wrong-secret-1234")})
    with pytest.raises(AuthError) as raised:
        OpenProjectTaskHandler(CONTEXT, settings=wrong, client=make_client(wrong))
    assert "opapi-wrong-secret-1234" not in str(raised.value)


def test_tracker_open_closed_and_deleted(handler, tracker, op, api, op_settings):
    item = handler.process_message(op_task())
    record = SentRecord(task=op_task(), item=item)
    assert tracker.track(record) == StillOpen("status New")
    set_status(op, api, int(item.id), 2)
    assert tracker.track(record) == StillOpen("status In progress")
    set_status(op, api, int(item.id), 5, percentageDone=100)
    assert tracker.track(record) == Done(variables={"op_work_package_id": int(item.id), "op_status": "Closed",
                                                    "op_url": item.url, "op_percentage_done": 100})
    api.delete(f"{op.url}/api/v3/work_packages/{item.id}").raise_for_status()
    outcome = tracker.track(record)
    assert isinstance(outcome, BpmnErrorOutcome) and outcome.code == "OP_WORK_PACKAGE_DELETED"
    assert tracker.check_interval_s == op_settings.check_interval_s
    assert tracker.get_stats() == {"checks": 4, "still_open": 2, "done": 1, "bpmn_errors": 1}


def test_a_404_for_a_work_package_that_is_still_listed_is_not_a_deletion(handler, tracker, fault):
    """A 404 from something in between (a proxy, a misrouted request) must not end the process on its error path."""
    item = handler.process_message(op_task())
    record = SentRecord(task=op_task(), item=item)
    fault(status=404, count=1, path_contains=f"/work_packages/{item.id}",
          body={"_type": "Error", "errorIdentifier": "urn:openproject-org:api:v3:errors:NotFound", "message": "gone?"})
    with pytest.raises(CheckFailed, match="still there"):
        tracker.track(record)
    assert tracker.track(record) == StillOpen("status New")
