"""Fixtures of the ``exchanger`` command tests: the sandbox engine, the real broker, the command as a process.

The command runs as the installed console script in a fresh process with its own ``EXCHANGER_HOME``
(an env file written per test), as an operator would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import ONE_YEAR_MS, CamundaSettings
from exchanger.settings import RabbitMQSettings

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


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    from exchanger.sandbox.camunda.server import start

    with start() as server:
        client = CamundaClient(CamundaSettings(base_url=server.url))
        yield Sandbox(server.url, EngineOps(client))
        client.close()


Cli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def cli(tmp_path: Path, sandbox: Sandbox, rabbit_settings: RabbitMQSettings) -> Iterator[Any]:
    """``cli("tasks", "list", expect=0, **settings)``: run the command; ``cli.settings`` are the env file's."""

    class Runner:
        def __init__(self) -> None:
            self.settings = {
                "RABBITMQ_VIRTUAL_HOST": rabbit_settings.virtual_host,
                "CAMUNDA_BASE_URL": sandbox.url,
                "CAMUNDA_WORKER_ID": WORKER_ID,
                "CAMUNDA_TENANT_ID": "",
                "WORKER_HEALTH_PORT": "1",  # nothing listens there unless a test says otherwise
                "CREATOR_HEALTH_PORT": "2",
                "LOG_LEVEL": "INFO",
            }

        def __call__(self, *args: str, expect: int | None = 0, env: str = "dev",
                     input: str | None = None) -> subprocess.CompletedProcess:
            (tmp_path / f".env.{env}").write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
            environ = {"PATH": os.environ.get("PATH", ""), "EXCHANGER_HOME": str(tmp_path), "EXCHANGER_ENV": env}
            result = subprocess.run([str(EXCHANGER), *args], capture_output=True, text=True, env=environ,
                                    timeout=120, input=input)
            if expect is not None:
                assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
            return result

    yield Runner()
