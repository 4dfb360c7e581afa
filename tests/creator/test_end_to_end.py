"""End to end: sandbox Camunda engine → camunda-worker → RabbitMQ → task-creator → RabbitMQ → worker → engine.

Everything in-process over real HTTP and the real broker. The ``hold`` topic (routed to bitrix24,
which nobody serves here) parks the token after the step under test, so the test can read where the
process went and which variables it got.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import creator_testkit
import pytest
import requests
from creator_testkit import ItemStore, StoreHandler, StoreTracker, context
from pydantic import SecretStr

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import TaskMessage
from exchanger.creator.event_receiver import EventReceiver
from exchanger.routing import RoutingTable
from exchanger.settings import TopologySettings
from exchanger.systems.default.handler import DefaultTaskHandler
from exchanger.systems.openproject.handler import OpenProjectTaskHandler
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger.systems.openproject.tracker import OpenProjectTracker
from exchanger.systems.python.handler import PythonTaskHandler
from exchanger.systems.python.settings import PythonTasksSettings
from exchanger.variables import from_typed, to_typed_map
from exchanger.worker.service import Worker
from exchanger.worker.settings import WorkerSettings
from exchanger_sandbox.openproject import server as op_fake
from exchanger_sandbox.openproject import state as op_state

PYTHON_TOPICS = ["t_ok", "t_bpmn", "t_incident", "t_flaky_fast"]
ROUTING = RoutingTable({"python": PYTHON_TOPICS, "bitrix24": ["hold"], "1c": ["1c_create_document"],
                        "openproject": ["op_create_task"]})


def model(key: str, topic: str) -> str:
    """start → ``topic`` → after (hold) → end; BPMN error EMAIL_BOUNCED on it → handle (hold)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://exchanger/tests">
  <bpmn:error id="err" name="Bounced" errorCode="EMAIL_BOUNCED" />
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Work" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:boundaryEvent id="caught" attachedToRef="work">
      <bpmn:errorEventDefinition errorRef="err" camunda:errorMessageVariable="caughtMessage" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="after" />
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="hold" />
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end" />
    <bpmn:sequenceFlow id="f4" sourceRef="caught" targetRef="handle" />
    <bpmn:serviceTask id="handle" camunda:type="external" camunda:topic="hold" />
    <bpmn:sequenceFlow id="f5" sourceRef="handle" targetRef="end2" />
    <bpmn:endEvent id="end" />
    <bpmn:endEvent id="end2" />
  </bpmn:process>
