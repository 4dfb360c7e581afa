"""Fixtures of the ``exchanger`` command tests: the sandbox engine, the real broker, the command as a process.

The command runs as the installed console script in a fresh process with its own ``EXCHANGER_HOME``
(an env file written per test), as an operator would run it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ops_sandbox import EXCHANGER, WORKER_ID, Sandbox

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.settings import RabbitMQSettings


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    from exchanger_sandbox.camunda.server import start

    with start() as server:
        client = CamundaClient(CamundaSettings(base_url=server.url))
        yield Sandbox(server.url, EngineOps(client))
        client.close()


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
