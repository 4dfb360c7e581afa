"""task-creator as a process: one instance per environment, kill -9 before the ack, SIGTERM, health.

The daemon runs ``task-creator/main.py`` for a system of the test's own (``testsys``, declared through
``ROUTING_FILE`` and plugged in through ``CREATOR_*_HANDLERS``, as a company would add one), in a
virtual host of its own.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from broker_queues import Daemon, Queues
from creator_testkit import ItemStore, make_task

from exchanger.amqp.topology import Topology
from exchanger.contracts import ResponseStatus
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def daemon_vhost(vhost_factory) -> str:
    return vhost_factory()


@pytest.fixture
def daemon_env(daemon_vhost, tmp_path):
    vhost = daemon_vhost
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env.dev").write_text("# the test passes everything in the environment\n")
    (home / "routing.toml").write_text('[systems]\ntestsys = ["test_create"]\n')
    store_dir = tmp_path / "items"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RABBITMQ_", "CREATOR_", "AMQP_", "PYTHON_TASKS_", "ROUTING_", "TESTKIT_"))}
    env.update({
        "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(home), "LOG_DIR": str(tmp_path / "logs"),
        "PYTHONPATH": str(HERE), "RABBITMQ_VIRTUAL_HOST": vhost, "RABBITMQ_HEARTBEAT_S": "10",
        "ROUTING_FILE": str(home / "routing.toml"),
        "CREATOR_QUEUES": "testsys.queue,testsys.sent.queue",
        "CREATOR_QUEUE_HANDLERS": json.dumps({"testsys.queue": {"module": "creator_testkit",
                                                                "handler_class": "StoreHandler"}}),
        "CREATOR_SENT_QUEUES_MAPPING": json.dumps({"testsys.queue": "testsys.sent.queue"}),
        "CREATOR_TRACKER_HANDLERS": json.dumps({"testsys.sent.queue": {"module": "creator_testkit",
                                                                       "tracker_class": "StoreTracker"}}),
        "CREATOR_DRAIN_S": "5", "CREATOR_LOCK_DIR": str(tmp_path / "run"),
        "TESTKIT_STORE_DIR": str(store_dir), "TESTKIT_CHECK_INTERVAL_S": "1",
    })
    rabbit = RabbitMQSettings(virtual_host=vhost)
    topology = Topology(TopologySettings(), RoutingTable({"testsys": ["test_create"]}).systems, virtual_host=vhost)
    started: list[Daemon] = []

    def start(**extra: str) -> Daemon:
        daemon = Daemon({**env, **extra}, home)
        started.append(daemon)
        return daemon

    yield start, rabbit, topology, ItemStore(store_dir)
    for daemon in started:
        daemon.stop()


def test_killed_after_creating_before_the_ack_no_duplicate_and_a_second_instance_refuses(daemon_env):
    start, rabbit, topology, store = daemon_env
    first = start(TESTKIT_HANG_AFTER_CREATE="1")
    first.ready()

    second = start()
    assert second.process.wait(30) == 3
    assert f"task-creator (dev) is already running as PID {first.process.pid}" in second.output()

    queues = Queues(rabbit, topology)
    try:
        queues.publish_task(make_task("kill-1", "test_create", "testsys"))
        deadline = time.monotonic() + 10
        while store.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count() == 1, first.output()
        first.process.send_signal(signal.SIGKILL)  # created the item, never acked the task
        first.process.wait(10)

        third = start()  # takes over the lock the killed process left behind
        third.ready()
        store.finish("kill-1", approved=True)
        (response,) = queues.responses(timeout_s=15)
        assert response.status == ResponseStatus.COMPLETE and response.task_id == "kill-1"
        assert store.count() == 1
        assert "already has testsys item item-kill-1" in third.output()

        third.process.send_signal(signal.SIGTERM)
        assert third.process.wait(20) == 0
        assert "stopping: draining in-flight messages" in third.output()
        assert "stats:" in third.output()
    finally:
        queues.close()


def test_a_served_queue_that_cannot_load_stops_the_start_with_exit_code_2(daemon_env):
    start, *_ = daemon_env
    daemon = start(CREATOR_QUEUE_HANDLERS=json.dumps({"testsys.queue": {"module": "acme.nothing",
                                                                        "handler_class": "Handler"}}))
    assert daemon.process.wait(30) == 2
    assert "queue testsys.queue: acme.nothing:Handler cannot be loaded: module acme.nothing does not exist" \
        in daemon.output()


def test_a_secret_of_another_component_echoed_in_an_error_is_masked_everywhere(daemon_env, tmp_path):
    """task-creator never loads the Camunda settings, yet must mask CAMUNDA_AUTH_PASSWORD."""
    start, rabbit, topology, _ = daemon_env
    secret = "Cam-Pw-8d41f07e"
    daemon = start(CAMUNDA_AUTH_PASSWORD=secret, TESTKIT_ECHO_VARIABLE="CAMUNDA_AUTH_PASSWORD")
    daemon.ready()
    queues = Queues(rabbit, topology)
    try:
        queues.publish_task(make_task("echo-1", "test_create", "testsys"))
        (response,) = queues.responses(timeout_s=15)
        (record,) = queues.parked(timeout_s=15)
    finally:
        queues.close()
    assert response.status == ResponseStatus.FAILURE and response.retries == 0  # the incident
    assert "bad request" in (response.error_message or "")
    logs = "".join(path.read_text() for path in (tmp_path / "logs").iterdir())
    assert "bad request" in logs
    for text in (response.to_bytes().decode(), record.to_bytes().decode(), logs, daemon.output()):
        assert secret not in text