</bpmn:definitions>
"""


@creator_testkit.tasks.task("t_flaky_fast", retries=1, retry_timeout="PT1S")
def flaky_fast(job: TaskMessage) -> dict:
    raise ConnectionError("SMTP relay unreachable")


class Pipeline:
    def __init__(self, engine_url: str, queues: creator_testkit.Queues) -> None:
        self.http = CamundaClient(CamundaSettings(base_url=engine_url, worker_id="driver", http_attempts=1)).http
        self.queues = queues

    def deploy_and_start(self, key: str, topic: str, variables: dict[str, Any] | None = None) -> str:
        self.http.request("POST", "/deployment/create", idempotent=False, data={"deployment-name": key},
                          files={f"{key}.bpmn": (f"{key}.bpmn", model(key, topic).encode(), "application/xml")})
        body = {"variables": to_typed_map(variables or {})}
        started = self.http.request("POST", f"/process-definition/key/{key}/start", idempotent=False, json=body)
        return str(started.json()["id"])

    def held(self, instance: str, timeout_s: float = 15.0) -> TaskMessage:
        """The next task of ``instance`` that reached the hold topic (bitrix24.queue)."""
        body = self.queues.take("bitrix24.queue", 1, timeout_s)[0]
        task = TaskMessage.from_bytes(body)
        assert task.process_instance_id == instance
        return task

    def variables(self, instance: str) -> dict[str, Any]:
        found = self.http.request("GET", f"/process-instance/{instance}/variables").json()
        return {name: from_typed(typed) for name, typed in found.items()}

    def incident(self, instance: str, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.http.request("GET", "/incident", params={"processInstanceId": instance}).json()
            if found:
                return found[0]
            time.sleep(0.1)
        pytest.fail(f"no incident for {instance} within {timeout_s}s")


@pytest.fixture
def pipeline(rabbit_settings, topology, queues, start_service, tmp_path) -> Iterator[Callable[..., Pipeline]]:
    from exchanger_sandbox.camunda.server import start

    workers: list[Worker] = []
    with start() as server:
        def make(**handlers_and_trackers: Any) -> Pipeline:
            camunda = CamundaSettings(base_url=server.url, worker_id="e2e-worker", async_response_timeout_ms=1000,
                                      http_attempts=2, backoff_initial_s=0.1, backoff_max_s=0.5,
                                      topic_discovery=True, topic_discovery_interval_s=0.5)
            worker = Worker(camunda=camunda, rabbit=rabbit_settings, topology=TopologySettings(), routing=ROUTING,
                            worker=WorkerSettings(health_port=0, shutdown_deadline_s=5))
            worker.start()
            workers.append(worker)
            start_service(**handlers_and_trackers)
            return Pipeline(server.url, queues)

        yield make
        for worker in workers:
            worker.stop()


def python_handler() -> PythonTaskHandler:
    return PythonTaskHandler(context("python", tracked=False), settings=PythonTasksSettings(modules=""),
                             tasks=creator_testkit.tasks)


def test_a_python_task_completes_the_step_with_its_variables(pipeline):
    p = pipeline(handlers={"python.queue": python_handler()})
    instance = p.deploy_and_start("ok", "t_ok", {"name": "Ada", "n": 1})
    assert p.held(instance).activity_id == "after"
    variables = p.variables(instance)
    assert variables["greeting"] == "hello Ada" and variables["n"] == 2 and variables["nested"] == {"a": [1, 2]}


def test_bpmn_error_takes_the_boundary_path(pipeline):
    p = pipeline(handlers={"python.queue": python_handler()})
    instance = p.deploy_and_start("bounce", "t_bpmn")
    assert p.held(instance).activity_id == "handle"
    variables = p.variables(instance)
    assert variables["caughtMessage"] == "the address does not exist" and variables["bounced"] is True


def test_incident_and_exhausted_retries_become_camunda_incidents_with_the_message(pipeline):
    p = pipeline(handlers={"python.queue": python_handler()})
    broken = p.deploy_and_start("broken", "t_incident")
    flaky = p.deploy_and_start("flaky", "t_flaky_fast")
    incident = p.incident(broken)
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["incidentMessage"] == "the template is broken"
    incident = p.incident(flaky, timeout_s=20)  # one Camunda retry after 1 s, then no retries left
    assert "ConnectionError: SMTP relay unreachable (no retries left)" in incident["incidentMessage"]
    parked = {r.task_id for r in p.queues.parked(2)}
    assert len(parked) == 2


def test_an_unknown_topic_becomes_an_incident_naming_it(pipeline):
    p = pipeline(handlers={"default.queue": DefaultTaskHandler(context("default", tracked=False))})
    instance = p.deploy_and_start("unrouted", "nobody_routes_me")
    incident = p.incident(instance)
    assert "no system handles topic 'nobody_routes_me'" in incident["incidentMessage"]


def test_a_tracked_item_completes_the_step_when_the_tracker_says_done(pipeline, tmp_path):
    store = ItemStore(tmp_path / "items")
    tracker = StoreTracker(context("1c"), store=store, interval_s=1.0)
    p = pipeline(handlers={"1c.queue": StoreHandler(context("1c"), store=store)},
                 trackers={"1c.sent.queue": tracker})
    instance = p.deploy_and_start("tracked", "1c_create_document")
    deadline = time.monotonic() + 15
    while sum(tracker.checks.values()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(tracker.checks.values()) >= 2  # asked again after "still open"
    (task_id,) = tracker.checks
    store.finish(task_id, document="0000-42")
    assert p.held(instance).activity_id == "after"
    assert p.variables(instance)["item_result"] == {"document": "0000-42"}
    assert store.count() == 1


def test_an_openproject_webhook_completes_the_step_at_once(pipeline, rabbit_settings, topology):
    """Closing the work package → OpenProject's signed webhook → the task-creator's event endpoint → the
    step completes in the engine, long before the tracker's next check (60 s, no sweeps)."""
    with op_fake.start() as op:
        secret = "whsec-e2e"
        settings = OpenProjectSettings(base_url=op.url, api_key=SecretStr(op_state.API_KEY),
                                       default_project=op_state.DEFAULT_PROJECT, check_interval_s=60.0,
                                       sweep_interval_s=0.0, webhook_secret=SecretStr(secret))
        tracker = OpenProjectTracker(context("openproject"), settings=settings)
        p = pipeline(handlers={"openproject.queue": OpenProjectTaskHandler(context("openproject"), settings=settings)},
                     trackers={"openproject.sent.queue": tracker})
        receiver = EventReceiver({"openproject": tracker}, rabbit_settings, topology, port=0).start()
        try:
            hook = {"url": f"http://127.0.0.1:{receiver.port}/events/openproject", "secret": secret,
                    "events": ["work_package:updated"]}
            requests.put(f"{op.url}/_admin/webhooks", json={"webhooks": [hook]}, timeout=5).raise_for_status()
            instance = p.deploy_and_start("op_hook", "op_create_task")
            deadline = time.monotonic() + 15
            while not op.state.work_packages and time.monotonic() < deadline:
                time.sleep(0.05)
            (wp_id,) = op.state.work_packages
            person = requests.Session()
            person.auth = ("apikey", op_state.API_KEY)
            url = f"{op.url}/api/v3/work_packages/{wp_id}"
            lock = person.get(url, timeout=5).json()["lockVersion"]
            person.patch(url, json={"lockVersion": lock, "_links": {"status": {"href": "/api/v3/statuses/5"}}},
                         timeout=5).raise_for_status()
            assert p.held(instance, timeout_s=10).activity_id == "after"
            assert p.variables(instance)["op_status"] == "Closed"
            assert tracker.get_stats().get("checks", 0) == 0  # the webhook answered, not a check
        finally:
            receiver.stop()
