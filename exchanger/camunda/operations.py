"""What operators' tools, the demo, the benchmark and the tests ask of Camunda beyond the worker's
needs: deploy, start instances, and read history, incidents and locks.

Built on :class:`~exchanger.camunda.client.CamundaClient`'s HTTP client (same pool, auth, TLS and
error mapping), so nothing here talks HTTP on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.http_client import segment
from exchanger.variables import to_typed_map


class EngineOps:
    def __init__(self, client: CamundaClient, tenant_id: str | None = None) -> None:
        self.client = client
        self.http = client.http
        self.tenant_id = tenant_id

    def deploy(self, content: str | bytes, *, name: str = "process.bpmn", deployment_name: str | None = None,
               tenant: str | None = None, changed_only: bool = False, duplicate_filtering: bool = False,
               source: str | None = None) -> dict[str, Any]:
        """Deploy one BPMN resource; ``tenant`` defaults to this object's tenant. With ``changed_only`` or
        ``duplicate_filtering`` the same bytes under the same name, source and tenant deploy nothing."""
        data = {"deployment-name": deployment_name or name}
        if changed_only:
            data["deploy-changed-only"] = "true"
        if duplicate_filtering:
            data["enable-duplicate-filtering"] = "true"
        if source:
            data["deployment-source"] = source
        if tenant or self.tenant_id:
            data["tenant-id"] = tenant or self.tenant_id or ""
        body = content.encode("utf-8") if isinstance(content, str) else content
        # the same bytes deployed twice make a second version unless Camunda filters duplicates
        repeatable = changed_only or duplicate_filtering
        return self.http.request("POST", "/deployment/create", idempotent=repeatable, data=data,
                                 files={name: (name, body, "application/xml")}).json()

    def start(self, key: str, variables: dict[str, Any] | None = None, *, business_key: str | None = None,
              tenant: str | None = None) -> str:
        """Start the latest version of ``key``; returns the process instance id."""
        path = f"/process-definition/key/{segment(key)}"
        if tenant or self.tenant_id:
            path += f"/tenant-id/{segment(tenant or self.tenant_id)}"
        body: dict[str, Any] = {"variables": to_typed_map(variables or {})}
        if business_key:
            body["businessKey"] = business_key
        return str(self.http.request("POST", f"{path}/start", idempotent=False, json=body).json()["id"])

    def definition(self, key: str, version: int | None = None) -> dict[str, Any]:
        """The definition of ``key`` in this object's tenant: ``version``, or the latest."""
        params: dict[str, Any] = {"key": key}
        params.update({"version": version} if version else {"latestVersion": "true"})
        params.update({"tenantIdIn": self.tenant_id} if self.tenant_id else {"withoutTenantId": "true"})
        found = self.http.request("GET", "/process-definition", params=params).json()
        if not found:
            raise CamundaNotFound(f"no process definition {key!r}" + (f" version {version}" if version else "")
                                  + f" (tenant {self.tenant_id or 'none'})", system="camunda", status=404)
        return dict(found[0])

    def start_definition(self, definition_id: str, typed_variables: dict[str, Any], *,
                         business_key: str | None = None) -> str:
        """Start one definition with Camunda-typed variables (types chosen by the caller); the instance id."""
        body: dict[str, Any] = {"variables": typed_variables}
        if business_key:
            body["businessKey"] = business_key
        path = f"/process-definition/{segment(definition_id)}/start"
        return str(self.http.request("POST", path, idempotent=False, json=body).json()["id"])  # a second instance

    def get(self, path: str, **params: Any) -> Any:
        return self.http.request("GET", path, params=params).json()

    def count(self, path: str, **params: Any) -> int:
        return int(self.http.request("GET", f"{path}/count", params=params).json()["count"])

    def finished_instances(self, key: str) -> list[dict[str, Any]]:
        return self.http.request("GET", "/history/process-instance",
                                 params={"processDefinitionKey": key, "finished": "true"}).json()

    def activity_history(self, **params: Any) -> list[dict[str, Any]]:
        return self.http.request("GET", "/history/activity-instance", params=params).json()

    def incidents(self) -> list[dict[str, Any]]:
        return self.http.request("GET", "/incident").json()

    def locked_tasks(self) -> list[dict[str, Any]]:
        return self.http.request("GET", "/external-task", params={"locked": "true"}).json()

    def open_tasks(self) -> list[dict[str, Any]]:
        return self.http.request("GET", "/external-task").json()


def duration_s(record: dict[str, Any]) -> float | None:
    """Seconds between an activity instance's start and end (None while it runs)."""
    if not record.get("endTime") or not record.get("startTime"):
        return None
    start = datetime.strptime(record["startTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    end = datetime.strptime(record["endTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    return (end - start).total_seconds()
