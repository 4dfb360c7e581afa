"""Helpers of the worker tests: drive the sandbox engine over REST, read and feed the broker, wait."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
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
               "response_max_attempts": 4, "metadata_failure_ttl_s": 0.5,
               "lock_extend_after_s": 0}  # the long lock right after the confirm (the keeper has tests of its own)


class Engine(EngineOps):
    """The test's driver of the sandbox engine (deploy, start, inspect, move the clock), over REST."""

    def __init__(self, url: str) -> None:
        super().__init__(CamundaClient(CamundaSettings(base_url=url, worker_id="test-driver", http_attempts=1)))
        self.url = url

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        return self.client.list_tasks(**filters)

    def advance(self, ms: int) -> None:
        self.http.request("POST", "/_admin/clock", idempotent=False, json={"advance_ms": ms})

    def fault(self, **spec: Any) -> None:
        """Inject a fault into the engine (``status``, ``count``, ``body`` or ``raw``, ``path_contains`` …)."""
        origin = self.url.split("/engine-rest")[0]
        self.http.request("POST", f"{origin}/_admin/faults", idempotent=False, json=spec)




class EngineProcess:
    """The sandbox engine as a process of its own (stopping it closes every connection), restartable on
    the same port with its state (SQLite in ``folder``)."""

    def __init__(self, folder: Path) -> None:
        self.db = str(folder / "camunda.db")
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> EngineProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exchanger_sandbox", "camunda", "--port", str(self.port), "--db", self.db],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["CAMUNDA_BASE_URL"]
        self.port = int(self.url.split(":")[2].split("/")[0])
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
