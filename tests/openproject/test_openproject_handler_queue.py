"""OpenProject at the queue boundary: a task into ``openproject.queue`` through the real broker, the
task-creator's service running the handler and tracker, the response out of ``camunda.responses.queue``.
What every system must do (redelivery, lost answers, deletions, limits, 5xx, bad payloads) is in tests/contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from broker_queues import serve_system, wait_for
from test_openproject_handler import CONTEXT, op_task, set_status

from exchanger.contracts import ResponseStatus
from exchanger.creator.service import CreatorService
from exchanger.systems.openproject.handler import OpenProjectTaskHandler
from exchanger.systems.openproject.tracker import OpenProjectTracker
from exchanger.variables import from_typed_map
from exchanger_sandbox.openproject.contract import CONTRACT

CHECK_INTERVAL_S = 0.3  # the tracker re-reads an open work package this often here


@pytest.fixture
def service(rabbit_settings, topology, op_settings, make_client) -> Iterator[CreatorService]:
    settings = op_settings.model_copy(update={"check_interval_s": CHECK_INTERVAL_S})
    handler = OpenProjectTaskHandler(CONTEXT, settings=settings, client=make_client(settings))
    tracker = OpenProjectTracker(CONTEXT, settings=settings, client=make_client(settings))
    with serve_system(rabbit_settings, topology, handler, tracker) as running:
        yield running


def wait_for_work_package(op, task_id: str) -> int:
    return int(wait_for(lambda: CONTRACT.items(op, task_id), what=f"the work package of {task_id}")[0])


def test_closed_work_package_completes_the_task_with_its_variables(service, queues, topology, op, api):
    responses = topology.settings.responses_queue
    queues.publish_task(op_task("task-1"))
    wp_id = wait_for_work_package(op, "task-1")
    assert queues.poll(responses, timeout_s=3 * CHECK_INTERVAL_S) is None  # open: tracked
    set_status(op, api, wp_id, 5, percentageDone=100)
    (response,) = queues.responses()
    assert response.status == ResponseStatus.COMPLETE
    assert (response.task_id, response.topic_name, response.item.id) == ("task-1", "op_create_task", str(wp_id))
    assert from_typed_map(response.variables) == {
        "op_work_package_id": wp_id, "op_status": "Closed", "op_url": f"{op.url}/work_packages/{wp_id}",
        "op_percentage_done": 100,
    }

