"""Two camunda-workers of one environment (one CAMUNDA_WORKER_ID) on one engine and one broker: each task is
published once, both fetch, and either applies the response of a task the other fetched."""

from __future__ import annotations

from collections import Counter

from broker_queues import Queues, wait_for
from test_responses import response
from worker_helpers import Engine
from worker_models import one_task

from exchanger.contracts import ResponseStatus, TaskMessage
from exchanger.worker.service import Worker

TASKS = 40


def test_two_workers_publish_each_task_once_and_apply_each_others_responses(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task", then_topic="send_email"))
    # max_tasks 2: a poll takes a few tasks, so the other worker's poll finds the rest
    first = make_worker(engine.url, worker_id="exchanger-prod", max_tasks=2)
    second = make_worker(engine.url, worker_id="exchanger-prod", max_tasks=2)
    instances = {engine.start("deal") for _ in range(TASKS)}

    published = [TaskMessage.from_bytes(body) for body in queues.take("bitrix24.queue", TASKS, timeout_s=60)]
    assert {t.process_instance_id for t in published} == instances
    assert not [task for task, n in Counter(t.task_id for t in published).items() if n > 1]  # none twice

    def fetched(worker: Worker) -> float:
        return float(worker.metrics.fetched.labels("bitrix_create_task")._value.get())

    assert fetched(first) + fetched(second) == TASKS
    assert fetched(first) and fetched(second), (fetched(first), fetched(second))  # both took a share

    for task in published:  # the responses go to whichever worker consumes them
        queues.respond(response(task, ResponseStatus.COMPLETE))
    after = [TaskMessage.from_bytes(body) for body in queues.take("python.queue", TASKS, timeout_s=60)]
    assert {t.process_instance_id for t in after} == instances  # every process moved on once

    def completed(worker: Worker) -> float:
        return float(worker.metrics.responses.labels("completed")._value.get())

    wait_for(lambda: completed(first) + completed(second) == TASKS, what="every response applied")
    assert completed(first) and completed(second), (completed(first), completed(second))
    assert not queues.depth("errors.camunda_tasks.queue")  # no "locked by another worker": one workerId
