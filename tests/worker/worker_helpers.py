"""Helpers of the worker tests: drive the sandbox engine over REST, read and feed the broker, wait."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ResponseMessage
from exchanger.settings import RabbitMQSettings
from exchanger.variables import to_typed_map

FAST_CAMUNDA = {  # short long polls and backoffs so that tests stop and recover quickly
    "async_response_timeout_ms": 1000,
    "http_attempts": 2,
    "backoff_initial_s": 0.1,
    "backoff_max_s": 0.5,
}
FAST_WORKER = {"health_port": 0, "shutdown_deadline_s": 10, "response_retry_initial_s": 1.0,
               "response_max_attempts": 4, "metadata_failure_ttl_s": 0.5}


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


class Engine:
    """The test's driver of the sandbox engine (deploy, start, inspect, move the clock), over REST."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = CamundaClient(CamundaSettings(base_url=url, worker_id="test-driver", http_attempts=1))
        self.http = self.client.http

    def deploy(self, xml: str, *, name: str = "test.bpmn", tenant: str | None = None) -> dict[str, Any]:
        data = {"deployment-name": name}
        if tenant:
            data["tenant-id"] = tenant
        response = self.http.request("POST", "/deployment/create", data=data,
                                     files={name: (name, xml.encode(), "application/xml")})
        return response.json()

    def start(self, key: str, variables: dict[str, Any] | None = None, *, tenant: str | None = None,
              business_key: str | None = None) -> str:
        path = f"/process-definition/key/{key}" + (f"/tenant-id/{tenant}" if tenant else "") + "/start"
        body: dict[str, Any] = {"variables": to_typed_map(variables or {})}
        if business_key:
            body["businessKey"] = business_key
        return str(self.http.request("POST", path, json=body).json()["id"])

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        return self.client.list_tasks(**filters)

    def get(self, path: str, **params: Any) -> Any:
        return self.http.request("GET", path, params=params).json()

    def advance(self, ms: int) -> None:
        self.http.request("POST", "/_admin/clock", json={"advance_ms": ms})


class Queues:
    """Reads the broker like a consumer would (basic_get), and publishes like task-creator does."""

    def __init__(self, settings: RabbitMQSettings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.connection = connect(settings, name="test-queues", attempts=3)
        self.channel = self.connection.channel()
        self.publisher = Publisher(settings, topology, name="test-publisher")

    def close(self) -> None:
        self.publisher.close()
        if self.connection.is_open:
            self.connection.close()

    def get(self, queue: str, timeout_s: float = 10.0) -> tuple[Any, Any, bytes]:
        def one() -> Any:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            return (method, properties, body) if method is not None else None

        return wait_for(one, timeout_s, f"a message in {queue}")

    def get_json(self, queue: str, timeout_s: float = 10.0) -> dict[str, Any]:
        return json.loads(self.get(queue, timeout_s)[2])

    def drain(self, queue: str) -> list[bytes]:
        bodies = []
        while True:
            method, _, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)

    def depth(self, queue: str) -> int:
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def respond(self, message: ResponseMessage) -> None:
        self.publisher.publish_response(message, correlation_id=message.task_id)

    def publish_raw(self, queue: str, body: bytes) -> None:
        self.publisher.publish("", queue, body)
