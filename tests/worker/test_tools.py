"""Operator tools and edges: the parking lot replay, the tasks CLI, basic auth, readiness when Camunda is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from broker_queues import Queues, wait_for
from worker_helpers import Engine
from worker_models import one_task

from exchanger.amqp.parking import peek, replay
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ParkedRecord
from exchanger.errors import AuthError

TOOLS = Path(__file__).resolve().parents[2] / "camunda-worker" / "tools"


def test_parked_messages_can_be_inspected_and_replayed(rabbit_settings, topology, queues: Queues) -> None:
    for task_id in ("t-1", "t-2"):
        queues.publisher.park(ParkedRecord.for_body(f'{{"task": "{task_id}"}}'.encode(), reason="Camunda 400",
                                                    error_type="CamundaConflict", source_queue="python.queue",
                                                    task_id=task_id, headers={"x-exchanger-attempt": 3}))
    assert [r.task_id for r in peek(rabbit_settings, topology)] == ["t-1", "t-2"]
    assert queues.depth("errors.camunda_tasks.queue") == 2  # peeking leaves them there

    replayed = replay(rabbit_settings, topology, select=lambda r: r.task_id == "t-2")
    assert [r.task_id for r in replayed] == ["t-2"]
    _, properties, body = queues.get("python.queue")
    assert body == b'{"task": "t-2"}' and properties.correlation_id == "t-2"
    assert "x-exchanger-attempt" not in (properties.headers or {})
    wait_for(lambda: queues.depth("errors.camunda_tasks.queue") == 1, what="t-1 to stay parked")


def test_the_tasks_tool_lists_and_unlocks_this_workers_tasks(engine: Engine, tmp_path: Path) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    instance = engine.start("deal")
    client = CamundaClient(CamundaSettings(base_url=engine.url, worker_id="exchanger-ops"))
    (task,) = client.fetch_and_lock(["bitrix_create_task"], async_response_timeout_ms=0)
    env = {"PATH": os.environ.get("PATH", ""), "EXCHANGER_ENV": "dev", "CAMUNDA_BASE_URL": engine.url,
           "CAMUNDA_WORKER_ID": "exchanger-ops", "CAMUNDA_TENANT_ID": "", "LOG_LEVEL": "WARNING",
           "LOG_DIR": str(tmp_path)}

    def tool(*args: str) -> str:
        result = subprocess.run([sys.executable, str(TOOLS / "tasks.py"), *args], capture_output=True, text=True,
                                env=env, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert f"{task['id']} bitrix_create_task instance={instance}" in tool("list")
    assert f"unlocked {task['id']}" in tool("unlock", task["id"])
    assert engine.tasks(processInstanceId=instance)[0]["workerId"] is None
    assert task["id"] not in tool("list")


def test_basic_auth_is_sent_and_a_refusal_is_an_auth_error() -> None:
    from exchanger.sandbox.camunda.server import start

    with start(users={"demo": "s3cret"}) as server:
        good = CamundaClient(CamundaSettings(base_url=server.url, auth_username="demo",
                                             auth_password="s3cret"))  # type: ignore[arg-type]
        assert good.version()
        bad = CamundaClient(CamundaSettings(base_url=server.url, auth_username="demo",
                                            auth_password="wrong"))  # type: ignore[arg-type]
        with pytest.raises(AuthError):
            bad.version()


def test_readiness_names_camunda_when_it_is_unreachable(make_worker, rabbit_settings) -> None:
    worker = make_worker("http://127.0.0.1:9/engine-rest")  # nothing listens on the discard port
    wait_for(lambda: worker.fetcher.camunda_error, what="a failed poll")
    checks = {name: check() for name, check in worker.readiness_checks().items()}
    assert checks["camunda"][0] is False and "cannot reach" in checks["camunda"][1]
    assert checks["last_poll"] == (False, "no successful poll yet")
    wait_for(lambda: worker.consumer.ready, what="the consumer")
    assert worker.readiness_checks()["broker"]() == (True, "consuming")
