"""The sandbox engine as the ``exchanger`` command tests drive it: deploy, start, lock like a worker."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import ONE_YEAR_MS, CamundaSettings

EXCHANGER = Path(sys.executable).parent / "exchanger"
WORKER_ID = "exchanger-ops-test"

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="{key}" name="Process {key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Work" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@dataclass
class Sandbox:
    url: str
    ops: EngineOps

    def deploy(self, key: str, topic: str, tenant: str | None = None) -> None:
        self.ops.deploy(BPMN.format(key=key, topic=topic), name=f"{key}.bpmn", tenant=tenant)

    def start(self, key: str, tenant: str | None = None, **variables: Any) -> str:
        return self.ops.start(key, variables, tenant=tenant)

    def lock(self, topic: str, *, worker_id: str = WORKER_ID, tenant: str = "", lock_ms: int = ONE_YEAR_MS,
             count: int = 1) -> list[dict[str, Any]]:
        """Lock ``count`` tasks of ``topic`` as a worker would (long lock: published and confirmed)."""
        client = CamundaClient(CamundaSettings(base_url=self.url, worker_id=worker_id, tenant_id=tenant))
        try:
            tasks = client.fetch_and_lock([topic], lock_duration_ms=lock_ms, max_tasks=count,
                                          async_response_timeout_ms=0)
        finally:
            client.close()
        assert len(tasks) == count, tasks
        return tasks

    def task(self, task_id: str) -> dict[str, Any]:
        return self.ops.client.get_task(task_id)


