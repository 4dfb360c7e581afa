"""The lock keeper against the sandbox engine and the real broker: the long lock only for tasks still in
flight after WORKER_LOCK_EXTEND_AFTER_S, taken only after the confirm, and a crash before it costs a
duplicate message, never a lost task or a year-long lock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker_queues import Queues, wait_for
from test_lifecycle import SHORT_LOCK_MS, worker_process
from test_responses import next_task, response
from worker_helpers import Engine
from worker_models import one_task

from exchanger.contracts import ResponseStatus, TaskMessage
from exchanger.settings import RabbitMQSettings
from exchanger.variables import parse_date

YEAR_AHEAD = timedelta(days=300)


def lock_expiration(engine: Engine, instance: str) -> datetime:
    (task,) = engine.tasks(processInstanceId=instance)
    return parse_date(task["lockExpirationTime"])


def test_a_task_answered_inside_the_delay_costs_no_lock_extension(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    worker = make_worker(engine.url, worker={"lock_extend_after_s": 2})
    instance = engine.start("deal")
    task = next_task(queues)
    assert lock_expiration(engine, instance) < datetime.now(UTC) + timedelta(minutes=10), "the short lock"
    queues.respond(response(task, ResponseStatus.COMPLETE))

    wait_for(lambda: worker.metrics.responses.labels("completed")._value.get() == 1, what="the completion")
    assert worker.keeper.tracked == 0
    time.sleep(2.5)  # past the delay: nothing is left to extend
    assert worker.metrics.lock_extended._value.get() == 0
    assert worker.metrics.lock_extend_failed.labels("gone")._value.get() == 0


def test_a_task_still_in_flight_after_the_delay_gets_the_long_lock(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    worker = make_worker(engine.url, worker={"lock_extend_after_s": 1})
    instance = engine.start("deal")
    task = next_task(queues)
    assert lock_expiration(engine, instance) < datetime.now(UTC) + timedelta(minutes=10)

    wait_for(lambda: worker.metrics.lock_extended._value.get() == 1, what="the lock extension", timeout_s=5)
    assert lock_expiration(engine, instance) > datetime.now(UTC) + YEAR_AHEAD
    assert worker.keeper.tracked == 0
    queues.respond(response(task, ResponseStatus.COMPLETE))  # the long-running task ends normally
    wait_for(lambda: worker.metrics.responses.labels("completed")._value.get() == 1, what="the completion")


def test_a_clean_stop_gives_the_long_lock_to_every_task_still_in_flight(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    worker = make_worker(engine.url, worker={"lock_extend_after_s": 600})
    instances = [engine.start("deal", {"n": n}) for n in range(5)]
    wait_for(lambda: queues.depth("bitrix24.queue") == 5, what="the five task messages")
    assert worker.metrics.lock_extended._value.get() == 0
    assert worker.stop()
    assert worker.metrics.lock_extended._value.get() == 5
    for instance in instances:
        assert lock_expiration(engine, instance) > datetime.now(UTC) + YEAR_AHEAD


def test_a_worker_killed_after_the_confirm_but_before_the_extension_publishes_the_task_again(
        tmp_path: Path, engine: Engine, queues: Queues, rabbit_settings: RabbitMQSettings, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    process, _ = worker_process(tmp_path, engine.url, rabbit_settings, rabbit_settings.port,
                                WORKER_LOCK_EXTEND_AFTER_S="600")  # capped at half the short lock: 30 s
    try:
        instance = engine.start("deal")
        first = TaskMessage.from_bytes(queues.get("bitrix24.queue", timeout_s=15)[2])
        process.kill()  # SIGKILL: the keeper never extends
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert lock_expiration(engine, instance) <= datetime.now(UTC) + timedelta(milliseconds=SHORT_LOCK_MS)

    make_worker(engine.url, worker_id="exchanger-test")  # a new worker of the same environment
    time.sleep(1.5)  # the dead worker's long poll (1 s) has run out: it cannot lock the task for nobody
    assert queues.depth("bitrix24.queue") == 0  # the short lock still holds
    engine.advance(SHORT_LOCK_MS + 1000)
    again = TaskMessage.from_bytes(queues.get("bitrix24.queue", timeout_s=15)[2])
    assert again.task_id == first.task_id  # a duplicate message (consumers are idempotent), nothing lost
