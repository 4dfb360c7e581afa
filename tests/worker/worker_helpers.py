"""Helpers of the worker tests: drive the sandbox engine over REST, read and feed the broker, wait."""

from __future__ import annotations

from typing import Any

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings

FAST_CAMUNDA = {  # short long polls and backoffs so that tests stop and recover quickly
    "async_response_timeout_ms": 1000,
    "http_attempts": 2,
    "backoff_initial_s": 0.1,
    "backoff_max_s": 0.5,
}
FAST_WORKER = {"health_port": 0, "shutdown_deadline_s": 10, "response_retry_initial_s": 1.0,
               "response_max_attempts": 4, "metadata_failure_ttl_s": 0.5}


class Engine(EngineOps):
    """The test's driver of the sandbox engine (deploy, start, inspect, move the clock), over REST."""

    def __init__(self, url: str) -> None:
        super().__init__(CamundaClient(CamundaSettings(base_url=url, worker_id="test-driver", http_attempts=1)))
        self.url = url

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        return self.client.list_tasks(**filters)

    def advance(self, ms: int) -> None:
        self.http.request("POST", "/_admin/clock", json={"advance_ms": ms})


