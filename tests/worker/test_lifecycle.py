"""camunda-worker as a process: a bad environment, SIGKILL between lock and publish, SIGTERM with tasks in flight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from broker_queues import Queues, wait_for
from worker_helpers import Engine
from worker_models import one_task
from worker_proxy import TcpProxy

from exchanger.contracts import TaskMessage
from exchanger.settings import RabbitMQSettings
from exchanger.variables import parse_date

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "camunda-worker" / "main.py"
SHORT_LOCK_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_process(tmp_path: Path, engine_url: str, rabbit: RabbitMQSettings, amqp_port: int,
                   **extra: str) -> tuple[subprocess.Popen[str], int]:
    health = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "EXCHANGER_ENV": "dev",
        "LOG_DIR": str(tmp_path / "logs"),
        "WORKER_LOCK_DIR": str(tmp_path / "run"),
        "LOG_LEVEL": "INFO",
        "RABBITMQ_VIRTUAL_HOST": rabbit.virtual_host,
        "RABBITMQ_PORT": str(amqp_port),
        "RABBITMQ_CONNECTION_ATTEMPTS": "1",
        "CAMUNDA_BASE_URL": engine_url,
        "CAMUNDA_TENANT_ID": "",
        "CAMUNDA_WORKER_ID": "exchanger-test",
        "CAMUNDA_FETCH_LOCK_MINUTES": str(SHORT_LOCK_MS / 60_000),
        "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "1000",
        "WORKER_HEALTH_PORT": str(health),
        "WORKER_SHUTDOWN_DEADLINE_S": "15",
        **extra,
    }
    process = subprocess.Popen([sys.executable, str(MAIN)], cwd=MAIN.parent, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def ready() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            return requests.get(f"http://127.0.0.1:{health}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(ready, 20, "the worker process to be ready")
    return process, health


def test_an_unknown_environment_exits_non_zero_with_one_line_naming_it() -> None:
    result = subprocess.run([sys.executable, str(MAIN)], cwd=MAIN.parent, capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ.get("PATH", ""), "EXCHANGER_ENV": "bogus"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "EXCHANGER_ENV" in lines[0], result.stderr


def test_a_worker_killed_between_lock_and_publish_loses_nothing(
        tmp_path: Path, engine: Engine, queues: Queues, rabbit_settings: RabbitMQSettings, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    proxy = TcpProxy(rabbit_settings.port)
    process, _ = worker_process(tmp_path, engine.url, rabbit_settings, proxy.port)
    try:
        proxy.mode = "blackhole"  # the broker hangs: the publish cannot complete
        proxy.drop_connections()
        instance = engine.start("deal")
        wait_for(lambda: engine.tasks(processInstanceId=instance, workerId="exchanger-test"),
                 what="the task to be locked by the doomed worker")
        process.kill()  # SIGKILL between lock and publish
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        proxy.close()
    (task,) = engine.tasks(processInstanceId=instance)
    assert parse_date(task["lockExpirationTime"]) <= datetime.now(UTC) + timedelta(milliseconds=SHORT_LOCK_MS)

    make_worker(engine.url, worker_id="exchanger-test")  # a new worker of the same environment
    time.sleep(0.5)
    assert queues.depth("bitrix24.queue") == 0  # the short lock still holds
    engine.advance(SHORT_LOCK_MS + 1000)
    message = TaskMessage.from_bytes(queues.get("bitrix24.queue", timeout_s=15)[2])
    assert message.task_id == task["id"]
    time.sleep(0.3)
    assert queues.depth("bitrix24.queue") == 0


def test_sigterm_with_tasks_in_flight_leaves_nothing_locked_beyond_the_short_lock(
        tmp_path: Path, engine: Engine, queues: Queues, rabbit_settings: RabbitMQSettings) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    instances = {engine.start("deal", {"n": n}) for n in range(200)}  # more than get published before ready
    proxy = TcpProxy(rabbit_settings.port)
    proxy.delay_s = 0.05  # every publish takes a while, so that SIGTERM finds work in flight (even under load)
    process, _ = worker_process(tmp_path, engine.url, rabbit_settings, proxy.port, CAMUNDA_MAX_TASKS="30",
                                WORKER_PUBLISH_WINDOW="1")  # one confirm at a time: slow, as the test needs
    try:
        wait_for(lambda: queues.depth("bitrix24.queue") >= 5, what="the first tasks to be published")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        proxy.close()
    assert process.returncode == 0, output
    assert "camunda-worker stopped" in output and "unlocked: stopping" in output

    published = {TaskMessage.from_bytes(body).task_id for body in queues.drain("bitrix24.queue")}
    tasks = engine.tasks(processDefinitionKey="deal")
    assert {t["processInstanceId"] for t in tasks} == instances
    assert 0 < len(published) < len(tasks), "SIGTERM should have come with tasks still in flight"
    long_lock = datetime.now(UTC) + timedelta(days=300)
    for task in tasks:
        if task["id"] in published:
            assert parse_date(task["lockExpirationTime"]) > long_lock, task
        else:
            assert task["lockExpirationTime"] is None, f"fetched but unpublished task left locked: {task}"
