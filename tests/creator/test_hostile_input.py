"""Hostile input on every queue: malformed, wrong-shaped, binary and oversized messages, absurd Retry-After.

Whatever arrives, it is parked with a reason (a task that can be named becomes an incident), the queue
keeps flowing, nothing is lost and nothing loops. The task-creator's queues (``<system>.queue``,
``<system>.sent.queue``) are served in-process; ``camunda.responses.queue`` by a real camunda-worker
against the sandbox engine. Real broker throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from broker_queues import Queues, start_creator, wait_for
from creator_testkit import context, make_task

from exchanger.amqp.consumer import OVERSIZE_KEEP_BYTES
from exchanger.amqp.topology import Topology
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import SentRecord, TaskMessage
from exchanger.creator.base import BaseMessageHandler, BaseTracker, HandlerOutcome, TrackerOutcome
from exchanger.creator.service import CreatorService
from exchanger.errors import RateLimited
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger.systems.python.handler import PythonTaskHandler
from exchanger.systems.python.settings import PythonTasksSettings
from exchanger.worker.service import Worker
from exchanger.worker.settings import WorkerSettings

MALFORMED = [
    b"{not json",
    b"\xff\xfe\x00 binary garbage \x00",
    b"[]",
    b"null",
    json.dumps({"task_id": "hostile", "status": "??", "system": 7}).encode(),  # JSON of the wrong shape
    json.dumps({"task_id": "x" * 100_000}).encode(),  # long, and still missing everything else
]
BIG_BYTES = 6 * 1024 * 1024  # above the default RABBITMQ_MAX_MESSAGE_BYTES (4 MiB)


class RateLimitedForever(BaseMessageHandler):
    """A portal that answers ``Retry-After: 1000000000``."""

    def create(self, task: TaskMessage) -> HandlerOutcome:
        raise RateLimited("the portal says: come back in 31 years", retry_after_s=1e9)


class NeverChecked(BaseTracker):
    """Malformed records must never reach a tracker."""

    def check(self, record: SentRecord) -> TrackerOutcome:
        raise AssertionError(f"a hostile record reached the tracker: {record}")


@pytest.fixture
def creator(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[CreatorService]:
    python = PythonTaskHandler(context("python", tracked=False), settings=PythonTasksSettings(modules=""))
    service = start_creator(rabbit_settings, topology, {"python.queue": python},
                            {"bitrix24.sent.queue": NeverChecked(context("bitrix24"))})
    yield service
    service.stop()


def _big_task(task_id: str) -> bytes:
    task = make_task(task_id, "echo", "python", {"blob": "x" * BIG_BYTES})
    return task.to_bytes()


def test_malformed_messages_on_the_creator_queues_are_parked_with_a_reason(creator, queues: Queues) -> None:
    for queue in ("python.queue", "bitrix24.sent.queue"):
        for body in MALFORMED:
            queues.publish_raw(queue, body)
    parked = queues.parked(count=2 * len(MALFORMED), timeout_s=20)
    assert sorted(p.source_queue for p in parked) == ["bitrix24.sent.queue"] * len(MALFORMED) + \
        ["python.queue"] * len(MALFORMED)
    assert all(p.reason and p.error_type == "ContractError" for p in parked)
    assert sorted(p.original_body() for p in parked) == sorted(MALFORMED * 2)  # every byte kept
    assert queues.depth("python.queue") == queues.depth("bitrix24.sent.queue") == 0
    assert queues.drain("camunda.responses.queue") == []  # no task could be named: only parked


@pytest.mark.parametrize("queue", ["python.queue", "bitrix24.sent.queue"])
def test_an_oversized_message_is_refused_unread_parked_cut_and_its_task_an_incident(creator, queues: Queues,
                                                                                   queue: str) -> None:
    body = _big_task("huge-1")
    assert len(body) > BIG_BYTES
    queues.publish_raw(queue, body, correlation_id="huge-1")
    (response,) = queues.responses(timeout_s=20)
    (parked,) = queues.parked(timeout_s=10)
    assert (response.task_id, response.status.value, response.retries) == ("huge-1", "failure", 0)
    assert "larger than RABBITMQ_MAX_MESSAGE_BYTES" in (response.error_message or "")
    assert parked.error_type == "MessageTooLarge" and parked.source_queue == queue
    assert len(parked.original_body()) == OVERSIZE_KEEP_BYTES and body.startswith(parked.original_body())
    time.sleep(2)  # nothing comes back: no redelivery loop
    assert queues.depth(queue) == 0 and queues.drain("camunda.responses.queue") == []
    assert queues.depth("errors.camunda_tasks.queue") == 0


def test_an_absurd_retry_after_is_capped_and_never_nack_loops(rabbit_settings, topology, queues: Queues) -> None:
    handler = RateLimitedForever(context("bitrix24"))
    service = start_creator(rabbit_settings, topology, {"bitrix24.queue": handler}, max_retry_after_s=3600)
    try:
        queues.publish_task(make_task("absurd-1", "bitrix_create_task", "bitrix24"))
        wait_for(lambda: handler.get_stats().get("total_messages") == 1, 10, "the task to be handled")
        time.sleep(2)  # a refused TTL used to nack and redeliver every ~2 s
        assert handler.get_stats()["total_messages"] == 1
        assert queues.depth("bitrix24.queue") == 0
        assert queues.depth(topology.delay_queue(3600)) == 1  # waiting one hour (the cap), not 31 years
    finally:
        service.stop()
        queues.drain(topology.delay_queue(3600))


@pytest.fixture
def worker(rabbit_settings: RabbitMQSettings) -> Iterator[Worker]:
    from exchanger_sandbox.camunda.server import start

    with start() as engine:
        instance = Worker(camunda=CamundaSettings(base_url=engine.url, worker_id="hostile-worker",
                                                  async_response_timeout_ms=1000, http_attempts=2),
                          rabbit=rabbit_settings, worker=WorkerSettings(health_port=0, shutdown_deadline_s=10),
                          topology=TopologySettings(), routing=RoutingTable())
        instance.start()
        yield instance
        instance.stop()


def test_malformed_and_oversized_responses_are_parked_with_a_reason(worker, queues: Queues) -> None:
    for body in [*MALFORMED, b"{" * 5_000, _big_task("huge-response")]:
        queues.publish_raw("camunda.responses.queue", body)
    parked = queues.parked(count=len(MALFORMED) + 2, timeout_s=30)
    assert all(p.source_queue == "camunda.responses.queue" and p.reason for p in parked)
    (too_big,) = [p for p in parked if p.error_type == "MessageTooLarge"]
    assert len(too_big.original_body()) == OVERSIZE_KEEP_BYTES
    assert queues.depth("camunda.responses.queue") == 0
