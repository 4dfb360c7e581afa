"""The engine as a process: CLI banner and clean SIGTERM, restart persistence, basic auth, admin clock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exchanger_sandbox.camunda.clock import Clock
from exchanger_sandbox.camunda.server import start

from .conftest import START_MS, Api, one_task


@pytest.fixture
def cli_engine(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exchanger_sandbox", "camunda", "--port", "0", "--db", str(tmp_path / "c.db"),
         "--user", "demo:secret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    banner = json.loads(process.stdout.readline())
    yield process, banner["CAMUNDA_BASE_URL"]
    if process.poll() is None:
        process.kill()
        process.wait()


def test_cli_prints_settings_serves_with_auth_and_stops_on_sigterm(cli_engine: tuple) -> None:
    process, url = cli_engine
    assert url.startswith("http://127.0.0.1:") and url.endswith("/engine-rest")
    denied = requests.get(f"{url}/engine", timeout=5)
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == 'Basic realm="default"'
    assert requests.get(f"{url}/engine", auth=("demo", "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{url}/engine", auth=("demo", "secret"), timeout=5).json() == [{"name": "default"}]
    moved = requests.post(f"{url}/_admin/clock", json={"advance_ms": 1000}, timeout=5)
    assert moved.status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert "GET /engine-rest/engine" in process.stderr.read()  # requests are logged at debug level


def test_restart_with_the_same_db_keeps_instances_and_tasks(tmp_path: Path) -> None:
    db = str(tmp_path / "engine.db")
    clock = Clock(start_ms=START_MS)
    with start(db=db, clock=clock) as first:
        api = Api(first)
        api.deploy_model(one_task())
        instance = api.start(variables={"order": {"value": 7}}, businessKey="o-7")
        task = api.fetch_one(lock=60_000)
        failed = api.start()
        failed_task = next(t for t in api.tasks() if t["processInstanceId"] == failed["id"])
        api.post(f"/external-task/{failed_task['id']}/lock", {"workerId": "w1", "lockDuration": 1})
        api.post(f"/external-task/{failed_task['id']}/failure", {"workerId": "w1", "errorMessage": "x"})
    with start(db=db, clock=clock) as second:
        api = Api(second)
        assert api.get(f"/process-instance/{instance['id']}").json()["businessKey"] == "o-7"
        again = api.get(f"/external-task/{task['id']}").json()
        assert again["workerId"] == "w1" and again["lockExpirationTime"] == task["lockExpirationTime"]
        assert api.get("/incident/count").json() == {"count": 1}
        assert api.complete(task["id"]).status_code == 204
        assert api.history(instance["id"])["state"] == "COMPLETED"
        api.start()
        assert len(api.fetch(worker="w2")) == 1  # the model is parsed again from the stored resource


def test_in_process_server_is_a_context_manager_with_url_engine_and_clock() -> None:
    clock = Clock(start_ms=START_MS)
    with start(clock=clock) as sandbox:
        assert sandbox.clock is clock and sandbox.engine.clock is clock
        assert not sandbox.url.endswith("/")
        assert requests.get(f"{sandbox.url}/version", timeout=5).status_code == 200


def test_shutdown_answers_pending_long_polls() -> None:
    sandbox = start()
    result: dict = {}

    def poll() -> None:
        result["response"] = requests.post(f"{sandbox.url}/external-task/fetchAndLock", json={
            "workerId": "w", "maxTasks": 1, "asyncResponseTimeout": 20_000,
            "topics": [{"topicName": "t", "lockDuration": 100}]}, timeout=10)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.2)
    sandbox.stop()
    thread.join(5)
    assert result["response"].status_code == 500
    assert result["response"].json()["message"] == "Request rejected due to shutdown of application server."
