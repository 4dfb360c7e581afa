"""The Bitrix24 handler and tracker in the task-creator at the queue boundary (real broker, fake portal).

A task goes in as camunda-worker publishes it; the person works the task on the portal; what comes out
in ``camunda.responses.queue`` is what camunda-worker reports to Camunda.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from b24_helpers import client_for, rest
from test_b24_handler import CONTEXT, handler_for, make_task
from test_b24_tracker import PERSON, QUESTION, finish

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.consumers.bitrix24.client import Bitrix24Client
from exchanger.consumers.bitrix24.tracker import Bitrix24Tracker
from exchanger.contracts import SCHEMA_HEADER, ExternalItem, ResponseMessage, ResponseStatus, SentRecord, TaskMessage
from exchanger.creator.loader import Components, LoadedHandler, LoadedTracker
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.sandbox.bitrix24.server import PortalServer
from exchanger.settings import RabbitMQSettings
from exchanger.variables import from_typed_map


@pytest.fixture
def creator(portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[Bitrix24Client]:
    """A task-creator serving bitrix24.queue and bitrix24.sent.queue, checking every 0.3 s."""
    client = client_for(portal, check_interval_s=0.3)
    components = Components()
    components.handlers["bitrix24.queue"] = LoadedHandler("bitrix24.queue", "bitrix24", handler_for(client),
                                                          "bitrix24.sent.queue")
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    components.trackers["bitrix24.sent.queue"] = LoadedTracker("bitrix24.sent.queue", "bitrix24", tracker,
                                                               topology.settings.responses_queue)
    service = CreatorService(components, rabbit=rabbit_settings, topology=topology,
                             settings=CreatorSettings(drain_s=5, health_port=0))
    service.start()
    assert service.wait_ready(10), service.readiness()
    yield client
    service.stop()


def publish(rabbit_settings: RabbitMQSettings, topology: Topology, task: TaskMessage) -> None:
    """As camunda-worker does: to the tasks exchange with routing key ``<system>.<topic>``."""
    with Publisher(rabbit_settings, topology, name="test-worker") as publisher:
        publisher.publish(topology.settings.tasks_exchange, f"bitrix24.{task.topic_name}", task.to_bytes(),
                          headers={SCHEMA_HEADER: TaskMessage.SCHEMA}, correlation_id=task.task_id)


def next_response(rabbit_settings: RabbitMQSettings, topology: Topology, timeout_s: float = 15) -> ResponseMessage:
    connection = connect(rabbit_settings, name="test-reader", attempts=3)
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            method, _, body = channel.basic_get(topology.settings.responses_queue, auto_ack=True)
            if method is not None:
                return ResponseMessage.from_bytes(body)
            time.sleep(0.05)
    finally:
        connection.close()
    pytest.fail(f"no response within {timeout_s}s")


def created_task(portal: PortalServer, task: TaskMessage, timeout_s: float = 10) -> SentRecord:
    """The portal's task for ``task``, once the creator made it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with portal.portal.lock:
            found = [t for t in portal.portal.tasks.values() if t.get("UF_CAMUNDA_ID_EXTERNAL_TASK") == task.task_id]
        if found:
            return SentRecord(task=task, item=ExternalItem(system="bitrix24", id=found[0]["ID"]))
        time.sleep(0.05)
    pytest.fail(f"no Bitrix24 task for {task.task_id} within {timeout_s}s")


def test_a_task_answered_ok_completes_with_the_answer(creator, portal, rabbit_settings, topology) -> None:
    task = make_task("e2e-1", QUESTION, {"employeeName": "Ada"})
    publish(rabbit_settings, topology, task)
    record = created_task(portal, task)
    time.sleep(0.5)  # at least one check sees it open
    finish(portal, record, answer="ok", result="Welcome aboard")
    response = next_response(rabbit_settings, topology)
    assert (response.task_id, response.status) == ("e2e-1", ResponseStatus.COMPLETE)
    variables = from_typed_map(response.variables)
    assert variables["Activity_Approve"] == "ok" and variables["bitrix_result"] == "Welcome aboard"
    assert (variables["bitrix_task_id"], variables["bitrix_closed_by"]) == (int(record.item.id), PERSON)
    assert response.item is not None and response.item.id == record.item.id
    assert portal.portal.stats()["duplicates"] == {}


def test_a_deleted_task_sends_the_bpmn_error(creator, portal, rabbit_settings, topology) -> None:
    task = make_task("e2e-2")
    publish(rabbit_settings, topology, task)
    record = created_task(portal, task)
    rest(portal.webhook_url, "tasks.task.delete", {"taskId": int(record.item.id)}).raise_for_status()
    response = next_response(rabbit_settings, topology)
    assert (response.status, response.error_code) == (ResponseStatus.BPMN_ERROR, "BITRIX_TASK_DELETED")
