"""Fixtures: a sandbox engine per test on a free port (real HTTP), a frozen injectable clock, and a
small client that deploys BPMN snippets and drives the REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exchanger_sandbox.camunda.clock import Clock
from exchanger_sandbox.camunda.server import CamundaSandbox, start

# 2024-01-15T12:00:00Z: a fixed instant, so lock expirations are exact
START_MS = 1_705_320_000_000

DEFINITIONS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://example.com/bpmn">
{errors}
  <bpmn:process id="{key}" name="{name}" isExecutable="true"{attributes}>
{body}
  </bpmn:process>
</bpmn:definitions>
"""


def bpmn(body: str, key: str = "p", errors: str = "", attributes: str = "", name: str = "Process") -> bytes:
    """A BPMN document with one executable process around ``body``."""
    return DEFINITIONS.format(key=key, body=body, errors=errors, attributes=attributes, name=name).encode()


def one_task(key: str = "p", topic: str = "work", extra: str = "") -> bytes:
    """start → external task (``topic``) → end."""
    return bpmn(f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" name="Task" camunda:type="external" camunda:topic="{topic}"{extra}/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
    <bpmn:endEvent id="end"/>""", key=key)


class Api:
    """Thin helpers over a pooled session; every call is real HTTP to the sandbox."""

    def __init__(self, sandbox: CamundaSandbox) -> None:
        self.sandbox = sandbox
        self.url = sandbox.url
        self.http = requests.Session()

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, body: Any = None, timeout: float = 10) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=timeout)

    def put(self, path: str, body: Any = None) -> requests.Response:
        return self.http.put(self.url + path, json=body, timeout=10)

    def delete(self, path: str, **params: Any) -> requests.Response:
        return self.http.delete(self.url + path, params=params, timeout=10)

    def deploy(self, *resources: tuple[str, bytes], **fields: str) -> dict[str, Any]:
        files: dict[str, Any] = {name: (name, data) for name, data in resources}
        files.update({key.replace("_", "-"): (None, value) for key, value in fields.items()})
        response = self.http.post(self.url + "/deployment/create", files=files, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def deploy_model(self, data: bytes, name: str = "model.bpmn", **fields: str) -> dict[str, Any]:
        return self.deploy((name, data), **fields)

    def start(self, key: str = "p", variables: dict[str, Any] | None = None, tenant: str | None = None,
              **body: Any) -> dict[str, Any]:
        path = f"/process-definition/key/{key}" + (f"/tenant-id/{tenant}" if tenant else "") + "/start"
        response = self.post(path, {"variables": variables or {}, **body})
        assert response.status_code == 200, response.text
        return response.json()

    def fetch(self, worker: str = "w1", topic: str = "work", max_tasks: int = 10, lock: int = 10_000,
              **topic_fields: Any) -> list[dict[str, Any]]:
        response = self.post("/external-task/fetchAndLock", {
            "workerId": worker, "maxTasks": max_tasks,
            "topics": [{"topicName": topic, "lockDuration": lock, **topic_fields}]})
        assert response.status_code == 200, response.text
        return response.json()

    def fetch_one(self, **kwargs: Any) -> dict[str, Any]:
        tasks = self.fetch(**kwargs)
        assert len(tasks) == 1, tasks
        return tasks[0]

    def complete(self, task_id: str, worker: str = "w1", **body: Any) -> requests.Response:
        return self.post(f"/external-task/{task_id}/complete", {"workerId": worker, **body})

    def tasks(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/external-task", **params).json()

    def history(self, instance_id: str) -> dict[str, Any]:
        return self.get(f"/history/process-instance/{instance_id}").json()

    def activities(self, instance_id: str) -> list[str]:
        """Activity ids the instance went through, in order."""
        rows = self.get("/history/activity-instance", processInstanceId=instance_id).json()
        return [row["activityId"] for row in rows]

    def advance(self, ms: int) -> None:
        self.sandbox.clock.advance(ms)


def error(response: requests.Response, status: int) -> dict[str, Any]:
    """The error body, after checking the status."""
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


@pytest.fixture
def clock() -> Clock:
    return Clock(start_ms=START_MS)


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[CamundaSandbox]:
    with start(clock=clock) as running:
        yield running


@pytest.fixture
def api(sandbox: CamundaSandbox) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.http.close()
