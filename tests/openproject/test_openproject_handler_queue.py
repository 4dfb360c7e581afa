"""OpenProject at the queue boundary: a task into ``openproject.queue`` through the real broker, the
task-creator's service running the handler and tracker, the response out of ``camunda.responses.queue``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_openproject_handler import CONTEXT, op_task, set_status

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.consumers.openproject.handler import OpenProjectTaskHandler
from exchanger.consumers.openproject.tracker import OpenProjectTracker
from exchanger.contracts import ResponseMessage, ResponseStatus, TaskMessage
from exchanger.creator.loader import Components, LoadedHandler, LoadedTracker
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.variables import from_typed_map

CHECK_INTERVAL_S = 0.3  # the tracker re-reads an open work package this often here


@pytest.fixture
def service(rabbit_settings, topology, op_settings, make_client) -> Iterator[CreatorService]:
    settings = op_settings.model_copy(update={"check_interval_s": CHECK_INTERVAL_S})
    handler = OpenProjectTaskHandler(CONTEXT, settings=settings, client=make_client(settings))
    tracker = OpenProjectTracker(CONTEXT, settings=settings, client=make_client(settings))
    components = Components(
        handlers={CONTEXT.queue: LoadedHandler(CONTEXT.queue, "openproject", handler, CONTEXT.sent_queue)},
        trackers={CONTEXT.sent_queue: LoadedTracker(CONTEXT.sent_queue, "openproject", tracker,
                                                    topology.settings.responses_queue)},
    )
    running = CreatorService(components, rabbit=rabbit_settings, topology=topology,
                             settings=CreatorSettings(drain_s=5, health_port=0)).start()
    assert running.wait_ready(10), running.readiness()
    yield running
    running.stop()


def publish(rabbit_settings, topology, task: TaskMessage) -> None:
    """As camunda-worker does: to the tasks exchange with routing key ``<system>.<topic>``."""
    with Publisher(rabbit_settings, topology, name="test-worker") as publisher:
        publisher.publish_contract(task, topology.settings.tasks_exchange, f"{task.system}.{task.topic_name}",
                                   correlation_id=task.task_id)


def take(rabbit_settings, queue: str, timeout_s: float = 10.0) -> bytes | None:
    connection = connect(rabbit_settings, name="test-reader", attempts=3)
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return body
            time.sleep(0.05)
        return None
    finally:
        connection.close()


def wait_for_work_package(op, task_id: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with op.state.lock:
            found = [wp.id for wp in op.state.work_packages.values() if wp.custom_values.get("customField1") == task_id]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no work package for {task_id}")


def test_closed_work_package_completes_the_task_with_its_variables(service, rabbit_settings, topology, op, api):
    responses = topology.settings.responses_queue
    publish(rabbit_settings, topology, op_task("task-1"))
    wp_id = wait_for_work_package(op, "task-1")
    assert take(rabbit_settings, responses, timeout_s=3 * CHECK_INTERVAL_S) is None  # open: tracked
    set_status(op, api, wp_id, 5, percentageDone=100)
    response = ResponseMessage.from_bytes(take(rabbit_settings, responses) or b"")
    assert response.status == ResponseStatus.COMPLETE
    assert (response.task_id, response.topic_name, response.item.id) == ("task-1", "op_create_task", str(wp_id))
    assert from_typed_map(response.variables) == {
        "op_work_package_id": wp_id, "op_status": "Closed", "op_url": f"{op.url}/work_packages/{wp_id}",
        "op_percentage_done": 100,
    }


def test_deleted_work_package_sends_a_bpmn_error(service, rabbit_settings, topology, op, api):
    publish(rabbit_settings, topology, op_task("task-2"))
    wp_id = wait_for_work_package(op, "task-2")
    api.delete(f"{op.url}/api/v3/work_packages/{wp_id}").raise_for_status()
    response = ResponseMessage.from_bytes(take(rabbit_settings, topology.settings.responses_queue) or b"")
    assert response.status == ResponseStatus.BPMN_ERROR
    assert response.error_code == "OP_WORK_PACKAGE_DELETED"
