"""Deploying converted models to Camunda: one diagram per deployment, named
``storm-<diagram id>`` with resource ``<diagram id>.bpmn``, source ``camunda-sync``, the environment's
tenant, ``deploy-changed-only`` and duplicate filtering, so repeating a deploy is always safe: the same
bytes give the existing deployment back, any change exactly one new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exchanger.camunda.operations import EngineOps

SOURCE = "camunda-sync"


@dataclass(frozen=True)
class Deployed:
    deployment_id: str
    definitions: list[dict[str, Any]]  # {id, key, version}
    new: bool  # False: the engine already had these bytes (duplicate filter)


def deployment_name(diagram_id: str) -> str:
    """Stable for the life of a diagram; never its name, which people change."""
    return f"storm-{diagram_id}"


class Deployer:
    def __init__(self, ops: EngineOps, tenant_id: str = "", source: str = SOURCE) -> None:
        self.ops = ops
        self.tenant_id = tenant_id
        self.source = source

    def _tenant(self) -> dict[str, Any]:
        return {"tenantIdIn": self.tenant_id} if self.tenant_id else {"withoutTenantId": "true"}

    def deploy(self, diagram_id: str, xml: bytes) -> Deployed:
        answer = self.ops.deploy(xml, name=f"{diagram_id}.bpmn", deployment_name=deployment_name(diagram_id),
                                 tenant=self.tenant_id or None, changed_only=True, duplicate_filtering=True,
                                 source=self.source)
        created = answer.get("deployedProcessDefinitions") or {}
        if created:
            return Deployed(answer["id"], [_definition(d) for d in created.values()], new=True)
        return Deployed(answer["id"], self.definitions(answer["id"]), new=False)

    def definitions(self, deployment_id: str) -> list[dict[str, Any]]:
        rows = self.ops.get("/process-definition", deploymentId=deployment_id, **self._tenant())
        return [_definition(row) for row in rows]

    def latest(self, key: str) -> dict[str, Any] | None:
        """The latest definition of ``key`` in this tenant, or None when the engine lacks the model."""
        rows = self.ops.get("/process-definition", key=key, latestVersion="true", **self._tenant())
        return rows[0] if rows else None

    def xml(self, definition_id: str) -> str:
        return str(self.ops.get(f"/process-definition/{definition_id}/xml").get("bpmn20Xml") or "")


def _definition(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "key": row["key"], "version": row["version"]}
