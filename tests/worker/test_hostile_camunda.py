"""Camunda (or whatever answers in its place) behaving badly: the worker logs it, backs off and goes on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from broker_queues import Queues, wait_for
from loguru import logger
from worker_helpers import Engine
from worker_models import one_task

from exchanger.contracts import MAX_VALUE_DEPTH, ExternalItem, ParkedRecord, SentRecord, TaskMessage
from exchanger.health import HealthServer

HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


@pytest.fixture
def errors_log() -> Iterator[list[str]]:
    """What reaches the ERROR level, i.e. ``<component>.errors.log``."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="ERROR")
    yield lines
    logger.remove(sink)


@pytest.mark.parametrize("fault", [
    {"body": {"unexpected": "an object, not a list"}},
    {"raw": HTML_PAGE, "content_type": "text/html"},
    {"raw": "\x00\x01garbage{", "content_type": "application/json"},
    {"body": [{"no": "id"}, "text"]},
], ids=["json-object", "html", "garbage", "list-of-junk"])
def test_an_unexpected_fetch_answer_is_logged_and_fetching_goes_on(
        engine: Engine, queues: Queues, make_worker, errors_log: list[str], fault: dict[str, Any]) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    engine.fault(status=200, count=3, path_contains="fetchAndLock", **fault)
    worker = make_worker(engine.url)
    instance = engine.start("deal")

    task = TaskMessage.from_bytes(queues.get("bitrix24.queue", timeout_s=20)[2])
    assert task.process_instance_id == instance
    assert all(thread.is_alive() for thread in worker._threads)
    assert sum("fetchAndLock" in line and "unexpected answer" in line or "not a list of locked tasks" in line
               for line in errors_log) == 3, errors_log


def test_healthz_fails_when_the_fetch_loop_is_dead(engine: Engine, queues: Queues, make_worker) -> None:
    worker = make_worker(engine.url)
    health = HealthServer(0, worker.metrics.registry, worker.readiness_checks(),
                          liveness=worker.liveness_checks()).start()
    try:
        url = f"http://127.0.0.1:{health.port}/healthz"
        assert requests.get(url, timeout=5).status_code == 200

        def die(tasks: list[Any]) -> None:
            raise SystemExit("simulated death of the fetch thread")  # not an Exception: the loop cannot catch it

        worker.fetcher.dispatch = die  # type: ignore[method-assign]
        engine.deploy(one_task("deal", "bitrix_create_task"))
        engine.start("deal")
        wait_for(lambda: requests.get(url, timeout=5).status_code == 503, what="healthz 503")
        assert requests.get(url, timeout=5).json()["checks"]["fetcher"] == {"ok": False, "detail": "thread ended"}
    finally:
        health.stop()


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def start_raw(engine: Engine, key: str, variables: dict[str, Any]) -> str:
    """Start with Camunda-typed variables as given (an Object the helpers would not write)."""
    return str(engine.http.request("POST", f"/process-definition/key/{key}/start", idempotent=False,
                                   json={"variables": variables}).json()["id"])


def test_an_object_nested_too_deep_becomes_an_incident_not_a_spin(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    worker = make_worker(engine.url)
    deep = {"type": "Object", "value": json.dumps(nested(300)),
            "valueInfo": {"serializationDataFormat": "application/json", "objectTypeName": "java.util.HashMap"}}
    instance = start_raw(engine, "deal", {"payload": deep})

    (incident,) = wait_for(lambda: engine.get("/incident", processInstanceId=instance), what="an incident")
    assert "cannot publish this task" in incident["incidentMessage"]
    assert "'payload' is nested deeper than 100 levels" in incident["incidentMessage"]
    polls = worker.metrics.polls._value.get()
    time.sleep(2.5)  # long polls of 1 s: a spin would poll hundreds of times
    assert worker.metrics.polls._value.get() - polls <= 4
    assert worker.metrics.unlocked._value.get() == 0 and worker.metrics.refused._value.get() == 1
    assert queues.depth("bitrix24.queue") == 0


def test_a_value_at_the_limit_passes_the_worker_and_task_creator(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    make_worker(engine.url)
    deep = {"type": "Object", "value": json.dumps(nested(MAX_VALUE_DEPTH)),
            "valueInfo": {"serializationDataFormat": "application/json", "objectTypeName": "java.util.HashMap"}}
    start_raw(engine, "deal", {"payload": deep})
    task = TaskMessage.from_bytes(queues.get("bitrix24.queue")[2])  # what task-creator parses
    record = SentRecord(task=task, item=ExternalItem(system="bitrix24", id="1"))  # one level deeper still
    assert SentRecord.from_bytes(record.to_bytes()).task.value("payload") == nested(MAX_VALUE_DEPTH)


@pytest.mark.parametrize("fault", [
    {"status": 200, "raw": HTML_PAGE, "content_type": "text/html"},
    {"status": 200, "body": {"id": "no xml here"}},
    {"status": 200, "body": {"id": "x", "bpmn20Xml": "<not-bpmn/>"}},
], ids=["html", "json-without-xml", "not-bpmn"])
def test_an_unreadable_model_becomes_an_incident_not_a_spin(
        engine: Engine, queues: Queues, make_worker, fault: dict[str, Any]) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    engine.fault(count=1000, path_contains="/xml", **fault)
    worker = make_worker(engine.url)
    instance = engine.start("deal")

    (incident,) = wait_for(lambda: engine.get("/incident", processInstanceId=instance), what="an incident")
    assert "the BPMN model" in incident["incidentMessage"] and "cannot be read" in incident["incidentMessage"]
    polls = worker.metrics.polls._value.get()
    time.sleep(2.5)
    assert worker.metrics.polls._value.get() - polls <= 4
    assert worker.metrics.unlocked._value.get() == 0


def test_a_response_whose_task_id_is_a_path_starts_no_instance(engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    make_worker(engine.url)
    engine.start("deal")
    next_task = TaskMessage.from_bytes(queues.get("bitrix24.queue")[2])
    evil = "../process-definition/key/deal/start?x="
    body = {"task_id": evil, "worker_id": "worker-test", "status": "complete",
            "variables": {"injected": {"value": True, "type": "Boolean"}}}
    queues.publish_raw("camunda.responses.queue", json.dumps(body).encode(), correlation_id=evil)

    record = ParkedRecord.from_bytes(queues.get("errors.camunda_tasks.queue")[2])
    assert "task_id" in record.reason and "is not an id" in record.reason
    assert engine.count("/process-instance", processDefinitionKey="deal") == 1  # nothing started
    assert next_task.process_instance_id


def test_a_task_too_large_for_its_consumer_becomes_an_incident(
        engine: Engine, queues: Queues, make_worker, rabbit_settings) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    limit = 64 * 1024  # RABBITMQ_MAX_MESSAGE_BYTES, shared with task-creator, which would refuse it
    worker = make_worker(engine.url, rabbit=rabbit_settings.model_copy(update={"max_message_bytes": limit}))
    instance = engine.start("deal", {"attachment": "x" * (2 * limit)})

    (incident,) = wait_for(lambda: engine.get("/incident", processInstanceId=instance), what="an incident")
    assert f"above RABBITMQ_MAX_MESSAGE_BYTES={limit}" in incident["incidentMessage"]
    assert worker.metrics.refused._value.get() == 1 and queues.depth("bitrix24.queue") == 0
