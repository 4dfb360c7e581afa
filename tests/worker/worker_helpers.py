"""Helpers of the worker tests: drive the sandbox engine over REST, read and feed the broker, wait."""

from __future__ import annotations

from typing import Any

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.variables import to_typed_map

FAST_CAMUNDA = {  # short long polls and backoffs so that tests stop and recover quickly
    "async_response_timeout_ms": 1000,
    "http_attempts": 2,
    "backoff_initial_s": 0.1,
    "backoff_max_s": 0.5,
}
FAST_WORKER = {"health_port": 0, "shutdown_deadline_s": 10, "response_retry_initial_s": 1.0,
               "response_max_attempts": 4, "metadata_failure_ttl_s": 0.5}


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


