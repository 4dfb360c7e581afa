"""1C at the queue boundary: a task into ``1c.queue`` through the real broker, the task-creator's service
running the handler and tracker, the response (and parked copy) out of the broker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from broker_queues import serve_system, wait_for
from test_onec_handler import CONTEXT, EXPENSE, onec_task, resource

from exchanger.contracts import ResponseStatus
from exchanger.creator.service import CreatorService
from exchanger.systems.onec.handler import OneCTaskHandler
from exchanger.systems.onec.tracker import OneCTracker
from exchanger.variables import from_typed_map
from exchanger_sandbox.onec.contract import CONTRACT
from exchanger_sandbox.onec.state import PAYMENT_REQUEST

CHECK_INTERVAL_S = 0.3  # the tracker re-reads an open document this often here


@pytest.fixture
def service(rabbit_settings, topology, onec_settings, make_client) -> Iterator[CreatorService]:
    settings = onec_settings.model_copy(update={"check_interval_s": CHECK_INTERVAL_S})
    handler = OneCTaskHandler(CONTEXT, settings=settings, client=make_client(settings))
    tracker = OneCTracker(CONTEXT, settings=settings, client=make_client(settings))
    with serve_system(rabbit_settings, topology, handler, tracker) as running:
        yield running


def wait_for_document(onec, task_id: str) -> str:
    return wait_for(lambda: CONTRACT.items(onec, task_id), what=f"the document of {task_id}")[0]


def test_posted_document_completes_the_task_with_its_variables(service, queues, topology, onec, odata):
    responses = topology.settings.responses_queue
    queues.publish_task(onec_task("task-1"))
    ref_key = wait_for_document(onec, "task-1")
    assert queues.poll(responses, timeout_s=3 * CHECK_INTERVAL_S) is None  # not posted: tracked
    odata("POST", resource(PAYMENT_REQUEST, ref_key, "Post")).raise_for_status()  # a person posts it
    (response,) = queues.responses()
    assert response.status == ResponseStatus.COMPLETE
    assert (response.task_id, response.topic_name, response.item.id) == ("task-1", "1c_create_document", ref_key)
    assert from_typed_map(response.variables) == {"onec_ref_key": ref_key, "onec_number": "000000001",
                                                  "onec_posted": True}


def test_a_refused_posting_becomes_an_incident_with_1cs_message(service, queues, topology, admin):
    admin("posting_failure", message="Период закрыт для изменений")
    queues.publish_task(onec_task("task-2", props={**EXPENSE, "post": "true"}))
    (response,) = queues.responses()
    assert (response.status, response.retries) == (ResponseStatus.FAILURE, 0)
    assert "Период закрыт для изменений" in (response.error_message or "")
    (parked,) = queues.parked()
    assert parked.task_id == "task-2" and "Период закрыт" in parked.reason
