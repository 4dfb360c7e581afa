"""The Bitrix24 handler and tracker in the task-creator at the queue boundary (real broker, fake portal).

A task goes in as camunda-worker publishes it; the person works the task on the portal; what comes out
in ``camunda.responses.queue`` is what camunda-worker reports to Camunda.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from b24_helpers import client_for, inject
from broker_queues import serve_system, wait_for
from test_b24_handler import CONTEXT, handler_for, make_task
from test_b24_tracker import PERSON, QUESTION, finish

from exchanger.amqp.topology import Topology
from exchanger.contracts import ExternalItem, ResponseStatus, SentRecord, TaskMessage
from exchanger.settings import RabbitMQSettings
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.tracker import Bitrix24Tracker
from exchanger.variables import from_typed_map
from exchanger_sandbox.bitrix24.contract import CONTRACT
from exchanger_sandbox.bitrix24.server import PortalServer


@pytest.fixture
def creator(portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[Bitrix24Client]:
    """A task-creator serving bitrix24.queue and bitrix24.sent.queue, checking every 0.3 s."""
    client = client_for(portal, check_interval_s=0.3)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    with serve_system(rabbit_settings, topology, handler_for(client), tracker):
        yield client


def created_task(portal: PortalServer, task: TaskMessage, timeout_s: float = 10) -> SentRecord:
    """The portal's task for ``task``, once the creator made it."""
    found = wait_for(lambda: CONTRACT.items(portal, task.task_id), timeout_s, f"the Bitrix24 task of {task.task_id}")
    return SentRecord(task=task, item=ExternalItem(system="bitrix24", id=found[0]))


def test_a_task_answered_ok_completes_with_the_answer(creator, portal, queues) -> None:
    task = make_task("e2e-1", QUESTION, {"employeeName": "Ada"})
    queues.publish_task(task)
    record = created_task(portal, task)
    time.sleep(0.5)  # at least one check sees it open
    finish(portal, record, answer="ok", result="Welcome aboard")
    (response,) = queues.responses(timeout_s=15)
    assert (response.task_id, response.status) == ("e2e-1", ResponseStatus.COMPLETE)
    variables = from_typed_map(response.variables)
    assert variables["Activity_Approve"] == "ok" and variables["bitrix_result"] == "Welcome aboard"
    assert (variables["bitrix_task_id"], variables["bitrix_closed_by"]) == (int(record.item.id), PERSON)
    assert response.item is not None and response.item.id == record.item.id
    assert portal.portal.stats()["duplicates"] == {}


def test_action_not_allowed_while_tracking_ends_in_an_incident_not_the_deleted_path(portal, rabbit_settings,
                                                                                   topology, queues) -> None:
    """The task is still open on the portal; tasks.task.get answers ERROR_CORE "Action not allowed"
    (a right taken away, a portal hiccup). That is a failed check, never "deleted": after
    CREATOR_MAX_CHECK_ERRORS an incident, with the record parked."""
    client = client_for(portal, check_interval_s=0.3)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    with serve_system(rabbit_settings, topology, handler_for(client), tracker, max_check_errors=3):
        task = make_task("e2e-denied")
        inject(portal, status=400, count=1000, path_contains="tasks.task.get",
               body={"error": "ERROR_CORE", "error_description": "TASKS_ERROR_EXCEPTION_#8; Action not allowed"})
        queues.publish_task(task)
        created_task(portal, task)
        (response,) = queues.responses(timeout_s=20)
        (parked,) = queues.parked(timeout_s=5)
    requests.delete(portal.url + "/_admin/faults", timeout=5)
    assert (response.status, response.retries) == (ResponseStatus.FAILURE, 0)
    assert "failed 3 times in a row" in response.error_message and "still there" in response.error_message
    assert parked.source_queue == "bitrix24.sent.queue" and parked.error_type == "CheckFailed"


def test_a_date_the_tracker_cannot_parse_ends_in_an_incident_instead_of_looping(portal, rabbit_settings, topology,
                                                                               queues) -> None:
    client = client_for(portal, check_interval_s=0.3)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    with serve_system(rabbit_settings, topology, handler_for(client), tracker, max_check_errors=2):
        task = make_task("e2e-bad-date")
        queues.publish_task(task)
        record = created_task(portal, task)
        with portal.portal.lock:
            stored = portal.portal.tasks[int(record.item.id)]
            stored.update({"STATUS": "5", "CLOSED_DATE": "the day before yesterday"})
        (response,) = queues.responses(timeout_s=20)
    assert (response.status, response.retries) == (ResponseStatus.FAILURE, 0)
    assert "failed 2 times in a row" in response.error_message and "ValueError" in response.error_message


def test_a_sent_record_with_a_malformed_item_id_ends_in_an_incident(portal, rabbit_settings, topology,
                                                                    queues) -> None:
    """A record that passes the contract but names no Bitrix24 task the tracker can ask about."""
    client = client_for(portal, check_interval_s=0.3)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    record = SentRecord(task=make_task("e2e-bad-id"), item=ExternalItem(system="bitrix24", id="../../crm.deal.add"))
    with serve_system(rabbit_settings, topology, handler_for(client), tracker, max_check_errors=2):
        queues.publisher.publish("", "bitrix24.sent.queue", record.to_bytes(), correlation_id="e2e-bad-id")
        (response,) = queues.responses(timeout_s=20)
        (parked,) = queues.parked(timeout_s=5)
    assert (response.task_id, response.status, response.retries) == ("e2e-bad-id", ResponseStatus.FAILURE, 0)
    assert "failed 2 times in a row" in response.error_message and parked.source_queue == "bitrix24.sent.queue"
