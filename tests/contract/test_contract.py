"""The contract every tracked system passes, through the real task-creator on a real broker against the
system's fake over HTTP (tests/contract/conftest.py: which systems, how each case is started).

A system takes part by declaring a ``ContractFake`` next to its fake (:mod:`exchanger_sandbox.contract`);
the cases are the same for all: a task delivered twice makes one item, a write whose answer is lost
makes one item after the settle wait, a deleted item is the process's BPMN error (or a failure, by
setting), the system's "slow down" and its 5xx answers cost time but no task, and a payload the system
cannot take ends as an incident or in the parking lot with its reason, never silently.
"""

from __future__ import annotations

import pytest
from broker_queues import wait_for
from contract_kit import ATTEMPTS, READ_TIMEOUT_S, WRITE_SETTLE_S, Case

from exchanger.amqp.topology import system_queue
from exchanger.contracts import ResponseStatus


def finish_and_expect_complete(case: Case, task_id: str, item: str) -> None:
    case.contract.finish(case.fake.server, item)
    responses = case.queues.responses(timeout_s=20)
    assert [(r.task_id, r.status) for r in responses] == [(task_id, ResponseStatus.COMPLETE)]
    assert responses[0].item is not None and responses[0].item.id == item


def test_a_task_delivered_twice_makes_one_item(start_case) -> None:
    case: Case = start_case()
    task = case.task("twice")
    case.queues.publish_task(task)
    item = case.item(task)
    case.queues.publish_task(task)  # camunda-worker published it again (its lock expired, a restart)
    wait_for(lambda: case.handler.get_stats().get("found_existing") == 1, 15, "the second delivery to be handled")
    assert case.items(task) == [item]
    finish_and_expect_complete(case, task.task_id, item)


def test_a_write_whose_answer_is_lost_makes_one_item_after_the_settle_wait(start_case) -> None:
    """The system takes longer than our read timeout over the create and completes it anyway: the
    handler must not create again blindly, but look it up once the write can no longer land."""
    case: Case = start_case()
    contract = case.contract
    case.inject(delay_s=READ_TIMEOUT_S + 1.0, count=1, path_contains=contract.create_path,
                method=contract.create_method)
    task = case.task("ambiguous")
    case.queues.publish_task(task)
    wait_for(lambda: case.handler.get_stats().get("found_existing") == 1, WRITE_SETTLE_S + 20,
             "the retry after the settle wait to find the item")
    item = case.item(task)
    finish_and_expect_complete(case, task.task_id, item)


@pytest.mark.parametrize("as_failure", [False, True], ids=["bpmn-error", "failure"])
def test_a_deleted_item_is_the_bpmn_error_or_by_setting_a_failure(start_case, as_failure: bool) -> None:
    case: Case = start_case(DELETED_AS_FAILURE=str(as_failure).lower())
    task = case.task("deleted")
    case.queues.publish_task(task)
    item = case.item(task)
    case.contract.delete(case.fake.server, item)
    (response,) = case.queues.responses(timeout_s=20)
    settings_class = case.fake.spec.settings_class()
    assert settings_class is not None
    if as_failure:
        assert (response.task_id, response.status, response.retries) == (task.task_id, ResponseStatus.FAILURE, 0)
        assert "deleted" in (response.error_message or "")
    else:
        assert (response.task_id, response.status) == (task.task_id, ResponseStatus.BPMN_ERROR)
        assert response.error_code == settings_class.model_fields["deleted_error_code"].default


def test_the_systems_rate_limit_costs_time_not_the_task(start_case) -> None:
    case: Case = start_case()
    case.inject(**{**case.contract.rate_limit, "count": ATTEMPTS + 1})
    task = case.task("limited")
    case.queues.publish_task(task)
    item = case.item(task, timeout_s=30)
    assert case.contract.faults_pending(case.fake.server) == 0  # every refusal was met and waited out
    finish_and_expect_complete(case, task.task_id, item)


def test_5xx_answers_are_retried_until_the_system_answers(start_case) -> None:
    case: Case = start_case()
    case.inject(status=503, count=ATTEMPTS + 1)  # more than one call's tries: the creator retries too
    task = case.task("unavailable")
    case.queues.publish_task(task)
    item = case.item(task, timeout_s=30)
    assert case.contract.faults_pending(case.fake.server) == 0
    finish_and_expect_complete(case, task.task_id, item)


def test_a_payload_the_system_cannot_take_is_an_incident_with_its_reason_and_a_parked_copy(start_case) -> None:
    case: Case = start_case()
    for task in (case.contract.bad_task(f"{case.fake.spec.name}-bad"),  # the system's own refusal
                 case.contract.make_task(f"{case.fake.spec.name}-topic", {}, {}, topic="no_such_topic")):
        case.queues.publisher.publish("", system_queue(case.fake.spec.name), task.to_bytes(),
                                      correlation_id=task.task_id)  # routed here by a mistaken routing file
        (response,) = case.queues.responses(timeout_s=20)
        (parked,) = case.queues.parked(timeout_s=10)
        assert (response.task_id, response.status, response.retries) == (task.task_id, ResponseStatus.FAILURE, 0)
        assert response.error_message and parked.task_id == task.task_id and parked.reason
        assert case.items(task) == []


def test_a_message_that_is_not_a_task_is_parked_with_every_byte(start_case) -> None:
    case: Case = start_case()
    queue = system_queue(case.fake.spec.name)
    case.queues.publish_raw(queue, b'{"task_id": "half a message"')
    (parked,) = case.queues.parked(timeout_s=10)
    assert parked.source_queue == queue and parked.reason and parked.original_body() == b'{"task_id": "half a message"'
    assert case.queues.drain(case.queues.topology.settings.responses_queue) == []

