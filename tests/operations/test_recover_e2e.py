"""``exchanger recover`` on the running product: a tracking record lost on purpose, the task handed back,
and no second work item (the handler's lookup by Camunda task id is the guard).

The whole pipeline runs as processes (the demo's :class:`~exchanger_sandbox.demo.stack.Stack`): the sandbox
engine and OpenProject, camunda-worker and task-creator.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from broker_queues import wait_for
from ops_sandbox import BPMN, EXCHANGER

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger_sandbox.demo.stack import Stack

pytestmark = pytest.mark.slow
WORKER_ID = "exchanger-recover-e2e"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "stack")
    stack.create_vhost()
    try:
        stack.start_sandbox("camunda")
        stack.start_sandbox("openproject")
        stack.write_env_file({"CAMUNDA_WORKER_ID": WORKER_ID, "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "1000",
                              # the long lock at once: recover judges only tasks held past fetchAndLock's lock
                              "WORKER_LOCK_EXTEND_AFTER_S": "0",
                              "CREATOR_QUEUES": "openproject.queue,openproject.sent.queue",
                              "WORKER_HEALTH_PORT": "0", "CREATOR_HEALTH_PORT": "0", "LOG_LEVEL": "INFO"})
        stack.start_daemon("camunda-worker")
        stack.start_daemon("task-creator")
        yield stack
    finally:
        stack.stop_all()
        stack.delete_vhost()


def _delay_queues(vhost: str) -> dict[str, int]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages", "--formatter",
                          "json"], capture_output=True, text=True, check=True, timeout=60).stdout
    return {row["name"]: row["messages"] for row in json.loads(out) if row["name"].startswith("exchanger.delay.")}


def test_recover_hands_a_lost_task_back_without_a_duplicate(stack: Stack) -> None:
    settings = stack.settings
    ops = EngineOps(CamundaClient(CamundaSettings(base_url=settings["CAMUNDA_BASE_URL"])))
    ops.deploy(BPMN.format(key="wp", topic="op_create_task"), name="wp.bpmn")
    instance = ops.start("wp", {"subject": "Laptop for Anna"})
    stats_url = f"{settings['OPENPROJECT_BASE_URL']}/_admin/stats"
    wait_for(lambda: requests.get(stats_url, timeout=5).json()["work_packages"] == 1, 60, "the work package")
    wait_for(lambda: sum(_delay_queues(stack.vhost).values()) == 1, 60, "the tracking record to wait for its re-check")
    (task,) = ops.client.list_tasks(processInstanceId=instance)
    assert task["workerId"] == WORKER_ID

    def exchanger(*args: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "EXCHANGER_HOME": str(stack.workdir), "EXCHANGER_ENV": "dev"}
        return subprocess.run([str(EXCHANGER), *args], capture_output=True, text=True, env=env, timeout=120)

    assert "no lost tasks" in exchanger("recover", "--older-than", "0").stdout
    for queue in _delay_queues(stack.vhost):  # the tracking record is lost
        subprocess.run(["rabbitmqctl", "-q", "purge_queue", "-p", stack.vhost, queue], check=True, timeout=60)

    found = exchanger("recover", "--older-than", "0")
    assert found.returncode == 1 and "would unlock 1 task(s)" in found.stdout and task["id"] in found.stdout
    assert exchanger("recover", "--older-than", "0", "--yes").returncode == 0

    # the worker fetches it again, the handler finds the work package it made and tracks it again
    wait_for(lambda: sum(_delay_queues(stack.vhost).values()) == 1, 60, "a new tracking record")
    stats = requests.get(stats_url, timeout=5).json()
    assert stats["work_packages"] == 1 and stats["duplicates"] == {}
    assert ops.client.get_task(task["id"])["workerId"] == WORKER_ID
    assert "no lost tasks" in exchanger("recover", "--older-than", "0").stdout
